"""The SLURM launcher against a real single-node SLURM cluster (slurmctld + slurmd + munge on localhost).

Also ``make sweep`` end to end through it (one array task per held-out patient, then the aggregated
summary and the W&B sweep file). Every test of the cluster lives in this one file, so a parallel
run (pytest-xdist, one worker per file) never starts or stops the daemons from two workers.

The session fixture :func:`slurm_cluster` installs and starts the cluster when it can (root with apt,
as in CI) and skips with the reason otherwise; set ``SEIZURE_REQUIRE_SLURM=1`` to make that a failure
instead (CI, so the SLURM path is never silently untested). The fixture lives in conftest.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from experiments.launchers import _selftest_fold, launch_folds
from tests.support import slurm_cluster as sc

TINY_JOB = dict(cpus_per_task=1, mem_gb=1, timeout_min=5)


@pytest.mark.slurm
def test_cluster_is_up_and_ensure_is_idempotent(slurm_cluster):
    info = slurm_cluster.sinfo()
    assert slurm_cluster.node in info and "idle" in info
    t0 = time.monotonic()
    again = sc.ensure_cluster()  # reuses the running cluster: starts nothing
    assert again.started == () and again.node == slurm_cluster.node
    assert time.monotonic() - t0 < 10


@pytest.mark.slurm
def test_job_array_collects_results_and_failures(slurm_cluster, tmp_path, capsys):
    folds = ["chb01", "fail02", "chb03", "crash04"]
    out = launch_folds(_selftest_fold, folds, launcher="slurm", log_dir=tmp_path,
                       slurm=dict(TINY_JOB, partition=slurm_cluster.partition), job_name="selftest",
                       poll_s=0.5, grace_s=3.0, timeout_s=150)
    assert [o.fold for o in out] == folds
    assert [o.ok for o in out] == [True, False, True, False]
    # one job array: every task is <array id>_<index>, in fold order, and ran under SLURM
    array_ids = {o.job_id.split("_")[0] for o in out}
    assert len(array_ids) == 1 and [o.job_id.split("_")[1] for o in out] == ["0", "1", "2", "3"]
    assert [o.result["slurm_job"] for o in out if o.ok] == [out[0].job_id, out[2].job_id]
    assert "RuntimeError: self-test fold fail02 fails on purpose" in out[1].error
    assert "without a result" in out[3].error and "exit code 3" in out[3].error  # crash: srun's report
    script = (tmp_path / f"{array_ids.pop()}_submission.sh").read_text()
    for flag in ("--array=0-3%", "--cpus-per-task=1", "--mem=1GB", "--time=5", "--job-name=selftest",
                 "--signal=USR2@90", f"--partition={slurm_cluster.partition}"):
        assert flag in script
    assert "--gpus-per-node" not in script  # gpus_per_node=0: not requested
    err = capsys.readouterr().err
    assert err.count("[slurm] ") == 5 and "4/4" in err  # submission line + one line per fold


@pytest.mark.slurm
def test_signalled_fold_is_checkpointed_requeued_and_collected(slurm_cluster, tmp_path):
    """USR2 (what SLURM sends `signal_delay_s` before the time limit) -> submitit checkpoint -> requeue."""
    box: dict = {}
    thread = threading.Thread(daemon=True, target=lambda: box.setdefault("out", launch_folds(
        _selftest_fold, ["slow01", "chb02"], launcher="slurm", log_dir=tmp_path, slurm=TINY_JOB,
        poll_s=0.5, grace_s=3.0, timeout_s=150, progress=False)))
    thread.start()
    log = _wait_for(lambda: next((p for p in tmp_path.glob("*_log.out")
                                  if "fold slow01 started (restarts=0)" in p.read_text()), None), 60,
                    "the slow fold to start")
    job_id = log.name.rsplit("_", 2)[0]  # <array>_<index>_<task>_log.out
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    # slurmctld holds a requeued batch job for 120 s (BeginTime); release it now to keep the test short
    _wait_for(lambda: _squeue(job_id).startswith("PENDING"), 60, f"{job_id} to be requeued")
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now"], check=True)
    thread.join(timeout=120)
    assert not thread.is_alive(), "launch_folds did not return after the requeued fold ran"
    outcome, other = box["out"]
    assert outcome.ok and outcome.result["restarts"] == 1  # second attempt, same array task
    assert outcome.job_id == job_id == outcome.result["slurm_job"]
    assert other.ok and other.result["restarts"] == 0
    assert "Requeued job" in outcome.stdout.read_text() + outcome.stderr.read_text()


@pytest.mark.slurm
def test_sbatch_refusal_is_a_clear_error(slurm_cluster, tmp_path):
    with pytest.raises(RuntimeError, match="could not submit the job array with sbatch.*(?i:invalid partition)"):
        launch_folds(_selftest_fold, ["chb01"], launcher="slurm", log_dir=tmp_path,
                     slurm=dict(TINY_JOB, partition="no_such_partition"), progress=False)


def test_foreign_slurm_conf_is_never_overwritten(tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    monkeypatch.setattr(sc, "CONF_PATH", conf)
    node_line = "NodeName=n1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=2000"
    sc._write_conf(node_line)
    text = conf.read_text()
    assert text.startswith(sc.CONF_MARKER) and f"{node_line} NodeAddr=127.0.0.1" in text
    assert "PartitionName=debug Nodes=n1 Default=YES" in text and "SelectType=select/cons_tres" in text
    sc._write_conf(node_line)  # ours: rewritten without complaint
    conf.write_text("ClusterName=site\n")
    with pytest.raises(sc.SlurmUnavailable, match="not written by this helper"):
        sc._write_conf(node_line)
    assert conf.read_text() == "ClusterName=site\n"


def test_unavailable_cluster_says_why(monkeypatch):
    monkeypatch.setattr(sc, "_running_cluster", lambda: None)
    monkeypatch.setattr(sc.os, "geteuid", lambda: 1000)
    with pytest.raises(sc.SlurmUnavailable, match=r"not root \(uid 1000\)"):
        sc.ensure_cluster()
    monkeypatch.setattr(sc.os, "geteuid", lambda: 0)
    monkeypatch.setattr(sc, "_which", lambda name: None)  # nothing installed, no apt-get either
    with pytest.raises(sc.SlurmUnavailable, match="no apt-get to install slurm-wlm munge"):
        sc.ensure_cluster()
    with pytest.raises(sc.SlurmUnavailable, match="binaries missing .*install=False"):
        sc.ensure_cluster(install=False)


def test_unreaped_daemon_counts_as_stopped(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        pidfile = tmp_path / "daemon.pid"
        pidfile.write_text(f"{pid}\n")
        _wait_for(lambda: not sc._pid_alive(pidfile), 5, "the exited child to count as stopped")
        pidfile.write_text(f"{os.getpid()}\n")
        assert sc._pid_alive(pidfile)
    finally:
        os.waitpid(pid, 0)


def _squeue(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True).stdout.strip()


def _wait_for(probe, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_sweep_through_slurm(slurm_cluster, tmp_path):
    args = ["sweep", "smoke", "launcher.name=slurm", "run_id=s1", "trainer.max_epochs=1",
            f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
            f"runs_dir={tmp_path / 'runs'}", "launcher.slurm.timeout_min=20", "launcher.slurm.mem_gb=4",
            "launcher.slurm.cpus_per_task=1"]
    if slurm_cluster.partition:
        args.append(f"launcher.slurm.partition={slurm_cluster.partition}")
    r = subprocess.run([sys.executable, "-m", "experiments", *args], capture_output=True, text=True,
                       timeout=900, env={**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs/smoke/s1"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds_ok"] == ["chb01", "chb02", "chb03"] and not summary["folds_failed"]
    assert summary["methods"][summary["model"]]["aggregate"]["event"]["pooled"]["ref"] >= 3
    logs = list((run / "jobs").glob("*_log.out"))
    assert len(logs) == 3, "one SLURM array task per fold"
    sweep = yaml.safe_load((run / "wandb_sweep.yaml").read_text())
    assert sweep["method"] == "grid"
    assert sweep["parameters"]["folds"]["values"] == ["[chb01]", "[chb02]", "[chb03]"]
