"""``make sweep NAME=... LAUNCHER=slurm|local``: one job per held-out patient, then the summary.

The cache is built once here, before any job starts (jobs would otherwise race to build it;
the cache is safe under that race, but it is wasted work). Each job runs :func:`sweep_fold`,
which is :func:`experiments.runner.run_fold` on the saved config: finished folds are skipped
and a requeued job resumes from its fold's last checkpoint. A W&B sweep file is written beside
the run for users who prefer ``wandb agent``.
"""
from __future__ import annotations

import functools
import time

from omegaconf import DictConfig, OmegaConf


def sweep_fold(cfg_container: dict, run_dir: str, fold: str) -> dict:
    """One fold in a job (module-level so submitit can pickle it)."""
    import os
    os.environ.setdefault("WANDB_SILENT", "true")
    from .runner import run_fold

    r = run_fold(OmegaConf.create(cfg_container), fold, run_dir)
    if not r.ok:
        raise RuntimeError(f"fold {fold} failed: {r.error}")
    return {"fold": fold, "metrics": r.metrics_path}


def run_sweep(cfg: DictConfig) -> int:
    from .launchers import launch_folds, write_wandb_sweep
    from .report import aggregate_run
    from .runner import fold_done, prepare_run

    t0 = time.time()
    run_dir, folds = prepare_run(cfg)
    todo = [f for f in folds if not fold_done(run_dir, f)]
    launcher = str(cfg.launcher.name)
    sweep_file = write_wandb_sweep(run_dir / "wandb_sweep.yaml", cfg.name, folds,
                                   [f"run_id={cfg.run_id}"], project=cfg.wandb.project)
    print(f"sweep {cfg.name}/{cfg.run_id}: {len(todo)} of {len(folds)} fold(s) to run with the "
          f"{launcher} launcher -> {run_dir} (W&B sweep file: {sweep_file})", flush=True)
    container = OmegaConf.to_container(cfg, resolve=True)
    container["trainer"]["enable_progress_bar"] = False  # job logs, not terminals
    outcomes = launch_folds(functools.partial(sweep_fold, container, str(run_dir.resolve())), todo,
                            launcher=launcher, log_dir=run_dir / "jobs",
                            slurm=OmegaConf.to_container(cfg.launcher.slurm, resolve=True),
                            max_parallel=int(cfg.launcher.max_parallel), job_name=f"{cfg.name}")
    for o in outcomes:
        if not o.ok:
            print(f"fold {o.fold} failed (job {o.job_id}); log: {o.stderr}", flush=True)
    summary = aggregate_run(run_dir, cfg, wall_seconds=time.time() - t0)
    print(summary["text"], flush=True)
    return 0 if all(o.ok for o in outcomes) and not summary["folds_failed"] else 1
