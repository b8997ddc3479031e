"""End to end: a LOSO study from an empty folder (corpus, cache, training, prediction, SzCORE
scoring, summary, report, panels, offline W&B), stopped by SIGTERM and resumed with its whole
training log, damaged files named and redone, a failing fold, SZLoc and pruned folds."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENV = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}


def _args(tmp: Path, run_id: str, *extra) -> list[str]:
    return ["run", "smoke", f"run_id={run_id}", f"synthetic.root={tmp / 'corpus'}",
            f"cache_dir={tmp / 'cache'}", f"runs_dir={tmp / 'runs'}", *extra]


def _run(tmp: Path, run_id: str, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments", *_args(tmp, run_id, *extra)],
                          capture_output=True, text=True, timeout=timeout, env=ENV)


def _epochs(path: Path) -> list[int]:
    with open(path, newline="") as fh:
        return sorted({int(float(r["epoch"])) for r in csv.DictReader(fh) if r.get("epoch")})


# -- the default suite: one fast fold ---------------------------------------------------------
def test_one_fold_end_to_end_and_predict(tmp_path):
    """One fold from an empty folder, then ``predict`` on its model.ckpt alone."""
    r = _run(tmp_path, "one", "folds=[chb02]", "trainer.max_epochs=1", "trainer.min_epochs=1")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    run = tmp_path / "runs/smoke/one"
    fold = run / "folds/chb02"
    m = json.loads((fold / "metrics.json").read_text())
    assert 0.0 <= m["window"]["test/auroc"] <= 1.0 and 0.0 < m["threshold"] < 1.0
    assert m["model"]["macs_per_input"] > 0 and m["checkpoint"] == str(fold / "model.ckpt")
    assert json.loads((fold / "status.json").read_text())["state"] == "done"
    assert (fold / "hypotheses").glob("*_events.tsv") and (run / "report.html").exists()
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["config"]["data_root"] == str(tmp_path / "corpus") and len(recorded["config_hash"]) == 16

    import torch
    ckpt = torch.load(fold / "model.ckpt", weights_only=True)  # plain values and tensors only
    spec = ckpt["seizure_lightning"]
    assert spec["model"]["name"] == "lsn" and spec["module"]["name"] == "detection"
    assert spec["run"]["threshold"] == m["threshold"] and len(spec["run"]["data"]["channels"]) == 18
    assert "optimizer_states" not in ckpt

    from experiments.__main__ import main
    edf = sorted((tmp_path / "corpus").glob("chb02/*.edf"))[0]
    out, png = tmp_path / "pred_events.tsv", tmp_path / "pred.png"
    (fold / "config.yaml").write_text("data: {preprocessing: {sfreq: 64}}\n")  # a stray config is ignored
    assert main(["predict", "--ckpt", str(fold / "model.ckpt"), "--edf", str(edf), "--out", str(out),
                 "--panel", str(png)]) == 0
    assert out.read_text().startswith("onset\tduration\teventType") and png.stat().st_size > 10_000


def test_a_failing_fold_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    from experiments import factory
    from experiments.config import load_config
    from experiments.runner import run_experiment

    real = factory.build_model

    def flaky(cfg, dm):
        if dm.test_patient == "chb02":
            raise RuntimeError("simulated failure")
        return real(cfg, dm)

    monkeypatch.setattr(factory, "build_model", flaky)
    cfg = load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                f"runs_dir={tmp_path / 'runs'}", "run_id=f", "trainer.max_epochs=1",
                                "trainer.min_epochs=1", "folds=[chb01,chb02]", "activation_maps=null",
                                "wandb=null"], env={})
    assert run_experiment(cfg) == 1
    summary = json.loads((tmp_path / "runs/smoke/f/summary.json").read_text())
    assert summary["folds_ok"] == ["chb01"]
    assert "simulated failure" in summary["folds_failed"]["chb02"]
    assert "simulated failure" in (tmp_path / "runs/smoke/f/summary.md").read_text()
    status = json.loads((tmp_path / "runs/smoke/f/folds/chb02/status.json").read_text())
    assert status["state"] == "failed"


def test_seeds_run_the_study_once_per_seed_and_pair_it_with_its_baselines(tmp_path):
    from experiments.config import load_config
    from experiments.runner import run_experiment

    cfg = load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                f"runs_dir={tmp_path / 'runs'}", "run_id=sd", "seeds=[3,4]", "trainer.max_epochs=1",
                                "trainer.min_epochs=1", "folds=[chb01,chb02]", "activation_maps=null",
                                "wandb=null"], env={})
    assert run_experiment(cfg) == 0
    runs = tmp_path / "runs/smoke"
    assert [json.loads((runs / f"sd-seed{k}/run.json").read_text())["config"]["seed"] for k in (3, 4)] == [3, 4]
    out = json.loads((runs / "sd/seeds_summary.json").read_text())
    assert out["seeds"] == [3, 4] and out["model"] == "lsn"
    assert set(out["seed_averaged"]["comparison"]) == {"line_length"}
    text = (runs / "sd/seeds_summary.md").read_text()
    assert "| line_length | event F1 minus | " in text and "(detection, averaged over seeds)" in text


# -- slow: the whole smoke study, stopped and resumed -----------------------------------------
@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study, stopped by SIGTERM during its first fold, then rerun to completion."""
    tmp = tmp_path_factory.mktemp("study")
    cmd = [sys.executable, "-m", "experiments", *_args(tmp, "r1", "trainer.max_epochs=3", "early_stopping=null")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    last = tmp / "runs/smoke/r1/folds/chb01/checkpoints/last.ckpt"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.2)
    running = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    first_out, _ = proc.communicate(timeout=120)
    status = json.loads((tmp / "runs/smoke/r1/folds/chb01/status.json").read_text())
    resumed = _run(tmp, "r1", "trainer.max_epochs=3", "early_stopping=null")
    return tmp, running, proc.returncode, first_out, status, resumed


