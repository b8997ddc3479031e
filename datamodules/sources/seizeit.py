"""SeizeIT1 (KU Leuven), the scalp-EEG part.

Chatzichristos et al. (2022/2023), "Multimodal detection of typical absence seizures..." and the
SeizeIT1 dataset (KU Leuven RDR, doi:10.48804/P5Q0OJ). The download holds::

    P_ID10/P_ID10_r1.edf  P_ID10/P_ID10_r1_a1.tsv  ...

EDF files hold referential scalp channels (``Fp1``, ``T3``...), behind-the-ear channels
(``OorLiAchter``...), sphenoidal and ECG channels, at 250 Hz. ``_a1.tsv`` (annotator 1)
opens with ``#`` comment lines (source, subject, the type and origin codes), then one
tab-separated row per seizure: ``start  stop  type  comment`` in seconds from the file start,
for example ``781  807  FIA  Hem:L, Orig:Temp, bhe: 0``. A file without seizures has only the
comments.

Quirks of the real files, handled here: a ``stop`` of ``None`` (the neurologist marked no end;
the seizure is given :data:`UNKNOWN_END_S` seconds, as the SzCORE conversion does, with a
warning naming the file and row); whitespace-only lines between the comments and the rows;
types FIA / FA / F-BTC mapped to BIDS-score, any other type kept as ``sz`` with a warning. The
comment's hemisphere and origin (``Hem:L, Orig:Temp``) give a coarse onset zone (left temporal)
used when ``soz.tsv`` has no row for the patient.

:func:`write_seizeit` writes any index in this layout (``python -m datamodules convert --to seizeit``).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import edf_plus_labels, header_facts, read_text, seizure_warnings
from datamodules.sources.vocabulary import SEIZEIT_TYPES, reverse
from eeg.montage import REGIONS

LAYOUT = "seizeit"
#: Length given to a seizure whose end the annotator did not mark (the SzCORE converter's choice).
UNKNOWN_END_S = 30.0
_ORIGIN = {"temp": "temporal", "fronto": "frontal", "front": "frontal", "par": "parietal",
           "occipito": "occipital", "occ": "occipital", "cent": "central"}
_SIDE = {"L": "left", "R": "right"}


def detect(root: Path) -> bool:
    """A SeizeIT root holds ``P_IDxx/P_IDxx_rk.edf``."""
    return any(root.glob("P_ID*/P_ID*_r*.edf"))


def region_of(comment: str) -> str | None:
    """``'Hem:L, Orig:Temp, bhe: 0'`` -> ``'left temporal'`` (None when either is not clear)."""
    fields = {k.strip().lower(): v.strip() for k, _, v in (p.partition(":") for p in comment.split(","))}
    side = _SIDE.get(fields.get("hem", "").upper())
    origin = fields.get("orig", "").lower()
    where = next((v for k, v in _ORIGIN.items() if origin.startswith(k)), None)
    if side and where and f"{side} {where}" in REGIONS:
        return f"{side} {where}"
    return None


def read_annotations(path: str | os.PathLike):
    """Read a SeizeIT ``_a1.tsv``.

    Returns
    -------
    seizures : tuple of (float, float)
    types : tuple of str
        BIDS-score types.
    regions : tuple of str or None
        Onset region per seizure from its comment.
    warnings : list of str

    Raises
    ------
    DatasetError
        Naming the file and line: a row with fewer than three fields, a start or stop that is
        not a number (``None`` excepted for the stop), a stop before its start.
    """
    path = Path(path)
    seizures, types, regions, warnings = [], [], [], []
    for number, raw in enumerate(read_text(path, "SeizeIT annotation file").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in raw.split("\t")]
        where = f"{path}, line {number}"
        if len(cells) < 3:
            raise DatasetError(f"{where}: expected 'start, stop, type, comment' separated by tabs, found {raw!r}")
        try:
            start = float(cells[0])
        except ValueError:
            raise DatasetError(f"{where}: seizure start {cells[0]!r} is not a number") from None
        if cells[1].lower() in ("none", "n/a", "nan", ""):
            stop = start + UNKNOWN_END_S
            warnings.append(f"{where}: seizure at {start:g} s has no end ({cells[1]!r}); given {UNKNOWN_END_S:g} s")
        else:
            try:
                stop = float(cells[1])
            except ValueError:
                raise DatasetError(f"{where}: seizure stop {cells[1]!r} is not a number") from None
        if not (math.isfinite(start) and math.isfinite(stop)) or start < 0 or stop <= start:
            raise DatasetError(f"{where}: seizure {cells[0]}-{cells[1]} s does not end after it starts")
        kind = SEIZEIT_TYPES.get(cells[2])
        if kind is None:
            from datamodules.sources.vocabulary import EVENT_TYPES
            kind = cells[2] if cells[2] in EVENT_TYPES and cells[2] != "bckg" else "sz"
            if kind == "sz" and cells[2] != "sz":
                warnings.append(f"{where}: seizure type {cells[2]!r} unknown; kept as a seizure ('sz')")
        seizures.append((start, stop))
        types.append(kind)
        regions.append(region_of(cells[3]) if len(cells) > 3 else None)
    return tuple(seizures), tuple(types), tuple(regions), warnings


def read_seizeit(root: str | os.PathLike, *, issues: list[str] | None = None) -> list[Recording]:
    """Index a SeizeIT download: one :class:`Recording` per EDF file, metadata only."""
    root = Path(root)
    out: list[Recording] = []
    zone: dict[str, str | None] = {}
    for folder in sorted(d for d in root.glob("P_ID*") if d.is_dir()):
        patient = folder.name
        pattern = re.compile(rf"^{re.escape(patient)}_r\d+\.edf$")
        for edf in sorted(p for p in folder.glob("*.edf") if pattern.match(p.name) and p.is_file()):
            facts = header_facts(edf)
            warnings = list(facts.warnings)
            ann = edf.with_name(edf.stem + "_a1.tsv")
            seizures: tuple[tuple[float, float], ...] = ()
            types: tuple[str, ...] = ()
            annotated = ann.is_file()
            if annotated:
                seizures, types, regions, notes = read_annotations(ann)
                warnings += notes
                for region in regions:
                    if region and zone.get(patient, region) != region:
                        zone[patient] = None  # seizures from different regions: no single zone
                    elif region:
                        zone.setdefault(patient, region)
                text = read_text(ann, "SeizeIT annotation file")
                m = re.search(r"^#\s*Subject:\s*(\S+)", text, re.M)
                if m and m.group(1) != patient:
                    warnings.append(f"{ann}: header names subject {m.group(1)}, the folder is {patient}")
            else:
                from_edf = edf_plus_labels(edf, facts.header)
                if from_edf is not None:
                    seizures, types, note = from_edf
                    annotated = True
                    warnings.append(note)
                else:
                    warnings.append(f"{edf}: no {ann.name}; unannotated, so excluded from training and scoring "
                                    "(not taken as seizure-free)")
            if annotated:
                warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
            out.append(Recording(
                patient=patient, recording_id=edf.stem, path=str(edf), duration_s=facts.duration_s,
                sfreq=facts.sfreq, channels=facts.channels, seizures=seizures, annotated=annotated,
                warnings=tuple(warnings), subject=patient, meas_date=facts.meas_date, seizure_types=types,
                bad_channels=facts.bad_channels,
            ))
    return [r.with_(soz=REGIONS[zone[r.patient]], soz_region=zone[r.patient]) if zone.get(r.patient) else r
            for r in out]


# --------------------------------------------------------------------------- writer
_HEADER = """# Source: SeizeIt1 layout, written by seizure-lightning (python -m datamodules convert)
# Annotators: {annotators}
# Subject: {subject}
# Recording: {recording}
# Seizure Type: "FIAS"=Focal Impaire Awareness, "FA"= Focal Awareness, "F-BTC"=Focal-Bilateral Tonic Clonic
# Origin: "Temp"=Temporal, "Fronto"=Frontal, "Par"=Parietal, "Occipito"=Occipital, "NC"=not clear
# Hemisphere: "bi"=Bihemispherical, "R"=Right, "L"=Left, "NC"=Not clear
"""
_ORIGIN_CODE = {"temporal": "Temp", "frontal": "Fronto", "parietal": "Par", "occipital": "Occipito",
                "central": "Cent"}


def write_seizeit(recordings: list[Recording], out: str | os.PathLike) -> dict[str, str]:
    """Write recordings in the SeizeIT layout under ``out``.

    Patients become ``P_ID01``, ``P_ID02``... in sorted order (``participants.tsv`` maps them back),
    recordings ``P_IDxx_r1.edf``... with referential ``Fp1`` channels (see
    :mod:`datamodules.sources._write`) and ``_a1.tsv`` rows ``start stop type comment``; the
    comment carries the onset region when the patient's is known. Unannotated recordings are
    left out.

    Returns
    -------
    dict
        ``{source patient: P_IDxx}``.
    """
    from datamodules.sources._write import seconds_text, write_recording

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = {p: f"P_ID{k + 1:02d}" for k, p in enumerate(sorted({r.patient for r in recordings}))}
    for patient, name in names.items():
        recs = sorted((r for r in recordings if r.patient == patient and r.annotated), key=lambda r: r.recording_id)
        for k, r in enumerate(recs, start=1):
            stem = f"{name}_r{k}"
            write_recording(r, out / name / f"{stem}.edf", "seizeit")
            side, _, where = (r.soz_region or "").partition(" ")
            hemisphere = {"left": "L", "right": "R"}.get(side, "NC")
            comment = f"Hem:{hemisphere}, Orig:{_ORIGIN_CODE.get(where, 'NC')}, bhe: 0"
            kinds = [reverse(SEIZEIT_TYPES, r.seizure_type(i), r.seizure_type(i)) for i in range(r.n_seizures)]
            rows = [f"{seconds_text(a)}\t{seconds_text(b)}\t{kind}\t{comment}"
                    for kind, (a, b) in zip(kinds, r.seizures)]
            text = _HEADER.format(annotators="converted", subject=name, recording=f"r{k}") + " \n\n\n"
            (out / name / f"{stem}_a1.tsv").write_text(text + "".join(row + "\n" for row in rows), encoding="utf-8")
    (out / "participants.tsv").write_text(
        "participant_id\tsource_patient\n" + "".join(f"{n}\t{p}\n" for p, n in names.items()),
        encoding="utf-8")
    return names
