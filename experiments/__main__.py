"""``python -m experiments <command>``: run, sweep, aggregate, predict, show and list.

    python -m experiments run chb_loso [key=value ...]        # every fold here, then the summary
    python -m experiments sweep chb_loso launcher.name=slurm   # one job per fold, then the summary
    python -m experiments show chb_loso [key=value ...]       # the complete config a run would record
    python -m experiments aggregate runs/chb_loso/<run_id>     # (re)write the summary of a run
    python -m experiments predict --ckpt C --edf F [--out events.tsv] [--panel panel.png]
    python -m experiments list                                 # the experiments there are

Exit codes: 0 success, 1 a fold failed (the others ran) or an unexpected error, 2 bad input (one
sentence, no traceback; ``--debug`` shows it), 128 + N when stopped by signal N (resumable).
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
    warnings.filterwarnings("ignore", ".*exists and is not empty.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    from .config import available
    from .predict import add_arguments as predict_args

    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, text in (("run", "run a LOSO experiment (all folds in this process)"),
                       ("sweep", "one job per held-out patient (local processes or SLURM), then the summary"),
                       ("show", "print the complete config (every default filled in) and check it")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("name", help=f"experiment: {', '.join(available())}")
        p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. trainer.max_epochs=5)")
        if name != "show":
            p.add_argument("--force-new", action="store_true",
                           help="the run_id exists with another config: start a new run (id with a suffix)")
    p = sub.add_parser("aggregate", help="write summary.json/md, plots and report.html of a run folder")
    p.add_argument("run_dir")
    p = sub.add_parser("predict", help="score one EDF recording with a trained checkpoint")
    predict_args(p)
    sub.add_parser("list", help="list the experiments")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line
    argv = [a for a in argv if a != "--debug"]
    try:
        args = _parser().parse_args(argv)
        _quiet()
        return _dispatch(args)
    except SystemExit:
        raise
    except Exception as e:
        if debug:
            raise
        print(f"error: {_sentence(e)}", file=sys.stderr)
        return 2 if _is_input_error(e) else 1


def _dispatch(args) -> int:
    from .config import available, load_config

    if args.command == "list":
        print("\n".join(available()))
        return 0
    if args.command == "aggregate":
        from pathlib import Path

        from .report import aggregate_run
        from .run_folder import RUN_FILE
        if not (Path(args.run_dir) / RUN_FILE).exists():
            from .instantiate import ConfigError
            raise ConfigError(f"{args.run_dir} is not a run folder (no {RUN_FILE})")
        print(aggregate_run(args.run_dir)["text"])
        return 0
    if args.command == "predict":
        from .predict import run
        return run(args)
    cfg = load_config(args.name, args.overrides)
    from .factory import check_buildable
    check_buildable(cfg)  # every object once, before any data is touched
    if args.command == "show":
        from .config import to_yaml
        print(to_yaml(cfg), end="")
        return 0
    if args.command == "run":
        from .runner import run_experiment
        return run_experiment(cfg, force_new=args.force_new)
    from .sweep import run_sweep
    return run_sweep(cfg, force_new=args.force_new)


def _input_errors() -> tuple[type, ...]:
    from datamodules.recording import DatasetError
    from eeg.montage import MontageError
    from lightning_modules.checkpoints import CheckpointError

    from .instantiate import ConfigError
    from .predict import PredictError
    return (ConfigError, DatasetError, CheckpointError, PredictError, MontageError, OSError)


def _is_input_error(e: Exception) -> bool:
    return isinstance(e, _input_errors())


def _sentence(e: Exception) -> str:
    """One line saying what went wrong (with the file for OS errors)."""
    if isinstance(e, OSError) and e.strerror:
        where = f" {e.filename}" if e.filename else ""
        hint = " (check permissions, or choose another folder, e.g. cache_dir=... or runs_dir=...)" \
            if isinstance(e, PermissionError) else ""
        return f"{e.strerror}:{where}{hint}"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if _is_input_error(e):
        return text or type(e).__name__
    return f"{type(e).__name__}: {text} (rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