@pytest.mark.slow
def test_sigterm_exits_non_zero_and_leaves_the_fold_resumable(study):
    tmp, running, code, out, status, resumed = study
    assert running, "the first fold finished before it could be stopped"
    assert code == 128 + signal.SIGTERM, out[-2000:]
    assert "interrupted by SIGTERM" in out and status["state"] == "interrupted"
    assert not (tmp / "runs/smoke/r1/summary.json").exists() or resumed.returncode == 0
    assert "resuming fold chb01 from" in resumed.stdout


@pytest.mark.slow
def test_resumed_run_completes_and_writes_everything(study):
    tmp, _, _, _, _, resumed = study
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    run = tmp / "runs/smoke/r1"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds_ok"] == ["chb01", "chb02", "chb03"] and not summary["folds_failed"]
    for p in ("chb01", "chb02", "chb03"):
        fold = run / "folds" / p
        m = json.loads((fold / "metrics.json").read_text())
        assert 0.0 <= m["window"]["test/auroc"] <= 1.0
        assert m["model"]["macs_per_input"] > 0 and m["model"]["params"] > 0
        hyps = sorted((fold / "hypotheses").glob("*_events.tsv"))
        assert hyps and hyps[0].read_text().startswith("onset\tduration\teventType\tconfidence")
        assert list((fold / "panels").glob("test_*.png")), "an ECAM panel of the held-out seizure"
        pe = summary["methods"][summary["model"]]["per_patient"][p]["event"]
        assert pe["ref"] >= 1 and set(pe) >= {"sensitivity", "precision", "f1", "fp_per_24h"}
    assert "mean ± sd" in (run / "summary.md").read_text()
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "chb02" in html
    assert (run / "per_patient.png").exists() and (run / "timelines.png").exists()
    media = list((run / "wandb").glob("offline-run-*/files/media/images/**/*.png"))
    assert media, "ECAM panels are in the offline W&B run folders, ready for wandb sync"


@pytest.mark.slow
def test_resumed_fold_keeps_its_whole_training_log(study):
    tmp, *_ = study
    fold = tmp / "runs/smoke/r1/folds/chb01"
    attempts = sorted((fold / "csv").glob("attempt-*/metrics.csv"))
    assert len(attempts) == 2 and min(_epochs(attempts[1])) >= 1  # the rerun trained after the checkpoint
    assert _epochs(fold / "csv/metrics.csv") == [0, 1, 2]  # ... and the merged log has every epoch


@pytest.mark.slow
def test_rerun_skips_finished_folds_and_refuses_another_config(study):
    tmp, *_ = study
    again = _run(tmp, "r1", "trainer.max_epochs=3", "early_stopping=null", "trainer.enable_progress_bar=true")
    assert again.returncode == 0 and again.stdout.count("already finished, skipped") == 3
    other = _run(tmp, "r1", "trainer.max_epochs=4", "early_stopping=null")
    assert other.returncode == 2 and "trainer.max_epochs: 3 -> 4" in other.stderr, other.stderr


