"""``python -m datamodules synth OUT [--preset realistic|easy] [knobs]``: write a synthetic corpus.

Every knob of :class:`~datamodules.synthetic.params.GenerationParams` has an option; one left
out keeps the preset's value. Bad values get one sentence on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time

from datamodules.recording import DatasetError

from .params import EVENT_KINDS, MORPHOLOGIES, PRESETS, GenerationParams, resolve


def _show(name: str) -> str:
    """The presets' values of knob ``name``, for the help text."""
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, tuple) and len(v) == 2 and all(isinstance(u, (int, float)) for u in v):
            return f"{v[0]:g}" if v[0] == v[1] else f"{v[0]:g}-{v[1]:g}"
        if isinstance(v, tuple):
            return ",".join(map(str, v))
        return f"{v:g}" if isinstance(v, float) else str(v)

    return "; ".join(f"{p}: {fmt(getattr(resolve(p), name))}" for p in PRESETS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m datamodules synth``."""
    parser.add_argument("out", help="corpus root to write (CHB-MIT layout)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="realistic",
                        help="realistic (hours of EEG, hard seizures, artifacts, inexact labels; default) or "
                             "easy (short recordings, clear seizures, exact labels: fast tests)")
    num = dict(type=float, nargs="+", metavar=("MIN", "MAX"))
    parser.add_argument("--patients", type=int, dest="n_patients", help=f"number of patients ({_show('n_patients')})")
    parser.add_argument("--recordings", type=int, nargs="+", metavar=("MIN", "MAX"), dest="n_recordings",
                        help=f"EDF files per patient ({_show('n_recordings')})")
    parser.add_argument("--hours", **num, help=f"hours of EEG per patient ({_show('hours')})")
    parser.add_argument("--minutes", type=float,
                        help=f"typical minutes per recording instead of --hours; each lasts 0.85-1.25x this "
                             f"({_show('minutes')})")
    parser.add_argument("--seed", type=int, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--seizures", type=int, nargs="+", metavar=("MIN", "MAX"), dest="seizures_per_patient",
                        help=f"seizures per patient ({_show('seizures_per_patient')})")
    parser.add_argument("--seizure-free", type=int, dest="seizure_free_recordings",
                        help=f"seizure-free recordings per patient, at least ({_show('seizure_free_recordings')})")
    parser.add_argument("--seizure-seconds", **num, dest="seizure_s",
                        help=f"shortest and longest seizure, s ({_show('seizure_s')})")
    parser.add_argument("--seizure-median", **num, dest="seizure_median_s",
                        help=f"range of a patient's median seizure duration, s ({_show('seizure_median_s')})")
    parser.add_argument("--ictal-gain", **num, dest="ictal_gain",
                        help=f"ictal over background RMS in the strongest onset-zone channel ({_show('ictal_gain')})")
    parser.add_argument("--morphologies", type=lambda s: tuple(v.strip() for v in s.split(",") if v.strip()),
                        help=f"comma-separated, among {','.join(MORPHOLOGIES)} ({_show('morphologies')})")
    parser.add_argument("--propagation", type=float,
                        help=f"share of seizures whose propagated rhythm outgrows the onset zone "
                             f"({_show('propagation')})")
    parser.add_argument("--ictal-emg", type=float, dest="ictal_emg",
                        help=f"share of seizures partly under muscle artifact ({_show('ictal_emg')})")
    parser.add_argument("--sleep", **num, help=f"share of time drowsy or asleep per patient ({_show('sleep')})")
    parser.add_argument("--artifacts", type=float,
                        help=f"scale of every artifact and hard-negative rate, 0 for none ({_show('artifacts')})")
    parser.add_argument("--rate", action="append", default=[], metavar="KIND=PER_HOUR", dest="rate",
                        help=f"events per hour of one kind, repeatable; kinds: {', '.join(EVENT_KINDS)}")
    parser.add_argument("--onset-error", type=float, nargs="+", metavar=("MIN", "MAX"), dest="onset_error_s",
                        help=f"annotated minus true onset, s ({_show('onset_error_s')})")
    parser.add_argument("--offset-error", type=float, dest="offset_error_s",
                        help=f"annotated offset within +/- this of the true one, s ({_show('offset_error_s')})")
    parser.add_argument("--montage", choices=("bipolar", "referential"),
                        help="EDF channels: the 23 CHB-MIT bipolar ones (default) or the simulated electrodes "
                             "against a common reference, labelled 'EEG FP1-REF'")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a synthetic corpus built with other parameters")


def knobs_from_args(args: argparse.Namespace) -> dict:
    """The ``generate_corpus`` keyword arguments given on the command line (None: the preset's)."""
    names = {f for f in GenerationParams.__dataclass_fields__} - {"preset", "version", "rates"}
    knobs = {}
    for name in names:
        v = getattr(args, name, None)
        if isinstance(v, list):
            if len(v) > 2:
                raise ValueError(f"--{name.replace('_', '-')} takes one or two values, got {len(v)}")
            v = v[0] if len(v) == 1 else tuple(v)
        knobs[name] = v
    rates = {}
    for item in args.rate:
        kind, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--rate {item!r} must read KIND=PER_HOUR, e.g. muscle=30")
        try:
            rates[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--rate {item!r}: {value!r} is not a number of events per hour") from None
    knobs["rates"] = rates or None
    return knobs


def run(args: argparse.Namespace) -> int:
    """Build the corpus described by ``args`` (from :func:`add_arguments`); 0 on success, 2 on bad input."""
    from .corpus import generate_corpus

    t0 = time.perf_counter()
    try:
        truth = generate_corpus(args.out, preset=args.preset, overwrite=args.overwrite,
                                progress=lambda line: print(line, file=sys.stderr, flush=True),
                                **knobs_from_args(args))
    except (ValueError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{truth.root}: {truth.params.preset} preset, {len(truth.patients)} patients, "
          f"{len(truth.recordings)} recordings ({truth.hours:.2f} h), {truth.n_seizures} seizures "
          f"in {time.perf_counter() - t0:.1f} s")
    for p in truth.patients:
        durations = ", ".join(f"{s.true_duration_s:.0f}" for s in p.seizure_details)
        print(f"  {p.patient}: SOZ {','.join(p.soz)} ({p.region}), {p.morphology}, "
              f"{p.n_seizures} seizure(s) of {durations} s")
    return 0
