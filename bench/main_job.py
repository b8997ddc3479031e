"""The main job as a user runs it (``make experiment NAME=chb_loso``), timed from outside, with
where its time went (the study's own ``summary.json`` timing) and its headline results, so a speed
change that costs quality shows in the same run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.report import FOLD_STAGES

#: Stages of a study, in the order they happen, as summary.json's timing names them.
STAGES = (("data_s", "corpus + cache"), *FOLD_STAGES.items(), ("report_s", "summary + report"))


def run_main_job(name: str, runs_dir: Path, args: tuple[str, ...] = (), timeout_s: float = 3600.0) -> dict:
    """Run ``python -m experiments run NAME`` in a fresh run folder under ``runs_dir``, with the
    project's default corpus and cache folders (as ``make experiment`` does: built on the first run,
    reused after), and return its wall time, stage breakdown and headline results."""
    from experiments.config import load_config
    from experiments.corpus import dataset_folder

    run_id = time.strftime("bench-%Y%m%dT%H%M%S")
    corpus_existed = Path(dataset_folder(load_config(name, list(args)))).is_dir()
    cmd = [sys.executable, "-m", "experiments", "run", name, f"run_id={run_id}", f"runs_dir={runs_dir}",
           "trainer.enable_progress_bar=false", *args]
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"main job {name} failed (exit {proc.returncode}): {' | '.join(tail)}")
    summary = json.loads((Path(runs_dir) / name / run_id / "summary.json").read_text())
    timing = summary.get("timing") or {}
    folds = timing.get("folds") or {}
    stages = {"data_s": timing.get("data_s"), **{k: folds.get(k) for k in FOLD_STAGES},
              "report_s": timing.get("report_s")}
    known = sum(v for v in stages.values() if v is not None)
    stages["startup_and_other_s"] = round(max(wall - known, 0.0), 1)
    model = summary.get("model")
    methods = summary.get("methods", {})

    def f1(method: str):
        m = methods.get(method, {}).get("aggregate", {}).get("event", {}).get("mean_over_patients", {}).get("f1")
        return None if m is None else {k: m.get(k) for k in ("mean", "lo", "hi")}

    return {"name": name, "command": " ".join(["python", "-m", "experiments", "run", name, *args]),
            "wall_s": round(wall, 1), "minutes": round(wall / 60, 2), "corpus_existed": corpus_existed,
            "stages": stages, "panels_s": folds.get("panels_s"), "folds": len(summary.get("folds_ok", [])),
            "model": model,
            "event_f1": {m: f1(m) for m in methods}, "run_dir": str(Path(runs_dir) / name / run_id)}
