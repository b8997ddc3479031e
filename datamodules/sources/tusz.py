"""Temple University Hospital EEG Seizure Corpus (TUSZ), v2.x layout.

Obeid and Picone (2016), "The Temple University Hospital EEG data corpus", Front. Neurosci.
10:196; Shah et al. (2018), "The Temple University Hospital Seizure Detection Corpus", Front.
Neuroinform. 12:83. The download (``tuh_eeg_seizure/v2.0.x/edf/``) holds::

    {train,dev,eval}/<subject>/<session>/<montage>/<subject>_<session>_<token>.edf
                                                  /<subject>_<session>_<token>.csv_bi
                                                  /<subject>_<session>_<token>.csv

with sessions such as ``s001_2003`` and montage folders ``01_tcp_ar`` (channels
``EEG FP1-REF``), ``02_tcp_le`` (``EEG FP1-LE``), ``03_tcp_ar_a`` and ``04_tcp_le_a`` (the
same without A1/A2); 250, 256, 400 or 512 Hz.

Annotations: ``.csv_bi`` (the term-based labels the seizure detection task scores) has a
``# duration = 1275.00 secs`` header line, then rows ``channel,start_time,stop_time,label,
confidence`` with channel ``TERM`` and label ``seiz`` or ``bckg``. The per-channel ``.csv``
has the same columns with TCP montage channels (``FP1-F7``) and seizure types (``fnsz``,
``gnsz``, ``cpsz``, ``absz``, ``tcsz``, ``spsz``, ``tnsz``, ``mysz``...): it gives each
seizure's type and, through the channels marked at its onset, a second source of onset zones
(used when ``soz.tsv`` has no row for the patient).

Patients are the TUH subject ids (the folder under the split), across sessions and splits:
every session of a subject is one patient for leave-one-patient-out, whichever split folder it
sits in, so none of a held-out subject's sessions can reach training.

:func:`write_tusz` writes any index in this layout (``python -m datamodules convert --to tusz``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import edf_plus_labels, header_facts, read_text, seizure_warnings
from datamodules.sources.vocabulary import TUSZ_BACKGROUND, TUSZ_TYPES, reverse
from eeg.montage import channel_electrodes, parse_label

LAYOUT = "tusz"
SPLITS = ("train", "dev", "eval")
_MONTAGE = re.compile(r"^\d\d_tcp_(ar|le)(_a)?$")
_DURATION = re.compile(r"^#\s*duration\s*=\s*([0-9.eE+-]+)\s*(secs?|s)?\s*$", re.I)
COLUMNS = ("channel", "start_time", "stop_time", "label", "confidence")
#: Tolerance between the ``# duration`` header and the EDF header before warning.
DURATION_TOLERANCE_S = 1.0
#: A channel is "marked at the onset" when its seizure label starts within this many seconds of
#: the seizure's first marked channel.
ONSET_TOLERANCE_S = 1.0
#: Reference each montage folder's channels are recorded against.
MONTAGE_REFERENCE = {"ar": "REF", "le": "LE"}
#: The TCP (temporal central parasagittal) bipolar montage of TUSZ's per-channel annotations.
TCP_AR = ("FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2", "A1-T3", "T3-C3",
          "C3-CZ", "CZ-C4", "C4-T4", "T4-A2", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
          "C4-P4", "P4-O2")


def detect(root: Path) -> bool:
    """A TUSZ root holds ``[edf/]{train,dev,eval}/<subject>/<session>/<montage>/*.edf``."""
    return any(_edf_files(root))


def _base(root: Path) -> Path:
    return root / "edf" if (root / "edf").is_dir() and not any((root / s).is_dir() for s in SPLITS) else root


def _edf_files(root: Path):
    base = _base(root)
    for split in SPLITS:
        for p in (base / split).glob("*/*/*/*.edf"):
            if _MONTAGE.match(p.parent.name) and not p.name.startswith(".") and p.is_file():
                yield p


@dataclass(frozen=True)
class TermLabels:
    """A parsed ``.csv_bi`` (term-based) or ``.csv`` (per-channel) file.

    Attributes
    ----------
    duration_s : float or None
        The ``# duration`` header.
    events : tuple of (channel, start, stop, label, confidence)
        Every row, labels lower-cased.
    """

    duration_s: float | None
    events: tuple[tuple[str, float, float, str, float], ...]

    def seizures(self) -> list[tuple[float, float, str]]:
        return [(a, b, lab) for _, a, b, lab, _ in self.events if lab not in TUSZ_BACKGROUND]


def read_labels(path: str | os.PathLike) -> TermLabels:
    """Read a TUSZ ``.csv_bi`` or ``.csv`` annotation file.

    Raises
    ------
    DatasetError
        Naming the file and line: no column header, a row with the wrong number of fields, a
        time or confidence that is not a number, a stop before its start, a label that is
        neither ``bckg`` nor a TUSZ seizure type.
    """
    path = Path(path)
    duration = None
    header_seen = False
    events = []
    for number, raw in enumerate(read_text(path, "TUSZ annotation file").splitlines(), start=1):
        line = raw.strip()
        where = f"{path}, line {number}"
        if not line:
            continue
        if line.startswith("#"):
            if m := _DURATION.match(line):
                duration = float(m.group(1))
            continue
        cells = [c.strip() for c in line.split(",")]
        if not header_seen:
            if tuple(c.lower() for c in cells) != COLUMNS:
                raise DatasetError(f"{where}: expected the header {','.join(COLUMNS)}, found {line!r}")
            header_seen = True
            continue
        if len(cells) != len(COLUMNS):
            raise DatasetError(f"{where}: {len(cells)} comma-separated fields, expected {len(COLUMNS)}")
        channel, start, stop, label, confidence = cells
        try:
            a, b, c = float(start), float(stop), float(confidence)
        except ValueError:
            raise DatasetError(f"{where}: start_time, stop_time or confidence is not a number: {line!r}") from None
        if not all(map(lambda v: v == v and abs(v) != float("inf"), (a, b, c))):
            raise DatasetError(f"{where}: start_time, stop_time or confidence is not finite: {line!r}")
        if b <= a or a < 0:
            raise DatasetError(f"{where}: stop_time {b:g} s is not after start_time {a:g} s")
        label = label.lower()
        if label not in TUSZ_TYPES and label not in TUSZ_BACKGROUND:
            raise DatasetError(
                f"{where}: label {label!r} is neither bckg nor a TUSZ seizure type "
                f"({', '.join(sorted(TUSZ_TYPES))})"
            )
        events.append((channel, a, b, label, c))
    if not header_seen:
        raise DatasetError(f"{path}: no column header ({','.join(COLUMNS)}); not a TUSZ annotation file")
    return TermLabels(duration, tuple(events))


def _seizure_details(seizures, per_channel: TermLabels, where: str, warnings: list[str]):
    """Per term seizure: its type (majority label of the channel seizures it overlaps) and the
    electrodes of the channels marked within ONSET_TOLERANCE_S of its first marked channel."""
    types: list[str] = []
    onset_electrodes: list[tuple[str, ...]] = []
    channel_sz = per_channel.seizures()
    channel_rows = [(ch, a, b, lab) for ch, a, b, lab, _ in per_channel.events if lab not in TUSZ_BACKGROUND]
    all_channels = {ch for ch, *_ in per_channel.events}
    for a, b in seizures:
        rows = [(ch, s, e, lab) for ch, s, e, lab in channel_rows if s < b and e > a]
        if not rows:
            warnings.append(f"{where}: seizure {a:g}-{b:g} s of the .csv_bi has no seizure in the per-channel .csv")
            types.append("sz")
            onset_electrodes.append(())
            continue
        counts: dict[str, int] = {}
        for *_, lab in rows:
            counts[lab] = counts.get(lab, 0) + 1
        types.append(TUSZ_TYPES[max(sorted(counts), key=counts.get)])
        first = min(s for _, s, _, _ in rows)
        at_onset = [ch for ch, s, _, _ in sorted(rows, key=lambda row: row[1]) if s <= first + ONSET_TOLERANCE_S]
        if set(at_onset) >= all_channels:
            onset_electrodes.append(())  # every channel at once: generalized, no zone
            continue
        electrodes: list[str] = []
        for ch in at_onset:  # earliest first
            for e in channel_electrodes(ch):
                if e not in electrodes:
                    electrodes.append(e)
        onset_electrodes.append(tuple(electrodes))
    for a, b, _ in channel_sz:
        if not any(s < b and e > a for s, e in seizures):
            warnings.append(f"{where}: per-channel seizure {a:g}-{b:g} s has no seizure in the .csv_bi")
    return tuple(types), onset_electrodes


def read_tusz(root: str | os.PathLike, *, issues: list[str] | None = None) -> list[Recording]:
    """Index a TUSZ v2.x download: one :class:`Recording` per EDF file, metadata only.

    Parameters
    ----------
    root : path-like
        The folder holding ``train/ dev/ eval/`` (or their parent ``edf/``).
    issues : list, optional
        Dataset-level warnings are appended here.

    Returns
    -------
    list of Recording
        ``patient`` and ``subject`` are the TUH subject id; ``recording_id`` the file stem
        (``aaaaaool_s005_t003``); seizures from the ``.csv_bi`` (the per-channel ``.csv`` when
        it is the only file), their types and the onset-zone hint from the ``.csv``.

    Raises
    ------
    DatasetError
        An annotation file that cannot be trusted (see :func:`read_labels`); the same file
        stem in two places.
    """
    root = Path(root)
    issues = issues if issues is not None else []
    out: list[Recording] = []
    seen: dict[str, Path] = {}
    named: dict[str, list[str]] = {}
    splits_of: dict[str, set[str]] = {}
    for edf in sorted(_edf_files(root)):
        montage, subject, split = edf.parent.name, edf.parents[2].name, edf.parents[3].name
        splits_of.setdefault(subject, set()).add(split)
        if edf.stem in seen:
            raise DatasetError(f"{edf} and {seen[edf.stem]} have the same name; recording ids must be unique")
        seen[edf.stem] = edf
        facts = header_facts(edf)
        warnings = list(facts.warnings)
        if not edf.stem.startswith(subject + "_"):
            warnings.append(f"{edf}: file name does not start with its subject folder {subject!r}")
        reference = MONTAGE_REFERENCE[_MONTAGE.match(montage).group(1)]
        eeg = [lab for lab in facts.channels if parse_label(lab) is not None]
        if eeg and not any(lab.upper().endswith("-" + reference) for lab in eeg):
            warnings.append(f"{edf}: montage folder {montage} expects channels referenced to {reference}, "
                            f"found {eeg[0]!r}...")
        term, channel = edf.with_suffix(".csv_bi"), edf.with_suffix(".csv")
        seizures: tuple[tuple[float, float], ...] = ()
        types: tuple[str, ...] = ()
        annotated = True
        duration = None
        per_channel = read_labels(channel) if channel.is_file() else None
        if term.is_file():
            labels = read_labels(term)
            bad = [ch for ch, *_ in labels.events if ch.upper() != "TERM"]
            if bad:
                raise DatasetError(f"{term}: channel {bad[0]!r} in a term-based (.csv_bi) file; expected TERM")
            seizures = tuple((a, b) for a, b, _ in labels.seizures())
            types = tuple(TUSZ_TYPES[lab] for _, _, lab in labels.seizures())
            duration = labels.duration_s
        elif per_channel is not None:
            spans = sorted((a, b) for a, b, _ in per_channel.seizures())
            merged: list[list[float]] = []
            for a, b in spans:  # term seizures = union of the channels' seizures
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            seizures = tuple((a, b) for a, b in merged)
            duration = per_channel.duration_s
            warnings.append(f"{edf}: no {term.name}; seizures taken from the per-channel {channel.name}")
        else:
            from_edf = edf_plus_labels(edf, facts.header)
            if from_edf is not None:
                seizures, types, note = from_edf
                warnings.append(note)
            else:
                annotated = False
                warnings.append(f"{edf}: no {term.name} or {channel.name}; unannotated, so excluded from "
                                "training and scoring (not taken as seizure-free)")
        if per_channel is not None and seizures:
            types, zones = _seizure_details(seizures, per_channel, str(channel), warnings)
            for zone in zones:
                for e in zone:
                    named.setdefault(subject, [])
                    if e not in named[subject]:
                        named[subject].append(e)
        if (facts.header is not None and duration is not None
                and abs(duration - facts.duration_s) > DURATION_TOLERANCE_S):
            warnings.append(f"{edf}: EDF header gives {facts.duration_s:g} s, the annotation header "
                            f"{duration:g} s")
        if annotated:
            warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
        out.append(Recording(
            patient=subject, recording_id=edf.stem, path=str(edf), duration_s=facts.duration_s,
            sfreq=facts.sfreq, channels=facts.channels, seizures=seizures, annotated=annotated,
            warnings=tuple(warnings), subject=subject, meas_date=facts.meas_date, seizure_types=types,
            bad_channels=facts.bad_channels,
        ))
    for subject, splits in sorted(splits_of.items()):
        if len(splits) > 1:
            issues.append(f"{root}: subject {subject} has sessions in {', '.join(sorted(splits))}; "
                          "they are one patient (never split between training and test)")
    return [r.with_(soz=tuple(named[r.patient])) if r.patient in named else r for r in out]


# --------------------------------------------------------------------------- writer
def _csv_text(bname: str, duration: float, rows: list[tuple[str, float, float, str]]) -> str:
    lines = ["# version = csv_v1.0.0", f"# bname = {bname}", f"# duration = {duration:.2f} secs",
             "# montage_file = $NEDC_NFC/lib/nedc_eas_default_montage.txt", "#", ",".join(COLUMNS)]
    lines += [f"{ch},{a:.4f},{b:.4f},{lab},1.0000" for ch, a, b, lab in rows]
    return "\n".join(lines) + "\n"


def _timeline(seizures, duration: float, labels) -> list[tuple[float, float, str]]:
    """bckg between seizures, the seizure labels on them: the rows of one channel."""
    out, t = [], 0.0
    for (a, b), lab in sorted(zip(seizures, labels)):
        a, b = max(a, 0.0), min(b, duration)
        if b <= a:
            continue
        if a > t:
            out.append((t, a, "bckg"))
        out.append((a, b, lab))
        t = b
    if t < duration or not out:
        out.append((t, duration, "bckg"))
    return out


def write_tusz(recordings: list[Recording], out: str | os.PathLike) -> dict[str, str]:
    """Write recordings in the TUSZ v2 layout under ``out``.

    Patients are spread over ``train``, ``dev``, ``eval`` in turn (TUSZ keeps a subject in one
    split); one session per dataset subject of the patient, one token per recording. EDFs are
    written as ``01_tcp_ar`` referential files (``EEG FP1-REF``...; a bipolar source is
    re-referenced to the average of its electrodes, see :mod:`datamodules.sources._write`).
    ``.csv_bi`` holds the term seizures (``seiz``) and background; the per-channel ``.csv``
    marks each seizure's TUSZ type on the TCP channels that touch the patient's onset zone
    (every channel when the zone is unknown). Unannotated recordings are left out.

    Returns
    -------
    dict
        ``{source patient: TUSZ subject}``.
    """
    from datamodules.sources._write import label_of, start_of, write_recording

    out = Path(out)
    subjects = {p: label_of(p).lower() for p in sorted({r.patient for r in recordings})}
    if len(set(subjects.values())) != len(subjects):
        raise DatasetError("two patients map to the same TUSZ subject name")
    for k, (patient, subject) in enumerate(subjects.items()):
        split = SPLITS[k % len(SPLITS)]
        recs = sorted((r for r in recordings if r.patient == patient and r.annotated), key=lambda r: r.recording_id)
        sessions = sorted({r.subject or r.patient for r in recs}, key=lambda s: (s != patient, s))
        for r in recs:
            number = sessions.index(r.subject or r.patient) + 1
            start = start_of(r)
            session = f"s{number:03d}_{start.year if start else 2000}"
            token = sum(1 for q in recs[:recs.index(r)] if (q.subject or q.patient) == (r.subject or r.patient))
            bname = f"{subject}_s{number:03d}_t{token:03d}"
            folder = out / split / subject / session / "01_tcp_ar"
            duration = write_recording(r, folder / f"{bname}.edf", "tusz")
            term = _timeline(r.seizures, duration, ["seiz"] * r.n_seizures)
            (folder / f"{bname}.csv_bi").write_text(_csv_text(bname, duration, [("TERM", *row) for row in term]))
            zone = set(r.soz or ())
            rows = []
            for ch in TCP_AR:
                touches = not zone or any(e in zone for e in channel_electrodes(ch))
                labels = [reverse(TUSZ_TYPES, r.seizure_type(i), "seiz") for i in range(r.n_seizures)]
                marked = [s for s in r.seizures] if touches else []
                rows += [(ch, *row) for row in _timeline(marked, duration, labels if touches else [])]
            (folder / f"{bname}.csv").write_text(_csv_text(bname, duration, rows))
    return subjects


