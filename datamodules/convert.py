"""``python -m datamodules convert ROOT --to LAYOUT OUT``: a dataset rewritten in another layout.

Any layout :func:`datamodules.sources.scan` reads can be written as SzCORE BIDS (to share it, or
score it with the official SzCORE tools) or in the TUSZ, Siena and SeizeIT layouts (the writers
live next to their readers: :data:`datamodules.sources.WRITERS`). The output is built in a
temporary sibling folder and renamed into place when complete, then read back and checked:
every patient must come back with the same recordings and the same seizures (to the second for
Siena, whose lists hold clock times), or the command fails naming what differs. Onset zones go
to ``soz.tsv`` under the new patient names.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording

log = logging.getLogger(__name__)

#: How far a seizure time may move in a layout (Siena writes clock times to the second).
TOLERANCE_S = {"siena": 1.0}


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`convert` wrote."""

    out: str
    layout: str
    patients: dict
    n_recordings: int
    n_seizures: int
    skipped: tuple[tuple[str, str], ...]


def _writable(r: Recording) -> str | None:
    if not r.annotated:
        return "unannotated (a converted dataset would have to call it seizure-free)"
    if not r.channels or r.duration_s <= 0:
        return next((w for w in r.warnings if "unreadable EDF" in w or "no data records" in w),
                    f"{r.path}: no signal to write")
    return None


def convert(root: str | os.PathLike, out: str | os.PathLike, layout: str,
            patients: list[str] | None = None) -> ConversionReport:
    """Write the dataset at ``root`` in ``layout`` under ``out`` (which must not exist yet).

    Raises
    ------
    DatasetError
        An unknown layout, an existing ``out``, a source that cannot be read, or a written
        dataset that does not read back the same (one sentence naming what).
    """
    from datamodules.sources import WRITERS, scan
    from datamodules.sources.soz import SOZ_FILENAME, write_soz_tsv

    if layout not in WRITERS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {', '.join(WRITERS)}")
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out} already exists; choose a new folder (nothing is overwritten)")
    index = scan(root)
    recs = list(index.recordings)
    if patients:
        unknown = sorted(set(patients) - {r.patient for r in recs})
        if unknown:
            raise DatasetError(f"patient(s) {', '.join(unknown)} are not in {index.root}")
        recs = [r for r in recs if r.patient in patients]
    skipped = tuple((r.recording_id, why) for r in recs if (why := _writable(r)) is not None)
    keep = [r for r in recs if _writable(r) is None]
    if not keep:
        raise DatasetError(f"{index.root}: no annotated, readable recording to convert")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        names = WRITERS[layout](keep, tmp)
        zones = {}
        for r in keep:
            if r.soz and names[r.patient] not in zones:
                zones[names[r.patient]] = (r.soz, r.soz_region)
        if zones:
            write_soz_tsv(tmp / SOZ_FILENAME, zones)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    check_round_trip(keep, out, layout, names)
    return ConversionReport(str(out), layout, dict(names), len(keep), sum(r.n_seizures for r in keep), skipped)


def check_round_trip(source: list[Recording], out: str | os.PathLike, layout: str, names: dict) -> None:
    """Read ``out`` back and compare, per patient, the recordings and seizures with ``source``."""
    from datamodules.sources import scan

    back = scan(out)
    if back.layout != layout:
        raise DatasetError(f"{out}: written as {layout} but reads back as {back.layout}")
    tol = TOLERANCE_S.get(layout, 1e-3)
    for patient, name in names.items():
        want = sorted((r.duration_s, r.seizures) for r in source if r.patient == patient)
        got = sorted((r.duration_s, r.seizures) for r in back.recordings if r.patient == name)
        if len(want) != len(got):
            raise DatasetError(f"{out}: patient {name} ({patient}) reads back {len(got)} recording(s), "
                               f"{len(want)} were written")
        want_sz = sorted(s for _, sz in want for s in sz)
        got_sz = sorted(s for _, sz in got for s in sz)
        if len(want_sz) != len(got_sz) or any(abs(a - c) > tol or abs(b - d) > tol
                                              for (a, b), (c, d) in zip(want_sz, got_sz)):
            raise DatasetError(f"{out}: patient {name} ({patient}) reads back seizures {got_sz}, "
                               f"{want_sz} were written")


# --------------------------------------------------------------------------- CLI
def add_arguments(parser) -> None:
    from datamodules.sources import WRITERS

    parser.add_argument("root", help="dataset root in any layout `inspect` reads")
    parser.add_argument("--to", required=True, choices=sorted(WRITERS), help="layout to write")
    parser.add_argument("out", help="output folder (must not exist)")
    parser.add_argument("--patients", nargs="*", default=None, help="only these patients")


def run(args) -> int:
    report = convert(args.root, args.out, args.to, args.patients)
    print(f"{report.out}: {report.layout}, {len(report.patients)} patient(s), {report.n_recordings} recording(s), "
          f"{report.n_seizures} seizure(s); read back and checked")
    for source, name in report.patients.items():
        print(f"  {source} -> {name}")
    for rid, why in report.skipped:
        print(f"skipped {rid}: {why}")
    return 0