@pytest.mark.slow
def test_damaged_files_are_named_moved_aside_and_redone(study):
    tmp, *_ = study
    run = tmp / "runs/smoke/r1"
    (run / "folds/chb02/metrics.json").write_text('{"fold": "chb02", "window": ')  # cut mid-write
    last = run / "folds/chb03/checkpoints/last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a checkpoint truncated by a kill
    (run / "folds/chb03/metrics.json").unlink()
    (run / "folds/chb03/status.json").write_text('{"state": "training"}')
    r = _run(tmp, "r1", "trainer.max_epochs=3", "early_stopping=null")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert f"{run / 'folds/chb02/metrics.json'} is damaged" in r.stdout
    assert f"{last} is damaged" in r.stdout and "resuming fold chb03 from" in r.stdout
    assert list((run / "folds/chb02").glob("metrics.json.damaged-*"))  # kept, not deleted
    assert list((run / "folds/chb03/checkpoints").glob("last.ckpt.damaged-*"))
    assert json.loads((run / "folds/chb02/metrics.json").read_text())["fold"] == "chb02"


@pytest.mark.slow
def test_szloc_fold_localizes_and_scores(tmp_path):
    """One SZLoc fold end to end: clips, the multi-task loss, onset-map panels, per-window
    probabilities scored the SzCORE way, localization metrics in metrics.json."""
    r = subprocess.run([sys.executable, "-m", "experiments", "run", "smoke_szloc", "run_id=z",
                        "folds=[chb02]", f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                        f"runs_dir={tmp_path / 'runs'}", "wandb=null"],
                       capture_output=True, text=True, timeout=600, env=ENV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    fold = tmp_path / "runs/smoke_szloc/z/folds/chb02"
    m = json.loads((fold / "metrics.json").read_text())
    assert 0.0 <= m["localization"]["loc_acc_seizure_attn"] <= 1.0
    assert m["model"]["params"] > 10_000 and m["model"]["macs_per_input"] > 0
    assert m["recordings"] and m["recordings"][0]["event"]["ref"] >= 1
    assert list((fold / "panels").glob("test_*.png"))
    preds = (fold / "predictions.csv").read_text().splitlines()
    # 1 s windows tiling the held-out recording: about one prediction per second
    duration = m["recordings"][0]["event"]["hours"] * 3600
    n = sum(1 for line in preds[1:] if line.startswith(m["recordings"][0]["recording_id"] + ","))
    assert abs(n - duration) <= 2

    # the predict CLI scores a user's EDF with the SZLoc checkpoint too (1 s windows of 45 s clips)
    edf = sorted((tmp_path / "corpus").glob("chb02/*.edf"))[0]
    out = tmp_path / "szloc_events.tsv"
    p = subprocess.run([sys.executable, "-m", "experiments", "predict", "--ckpt", m["checkpoint"], "--edf", str(edf),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.read_text().startswith("onset\tduration\teventType")


@pytest.mark.slow
def test_pruned_fold_compacts_and_saves_a_rebuildable_checkpoint(tmp_path):
    import torch

    from experiments.config import load_config
    from experiments.runner import run_experiment
    from lightning_modules.checkpoints import load_module
    from lightning_modules.cost import count_macs

    cfg = load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                f"runs_dir={tmp_path / 'runs'}", "run_id=p", "folds=[chb02]",
                                "pruning._target_=kernel_pruning", "pruning.start_epoch=0", "pruning.every_n_epochs=1",
                                "pruning.amount=0.5", "pruning.target_sparsity=0.6", "trainer.max_epochs=3",
                                "activation_maps=null", "wandb=null"], env={})
    assert run_experiment(cfg) == 0
    m = json.loads((tmp_path / "runs/smoke/p/folds/chb02/metrics.json").read_text())
    pr = m["pruning"]
    assert pr["sparsity"] >= 0.55 and pr["macs_after"] <= 0.5 * pr["macs_before"]
    assert m["model"]["macs_per_input"] == pr["macs_after"]
    module = load_module(m["checkpoint"])
    assert count_macs(module.model, torch.zeros(1, 18, 512)) == pr["macs_after"]


@pytest.mark.slow
def test_make_sweep_local_runs_as_the_readme_says(tmp_path):
    venv = Path(sys.prefix)
    args = " ".join([f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                     f"runs_dir={tmp_path / 'runs'}", "run_id=s", "trainer.max_epochs=1", "trainer.min_epochs=1",
                     "activation_maps=null", "wandb=null"])
    r = subprocess.run(["make", "-s", "-o", str(venv / ".installed"), f"VENV={venv}", "sweep", "NAME=smoke",
                        "LAUNCHER=local", "FOLD=chb02", f"ARGS={args}"], capture_output=True, text=True,
                       timeout=600, cwd=Path(__file__).resolve().parents[1], env=ENV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    summary = json.loads((tmp_path / "runs/smoke/s/summary.json").read_text())
    assert summary["folds_ok"] == ["chb02"]
