"""Fold launchers without a cluster: `inline` and `local` (real subprocesses), the W&B sweep file."""
from __future__ import annotations

import os

import pytest
import yaml

from experiments.launchers import (
    SLURM_DEFAULTS,
    FoldCall,
    FoldOutcome,
    _local_gpu_slots,
    _selftest_fold,
    launch_folds,
    write_wandb_sweep,
)

FOLDS = ["chb01", "fail02", "chb03"]


def test_inline_runs_every_fold_and_records_the_failure(capsys):
    out = launch_folds(_selftest_fold, FOLDS, launcher="inline", log_dir="unused")
    assert [o.fold for o in out] == FOLDS
    assert [o.ok for o in out] == [True, False, True]
    assert all(o.result["pid"] == os.getpid() for o in out if o.ok)  # same process
    assert "RuntimeError: self-test fold fail02 fails on purpose" in out[1].error
    assert out[1].result is None and out[1].job_id is None
    err = capsys.readouterr().err
    assert "[inline] 3/3 chb03 ok" in err and "fail02 FAILED" in err  # one progress line per fold


def test_local_runs_folds_in_separate_processes_and_survives_failures(tmp_path):
    folds = FOLDS + ["crash04"]
    out = launch_folds(_selftest_fold, folds, launcher="local", log_dir=tmp_path, max_parallel=2,
                       poll_s=0.2, grace_s=1.0, timeout_s=120, progress=False)
    assert [o.fold for o in out] == folds
    assert [o.ok for o in out] == [True, False, True, False]
    ok = [o for o in out if o.ok]
    assert len({o.result["pid"] for o in ok} | {os.getpid()}) == 3  # one new process per fold
    assert all(o.result["cuda_visible"] == "" for o in ok)  # gpus_per_node=0: no GPU for the job
    assert "self-test fold fail02 fails on purpose" in out[1].error
    # the crashed fold left no result: reported with its log, not hung on
    assert "without a result" in out[3].error and out[3].stderr == tmp_path / f"{out[3].job_id}_0_log.err"
    for o in out:
        assert o.stdout.exists() and f"self-test fold {o.fold} started" in o.stdout.read_text()


def test_local_respects_max_parallel(tmp_path):
    out = launch_folds(_selftest_fold, ["nap1", "nap2"], launcher="local", log_dir=tmp_path, max_parallel=1,
                       poll_s=0.1, timeout_s=120, progress=False)
    assert all(o.ok for o in out)
    first, second = sorted((o.result for o in out), key=lambda r: r["started_at"])
    assert second["started_at"] >= first["finished_at"]  # one at a time


def test_local_gives_each_parallel_fold_its_own_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # what the jobs see is checked, no GPU needed
    out = launch_folds(_selftest_fold, ["nap1", "nap2"], launcher="local", log_dir=tmp_path, max_parallel=2,
                       slurm={"gpus_per_node": 1}, poll_s=0.1, timeout_s=120, progress=False)
    assert sorted(o.result["cuda_visible"] for o in out) == ["3", "5"]


def test_local_timeout_cancels_and_reports(tmp_path):
    out = launch_folds(_selftest_fold, ["slow1", "chb02"], launcher="local", log_dir=tmp_path, max_parallel=1,
                       poll_s=0.2, grace_s=0.5, timeout_s=3, progress=False)
    assert not out[0].ok and "not finished after 3 s: cancelled" in out[0].error
    assert not out[1].ok and "not started" in out[1].error


def test_fold_call_requeues_the_same_fold():
    call = FoldCall(_selftest_fold)
    resubmission = call.checkpoint("chb07")  # what submitit calls on USR2 before `scontrol requeue`
    assert resubmission.function is call and resubmission.args == ("chb07",)
    assert resubmission.result()["fold"] == "chb07"


@pytest.mark.parametrize("kwargs, message", [
    (dict(launcher="kubernetes"), "launcher must be one of"),
    (dict(launcher="local", slurm={"partitoin": "gpu"}), "unknown slurm settings ['partitoin']"),
    (dict(launcher="local", slurm={"mem_gb": 0}), "slurm.mem_gb must be > 0"),
    (dict(launcher="local", max_parallel=0), "max_parallel must be >= 1"),
])
def test_bad_arguments_are_named(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        launch_folds(_selftest_fold, ["chb01"], log_dir=tmp_path, **kwargs)


def test_bad_fold_lists_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no folds"):
        launch_folds(_selftest_fold, [], launcher="inline", log_dir=tmp_path)
    with pytest.raises(ValueError, match=r"folds listed twice: \['chb01'\]"):
        launch_folds(_selftest_fold, ["chb01", "chb02", "chb01"], launcher="inline", log_dir=tmp_path)


def test_local_gpu_slots_round_robin_over_visible_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert _local_gpu_slots(1, 3) == [(3,), (5,), (3,)]
    assert _local_gpu_slots(2, 2) == [(3, 5), (3, 5)]
    assert _local_gpu_slots(0, 2) == [(), ()]
    with pytest.raises(ValueError, match="gpus_per_node=3 but 2 GPU"):
        _local_gpu_slots(3, 1)


def test_outcome_is_immutable():
    o = FoldOutcome("chb01", True, result=1)
    with pytest.raises(AttributeError):
        o.ok = False  # type: ignore[misc]
    assert set(SLURM_DEFAULTS) >= {"partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min",
                                   "array_parallelism", "additional"}


def test_wandb_sweep_is_a_grid_over_held_out_patients(tmp_path):
    from omegaconf import OmegaConf
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    path = write_wandb_sweep(tmp_path / "sweeps" / "chb_loso.yaml", "chb_loso", ["chb01", "chb02", "chb03"],
                             ["trainer.max_epochs=5", "data_root=/data/chbmit"], project="seizure")
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] == "grid" and sweep["project"] == "seizure"
    assert sweep["parameters"] == {"folds": {"values": ["[chb01]", "[chb02]", "[chb03]"]}}
    assert sweep["command"] == ["${env}", "${interpreter}", "-m", "experiments", "run", "chb_loso",
                                "${args_no_hyphens}", "trainer.max_epochs=5", "data_root=/data/chbmit"]
    # what `wandb agent` substitutes for ${args_no_hyphens} for the second grid point (wandb's own code),
    # and how the runner's OmegaConf dotlist reads it back
    args = create_sweep_command_args({"args": {"folds": {"value": sweep["parameters"]["folds"]["values"][1]}}})
    assert args["args_no_hyphens"] == ["folds=[chb02]"]
    assert OmegaConf.to_container(OmegaConf.from_dotlist(args["args_no_hyphens"])) == {"folds": ["chb02"]}


def test_wandb_sweep_refuses_unusable_input(tmp_path):
    with pytest.raises(ValueError, match="must not contain"):
        write_wandb_sweep(tmp_path / "s.yaml", "chb_loso", ["chb01,chb02"])
    with pytest.raises(ValueError, match="key=value"):
        write_wandb_sweep(tmp_path / "s.yaml", "chb_loso", ["chb01"], ["--fast"])
    assert not (tmp_path / "s.yaml").exists()
