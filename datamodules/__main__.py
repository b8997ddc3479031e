"""``python -m datamodules <command>``: dataset tools.

Commands live in :data:`COMMANDS` as ``name -> (help, add_arguments, run)``; a command's module
is imported only when that command runs, so ``inspect`` never pays for the synthetic generator's
imports. To add one (the lead's ``cache``), add a line with :func:`lazy`::

    "cache": ("build the HDF5 cache", lazy("datamodules.cache", "add_arguments"),
              lazy("datamodules.cache", "run")),

Exit codes: 0 success, 2 bad input (one sentence on stderr naming the file or key, never a
traceback), 1 an unexpected failure (one sentence too; ``--debug`` shows the traceback),
130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable

from datamodules.recording import DatasetError


def lazy(module: str, attribute: str) -> Callable:
    """A function that imports ``module`` on first call and forwards to ``module.attribute``."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), attribute)(*args, **kwargs)

    call.__qualname__ = f"{module}.{attribute}"
    return call


# --------------------------------------------------------------------------- inspect
def inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="dataset root (CHB-MIT download or SzCORE BIDS folder)")
    parser.add_argument("--json", action="store_true",
                        help="print the whole index as JSON (every recording, every warning)")
    parser.add_argument("--warnings", action="store_true",
                        help="list every warning under the table")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def inspect_run(args: argparse.Namespace) -> int:
    from datamodules.sources import scan

    index = scan(args.root)
    if args.json:
        json.dump(index.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    rows = [("patient", "recording", "duration", "seizures", "warnings")]
    for r in index.recordings:
        rows.append((r.patient if r.subject in ("", r.patient) else f"{r.patient} ({r.subject})",
                     r.recording_id, _hms(r.duration_s),
                     str(r.n_seizures) if r.annotated else "n/a", str(len(r.warnings))))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if k < 2 else cell.rjust(w)
                        for k, (cell, w) in enumerate(zip(row, widths))))
    recs = index.recordings
    n_warn = sum(len(r.warnings) for r in recs)
    print(
        f"\n{index.layout} at {index.root}: {len(index.patients)} patient(s), {len(recs)} recording(s), "
        f"{sum(r.duration_s for r in recs) / 3600:.2f} h, {sum(r.n_seizures for r in recs)} seizure(s), "
        f"{sum(not r.annotated for r in recs)} unannotated, "
        f"{sum(r.soz is not None for r in recs)} with onset zone; "
        f"{n_warn} recording warning(s), {len(index.warnings)} dataset warning(s)"
    )
    if args.warnings:
        for w in index.warnings:
            print(f"warning: {w}")
        for r in recs:
            for w in r.warnings:
                print(f"warning: {w}")
    elif n_warn or index.warnings:
        print("(--warnings lists them, --json gives them per recording)")
    return 0


#: Subcommand -> (help, add_arguments(parser), run(args) -> exit code).
COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "inspect": ("print the recording index of a dataset root", inspect_arguments, inspect_run),
    "synth": ("write a synthetic CHB-MIT-shaped corpus",
              lazy("datamodules.synthetic", "add_arguments"), lazy("datamodules.synthetic", "run")),
    "cache": ("build (or update) the HDF5 cache of a dataset root",
              lazy("datamodules.cache", "add_arguments"), lazy("datamodules.cache", "run")),
    "convert": ("write a dataset in another layout (SzCORE BIDS, TUSZ, Siena, SeizeIT)",
                lazy("datamodules.convert", "add_arguments"), lazy("datamodules.convert", "run")),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; only ``command``'s arguments are registered (others import nothing)."""
    parser = argparse.ArgumentParser(prog="python -m datamodules", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
        if name == command:
            add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = next((a for a in argv if not a.startswith("-")), None)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    try:
        parser = build_parser(command if command in COMMANDS else None)
        args = parser.parse_args(argv)
        return int(COMMANDS[args.command][2](args) or 0)
    except BrokenPipeError:  # `inspect ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (DatasetError, OSError, ValueError) as e:
        if debug:
            traceback.print_exc()
        print(f"error: {_sentence(e)}", file=sys.stderr)
        return 2
    except ImportError as e:
        if debug:
            traceback.print_exc()
        print(f"error: command {command!r} is unavailable ({e})", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: still one sentence, the traceback on request
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(e).__name__} in {command!r}: {_sentence(e)} "
              "(run with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


def _sentence(e: BaseException) -> str:
    """The exception as one line (OSError: with its file name)."""
    if isinstance(e, OSError) and not isinstance(e, DatasetError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
