"""``python -m experiments <command>``: run, sweep, aggregate and predict.

    python -m experiments run chb_loso [key=value ...]        # every fold here, then the summary
    python -m experiments sweep chb_loso launcher.name=slurm   # one job per fold, then the summary
    python -m experiments aggregate runs/chb_loso/<run_id>     # (re)write the summary of a run
    python -m experiments predict --ckpt C --edf F [--out events.tsv] [--ecam panel.png]
    python -m experiments list                                 # the experiments there are

Exit codes: 0 success, 1 a fold failed (the others ran), 2 bad input (one sentence, no traceback).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings


def _quiet() -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_MODE", "offline")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    warnings.filterwarnings("ignore", ".*`srun` command is available.*")  # on a SLURM login node, run locally
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, available, load_config

    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, text in (("run", "run a LOSO experiment (all folds in this process)"),
                       ("sweep", "one job per held-out patient (local processes or SLURM), then the summary")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("name", help=f"experiment: {', '.join(available())}")
        p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. trainer.max_epochs=5)")
    p = sub.add_parser("aggregate", help="write summary.json/md, plots and report.html of a run folder")
    p.add_argument("run_dir")
    p = sub.add_parser("predict", help="score one EDF recording with a trained checkpoint")
    from .predict import add_arguments as predict_args
    predict_args(p)
    sub.add_parser("list", help="list the experiments")
    args = parser.parse_args(argv)
    _quiet()
    from datamodules.recording import DatasetError

    try:
        if args.command == "list":
            print("\n".join(available()))
            return 0
        if args.command == "aggregate":
            from .report import aggregate_run
            print(aggregate_run(args.run_dir)["text"])
            return 0
        if args.command == "predict":
            from .predict import run
            return run(args)
        cfg = load_config(args.name, args.overrides)
        if args.command == "run":
            from .runner import run_experiment
            return run_experiment(cfg)
        from .sweep import run_sweep
        return run_sweep(cfg)
    except (ConfigError, DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
