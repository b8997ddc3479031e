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


def run_sweep(cfg: DictConfig, force_new: bool = False) -> int:
    """Exit code 0 all folds done, 1 a fold failed, 128 + signal number when interrupted (jobs
    already submitted keep running; rerun the same run_id to collect them)."""
    import sys

    from .launchers import launch_folds, write_wandb_sweep
    from .report import aggregate_run
    from .runner import SIGNALS, Interrupted, open_run, prepare_data

    t0 = time.time()
    with SIGNALS:
        try:
            folder = open_run(cfg, force_new)
            with folder.lock():
                folds = prepare_data(cfg)
                todo = [f for f in folds if not folder.fold_done(f)]
                launcher = str(cfg.launcher.name)
                sweep_file = write_wandb_sweep(folder.path / "wandb_sweep.yaml", cfg.name, folds,
                                               [f"run_id={cfg.run_id}"],
                                               project=cfg.wandb.project if cfg.wandb else "seizure-lightning")
                print(f"sweep {cfg.name}/{cfg.run_id}: {len(todo)} of {len(folds)} fold(s) to run with the "
                      f"{launcher} launcher -> {folder.path} (W&B sweep file: {sweep_file})", flush=True)
                container = OmegaConf.to_container(cfg, resolve=True)
                container["trainer"]["enable_progress_bar"] = False  # job logs, not terminals
                outcomes = launch_folds(functools.partial(sweep_fold, container, str(folder.path.resolve())), todo,
                                        launcher=launcher, log_dir=folder.path / "jobs",
                                        slurm=OmegaConf.to_container(cfg.launcher.slurm, resolve=True),
                                        max_parallel=int(cfg.launcher.max_parallel), job_name=f"{cfg.name}")
                for o in outcomes:
                    if not o.ok:
                        print(f"fold {o.fold} failed (job {o.job_id}); log: {o.stderr}", flush=True)
                summary = aggregate_run(folder.path, cfg, wall_seconds=time.time() - t0)
        except (Interrupted, KeyboardInterrupt) as e:
            code = e.exit_code if isinstance(e, Interrupted) else 130
            print(f"sweep interrupted: rerun with run_id={cfg.run_id} to collect what is left", file=sys.stderr,
                  flush=True)
            return code
    print(summary["text"], flush=True)
    return 0 if all(o.ok for o in outcomes) and not summary["folds_failed"] else 1
