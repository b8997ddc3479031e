"""`make sweep` end to end on a real single-node SLURM cluster: one array task per held-out
patient, then the aggregated summary. Also the W&B sweep file written beside the run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml


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
