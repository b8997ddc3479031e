"""End to end: a tiny LOSO study from an empty folder (corpus, cache, training, prediction,
SzCORE scoring, summary, report, panels, offline W&B), killed and resumed, and a failing fold."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _args(tmp: Path, run_id: str, *extra) -> list[str]:
    return ["run", "smoke", f"run_id={run_id}", f"synthetic.root={tmp / 'corpus'}",
            f"cache_dir={tmp / 'cache'}", f"runs_dir={tmp / 'runs'}", *extra]


def _run(tmp: Path, run_id: str, *extra, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments", *_args(tmp, run_id, *extra)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study, killed during its first fold, then rerun to completion."""
    tmp = tmp_path_factory.mktemp("study")
    cmd = [sys.executable, "-m", "experiments", *_args(tmp, "r1", "trainer.max_epochs=3")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    last = tmp / "runs/smoke/r1/folds/chb01/checkpoints/last.ckpt"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.2)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = _run(tmp, "r1", "trainer.max_epochs=3")
    return tmp, killed, resumed


def test_resumed_run_completes_and_writes_everything(study):
    tmp, killed, resumed = study
    assert killed, "the first fold finished before it could be killed"
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
        pe = summary["per_patient"][p]["event"]
        assert pe["ref"] >= 1 and set(pe) >= {"sensitivity", "precision", "f1", "fp_per_24h"}
    assert "mean ± sd" in (run / "summary.md").read_text()
    html = (run / "report.html").read_text()
    assert "data:image/png;base64" in html and "chb02" in html
    assert (run / "per_patient.png").exists() and (run / "timelines.png").exists()
    media = list((run / "wandb").glob("offline-run-*/files/media/images/**/*.png"))
    assert media, "ECAM panels are in the offline W&B run folders, ready for wandb sync"


def test_killed_fold_resumed_from_its_checkpoint(study):
    tmp, _, resumed = study
    metrics = (tmp / "runs/smoke/r1/folds/chb01/csv/metrics.csv").read_text().splitlines()
    epochs = [int(line.split(",")[0]) for line in metrics[1:] if line.split(",")[0].isdigit()]
    # the rerun's log starts after the checkpointed epoch: epoch 0 was not trained again
    assert epochs and min(epochs) >= 1 and max(epochs) >= 2
    assert "resuming fold chb01 from" in resumed.stdout


def test_rerun_skips_finished_folds(study):
    tmp, _, _ = study
    t0 = time.time()
    again = _run(tmp, "r1", "trainer.max_epochs=3")
    assert again.returncode == 0
    assert again.stdout.count("already finished, skipped") == 3
    assert time.time() - t0 < 120


def test_predict_cli_scores_a_users_edf(study):
    tmp, _, _ = study
    ckpt = tmp / "runs/smoke/r1/folds/chb02/checkpoints/best.ckpt"
    edf = sorted((tmp / "corpus").glob("chb02/*.edf"))[0]
    out, png = tmp / "pred_events.tsv", tmp / "pred.png"
    r = subprocess.run([sys.executable, "-m", "experiments", "predict", "--ckpt", str(ckpt), "--edf", str(edf),
                        "--out", str(out), "--ecam", str(png)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.read_text().startswith("onset\tduration\teventType") and png.stat().st_size > 10_000


def test_a_failing_fold_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    from experiments import registry
    from experiments.config import load_config
    from experiments.runner import run_experiment

    real = registry.build_model

    def flaky(cfg, dm):
        if dm.test_patient == "chb02":
            raise RuntimeError("simulated failure")
        return real(cfg, dm)

    monkeypatch.setattr(registry, "build_model", flaky)
    cfg = load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                f"runs_dir={tmp_path / 'runs'}", "run_id=f", "trainer.max_epochs=1",
                                "folds=[chb01,chb02]", "maps.enabled=false", "wandb.enabled=false"], env={})
    assert run_experiment(cfg) == 1
    summary = json.loads((tmp_path / "runs/smoke/f/summary.json").read_text())
    assert summary["folds_ok"] == ["chb01"]
    assert "simulated failure" in summary["folds_failed"]["chb02"]
    assert "simulated failure" in (tmp_path / "runs/smoke/f/summary.md").read_text()


def test_szloc_fold_localizes_and_scores(tmp_path):
    """One SZLoc fold end to end: clips, the multi-task loss, onset-map panels, per-window
    probabilities scored the SzCORE way, localization metrics in metrics.json."""
    r = subprocess.run([sys.executable, "-m", "experiments", "run", "smoke_szloc", "run_id=z",
                        "folds=[chb02]", f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                        f"runs_dir={tmp_path / 'runs'}", "wandb.enabled=false"],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
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


def test_pruned_fold_compacts_and_saves_a_rebuildable_checkpoint(tmp_path):
    from experiments.config import load_config
    from experiments.predict import load_checkpoint
    from experiments.runner import run_experiment
    from lightning_modules.cost import count_macs

    cfg = load_config("smoke", [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                                f"runs_dir={tmp_path / 'runs'}", "run_id=p", "folds=[chb02]",
                                "pruning.enabled=true", "pruning.start_epoch=0", "pruning.every_n_epochs=1",
                                "pruning.fraction_per_round=0.5", "trainer.max_epochs=3",
                                "maps.enabled=false", "wandb.enabled=false"], env={})
    assert run_experiment(cfg) == 0
    m = json.loads((tmp_path / "runs/smoke/p/folds/chb02/metrics.json").read_text())
    pr = m["pruning"]
    assert pr["sparsity"] >= 0.55 and pr["macs_after"] <= 0.5 * pr["macs_before"]
    assert m["model"]["macs_per_input"] == pr["macs_after"]
    module = load_checkpoint(m["checkpoint"])
    import torch
    assert count_macs(module.model, torch.zeros(1, 18, 512)) == pr["macs_after"]
