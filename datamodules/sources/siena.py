"""Siena Scalp EEG Database (PhysioNet).

Detti, Vatti, Zabalo Manrique de Lara (2020), "EEG synchronization analysis for seizure
prediction: a study on data of noninvasive recordings", Processes 8(7):846; Goldberger et al.
(2000), PhysioNet. The download (``physionet.org/files/siena-scalp-eeg/1.0.0/``) holds::

    PN00/PN00-1.edf ... PN00/Seizures-list-PN00.txt
    subject_info.csv

EDF files are 512 Hz referential recordings (``EEG Fp1``, ``EEG T3``; case varies:
``EEG FP2``, ``EEG CZ``) with extra channels (``EKG EKG``, ``SPO2``, ``HR``, numbered
channels). Seizures live only in ``Seizures-list-PNxx.txt``: per seizure a block::

    Seizure n 1
    File name: PN00-1.edf
    Registration start time: 19.39.33
    Registration end time:  20.22.58
    Seizure start time: 19.58.36
    Seizure end time: 19.59.46

Times are clock times of day (``hh.mm.ss``, sometimes ``hh:mm:ss``) that cross midnight: a
seizure's onset is its clock time minus the registration start, modulo one day. The real files
are hand-written and drift, and the parser accepts what they contain:

- headings with trailing text (``Seizure n 1 (in sleep):``) and irregular spacing
  (``Registration end time:  20.22.58``, ``Seizure end time:03.18.36``, a stray space inside a
  time: ``1 6.49.25``);
- ``Start time:`` / ``End time:`` for ``Seizure start time:`` / ``Seizure end time:``;
- several seizures of one file, either each with its own block or as later ``Seizure n``
  blocks without a file name or registration times (they inherit the previous block's);
- file names that differ from the EDF on disk (``PNO6-1.edf`` with a letter O, ``PN01.edf``
  for ``PN01-1.edf``, ``PN11-.edf``): matched to the one EDF they can mean, with a warning;
- a documented typo of the database (:data:`ERRATA`, corrected with a warning).

Checks: every ``Seizure n`` block must yield a start and an end (else the index stops, naming
the file and line); the seizures per patient must match ``number_seizures`` of
``subject_info.csv``; the EDF header's start time and length are compared with the
registration times; a seizure outside its registration is reported. ``subject_info.csv``
also gives each patient's seizure type (IAS, WIAS, FBTC) and its localization and
lateralization, a coarse onset zone (``T`` + ``L`` = left temporal) used when ``soz.tsv`` has
no row for the patient.

:func:`write_siena` writes any index in this layout (``python -m datamodules convert --to siena``).
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import edf_plus_labels, header_facts, read_text, seizure_warnings
from datamodules.sources.vocabulary import SIENA_TYPES, reverse
from eeg.montage import REGIONS

LAYOUT = "siena"
DAY_S = 86400
#: Tolerance between the registration times and the EDF header (start, length) before warning.
CLOCK_TOLERANCE_S = 2.0

#: Known typos of the Siena v1.0.0 seizure lists: (file, field, as written) -> corrected value.
#: PN00-3's seizure "ends" at 19.29.29, an hour after it starts and half an hour after the
#: recording ends; 18.29.29 is the value the SzCORE converter (epilepsy2bids) also uses.
ERRATA = {("PN00-3.edf", "seizure end", "19.29.29"): "18.29.29"}

_CLOCK = re.compile(r"^(\d{1,2})[.:](\d{1,2})[.:](\d{1,2})$")
_HEADING = re.compile(r"^seizure\s+n\.?\s*(\d+)\b", re.I)
_FIELD = re.compile(
    r"^(file\s*name|registration\s+start\s+time|registration\s+end\s+time|"
    r"(?:seizure\s+)?start\s+time|(?:seizure\s+)?end\s+time)\s*:?\s*(.*)$", re.I)
_RATE = re.compile(r"^data\s+sampling\s+rate\s*:\s*([\d.]+)\s*hz", re.I)
_IGNORED = re.compile(r"^(channels?\b|patient|pn\d+\s*$|data\s+sampling)", re.I)


def clock_seconds(text: str, where: str) -> int:
    """Seconds since midnight of a ``hh.mm.ss`` clock time (stray spaces removed)."""
    compact = re.sub(r"\s+", "", text)
    m = _CLOCK.match(compact)
    if not m:
        raise DatasetError(f"{where}: {text.strip()!r} is not a hh.mm.ss clock time")
    h, mi, s = (int(g) for g in m.groups())
    if h > 23 or mi > 59 or s > 59:
        raise DatasetError(f"{where}: {text.strip()!r} is not a time of day")
    return h * 3600 + mi * 60 + s


def clock_text(seconds: float) -> str:
    s = int(seconds) % DAY_S
    return f"{s // 3600:02d}.{s % 3600 // 60:02d}.{s % 60:02d}"


@dataclass
class SeizureEntry:
    """One seizure of a seizure list, as written (clock times in seconds since midnight)."""

    number: int
    line: int
    file_name: str
    registration_start: int | None
    registration_end: int | None
    start: int | None = None
    end: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def onset_s(self) -> float:
        return float((self.start - self.registration_start) % DAY_S)

    @property
    def offset_s(self) -> float:
        return self.onset_s + float((self.end - self.start) % DAY_S)


@dataclass(frozen=True)
class SeizureList:
    """A parsed ``Seizures-list-PNxx.txt``."""

    path: str
    sfreq: float | None
    seizures: tuple[SeizureEntry, ...]
    warnings: tuple[str, ...]


def parse_seizure_list(path: str | os.PathLike) -> SeizureList:
    """Parse a Siena ``Seizures-list-PNxx.txt``.

    Raises
    ------
    DatasetError
        Naming the file and line: a ``Seizure n`` block without a start or an end time, a time
        that is not a clock time, a block that inherits no file name or registration start, a
        field line outside a block.
    """
    path = str(path)
    text = read_text(path, "seizure list")
    sfreq = None
    entries: list[SeizureEntry] = []
    warnings: list[str] = []
    current: SeizureEntry | None = None

    def close():
        if current is None:
            return
        where = f"{path}, line {current.line} (Seizure n {current.number})"
        if not current.file_name:
            raise DatasetError(f"{where}: no file name, and no earlier block to take it from")
        if current.registration_start is None:
            raise DatasetError(f"{where}: no registration start time for {current.file_name}")
        if current.start is None or current.end is None:
            missing = "start" if current.start is None else "end"
            raise DatasetError(f"{where}: seizure {missing} time missing for {current.file_name}")
        entries.append(current)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path}, line {number}"
        if not line:
            continue
        if m := _RATE.match(line):
            sfreq = float(m.group(1))
            continue
        if m := _HEADING.match(line):
            close()
            previous = entries[-1] if entries else None
            # a block without its own file name and registration inherits the previous one's
            current = SeizureEntry(int(m.group(1)), number, previous.file_name if previous else "",
                                   previous.registration_start if previous else None,
                                   previous.registration_end if previous else None)
            continue
        if m := _FIELD.match(line):
            if current is None:
                raise DatasetError(f"{where}: {line!r} outside a 'Seizure n' block")
            key, value = re.sub(r"\s+", " ", m.group(1).lower()), m.group(2).strip()
            if key == "file name":
                if value != current.file_name:  # a new file: registration times of its own
                    current.registration_start = current.registration_end = None
                current.file_name = value
                continue
            kind = {"registration start time": "registration_start", "registration end time": "registration_end",
                    "start time": "start", "seizure start time": "start",
                    "end time": "end", "seizure end time": "end"}[key]
            compact = re.sub(r"\s+", "", value)
            erratum = ERRATA.get((current.file_name, "seizure " + kind, compact))
            if erratum is not None:
                warnings.append(f"{where}: {current.file_name} seizure {kind} time {compact} corrected to "
                                f"{erratum} (known typo of the Siena database)")
                value = erratum
            seconds = clock_seconds(value, where)
            if kind == "registration_start" and current.registration_start is not None \
                    and entries and entries[-1].file_name == current.file_name \
                    and seconds != current.registration_start:
                warnings.append(f"{where}: {current.file_name} registration start differs from its previous block")
            setattr(current, kind, seconds)
            continue
        if _IGNORED.match(line):
            continue
        if re.search(r"seizure|time", line, re.I):
            raise DatasetError(f"{where}: cannot parse {line!r}")
        warnings.append(f"{where}: line not understood, ignored: {line!r}")
    close()
    return SeizureList(path, sfreq, tuple(entries), tuple(warnings))


@dataclass(frozen=True)
class SubjectInfo:
    """A row of Siena's ``subject_info.csv``."""

    patient: str
    seizure_class: str
    localization: str
    lateralization: str
    number_seizures: int | None

    @property
    def region(self) -> str | None:
        """``left temporal``... from localization and lateralization, when both are known."""
        where = {"T": "temporal", "F": "frontal", "O": "occipital", "P": "parietal", "C": "central"}.get(
            self.localization.strip().upper())
        side = {"L": "left", "R": "right"}.get(self.lateralization.strip().upper())
        if where and side and f"{side} {where}" in REGIONS:
            return f"{side} {where}"
        if where and self.lateralization.strip().lower() == "bilateral" and where in REGIONS:
            return where
        return None


def read_subject_info(path: str | os.PathLike) -> dict[str, SubjectInfo]:
    """Read ``subject_info.csv`` (comma-separated, headers with leading spaces)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(read_text(path, "subject table"))))
    if not rows:
        raise DatasetError(f"{path}: empty subject table")
    header = [c.strip().lower() for c in rows[0]]
    if "patient_id" not in header:
        raise DatasetError(f"{path}: no patient_id column (header {header})")
    col = {name: header.index(name) for name in header}
    out = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}")
        get = lambda name, row=row: row[col[name]].strip() if name in col else ""  # noqa: E731
        count = get("number_seizures")
        try:
            n = int(count) if count else None
        except ValueError:
            raise DatasetError(f"{path}, line {number}: number_seizures {count!r} is not a whole number") from None
        out[get("patient_id")] = SubjectInfo(get("patient_id"), get("seizure"), get("localization"),
                                             get("lateralization"), n)
    return out


def detect(root: Path) -> bool:
    """A Siena root holds ``PNxx/Seizures-list-PNxx.txt`` (or ``PNxx/PNxx-k.edf``)."""
    return any(root.glob("PN*/Seizures-list-*.txt")) or any(root.glob("PN[0-9]*/PN*.edf"))


def _match_file(name: str, on_disk: dict[str, Path]) -> tuple[Path | None, str | None]:
    """The EDF a seizure list's file name means, and a note when it is not spelled as on disk."""
    if name in on_disk:
        return on_disk[name], None
    lower = {k.lower(): v for k, v in on_disk.items()}
    candidates = [name.lower(), re.sub(r"^pno", "pn0", name.lower())]
    stem = re.sub(r"^pno", "pn0", name.lower())
    if m := re.match(r"^(pn\d+)-?\.edf$", stem):  # PN01.edf, PN11-.edf: the subject's first file
        candidates.append(f"{m.group(1)}-1.edf")
    for c in candidates:
        if c in lower:
            return lower[c], f"file name {name!r} matched to {lower[c].name}"
    return None, None


def read_siena(root: str | os.PathLike, *, issues: list[str] | None = None) -> list[Recording]:
    """Index a Siena download: one :class:`Recording` per EDF file, metadata only.

    Raises
    ------
    DatasetError
        A seizure list that cannot be trusted (see :func:`parse_seizure_list`), or seizures
        per patient that disagree with ``subject_info.csv``.
    """
    root = Path(root)
    issues = issues if issues is not None else []
    info_path = root / "subject_info.csv"
    info = read_subject_info(info_path) if info_path.is_file() else {}
    out: list[Recording] = []
    for folder in sorted(d for d in root.glob("PN*") if d.is_dir()):
        patient = folder.name
        edfs = {p.name: p for p in sorted(folder.glob("*.edf")) if not p.name.startswith(".") and p.is_file()}
        lists = sorted(folder.glob("Seizures-list-*.txt"))
        by_file: dict[Path, list[SeizureEntry]] = {}
        notes: dict[Path, list[str]] = {}
        listed = 0
        for lp in lists:
            sl = parse_seizure_list(lp)
            issues.extend(sl.warnings)
            listed += len(sl.seizures)
            for entry in sl.seizures:
                edf, note = _match_file(entry.file_name, edfs)
                if edf is None:
                    issues.append(f"{lp}, line {entry.line}: seizure {entry.number} is in {entry.file_name}, "
                                  f"which has no EDF file in {folder}")
                    continue
                by_file.setdefault(edf, []).append(entry)
                if note:
                    notes.setdefault(edf, [])
                    if f"{lp}: {note}" not in notes[edf]:
                        notes[edf].append(f"{lp}: {note}")
        subject = info.get(patient)
        if subject is not None and subject.number_seizures is not None and lists and listed != subject.number_seizures:
            raise DatasetError(
                f"{', '.join(map(str, lists))} list(s) {listed} seizure(s) of {patient}, {info_path} "
                f"says {subject.number_seizures}"
            )
        if not lists:
            issues.append(f"{folder}: no Seizures-list-{patient}.txt; its recordings are unannotated")
        seizure_type = SIENA_TYPES.get(subject.seizure_class.upper(), "sz") if subject else "sz"
        region = subject.region if subject else None
        for edf in edfs.values():
            facts = header_facts(edf)
            warnings = list(facts.warnings) + notes.get(edf, [])
            entries = by_file.get(edf, [])
            annotated = bool(lists)
            seizures: tuple[tuple[float, float], ...] = ()
            types: tuple[str, ...] = ()
            if entries:
                seizures = tuple((e.onset_s, e.offset_s) for e in entries)
                types = (seizure_type,) * len(seizures)
                reg = entries[0]
                span = (None if reg.registration_end is None
                        else (reg.registration_end - reg.registration_start) % DAY_S)
                if facts.header is not None and span is not None and abs(span - facts.duration_s) > CLOCK_TOLERANCE_S:
                    warnings.append(f"{edf}: EDF header gives {facts.duration_s:g} s, the registration times "
                                    f"{clock_text(reg.registration_start)}-{clock_text(reg.registration_end)} "
                                    f"span {span:g} s")
                start = facts.header.start if facts.header is not None else None
                if start is not None:
                    header_clock = start.hour * 3600 + start.minute * 60 + start.second
                    gap = min((header_clock - reg.registration_start) % DAY_S,
                              (reg.registration_start - header_clock) % DAY_S)
                    if gap > CLOCK_TOLERANCE_S:
                        warnings.append(f"{edf}: EDF header starts at {start:%H.%M.%S}, the seizure list's "
                                        f"registration at {clock_text(reg.registration_start)}")
                for e in entries:
                    if span is not None and e.offset_s > span + CLOCK_TOLERANCE_S:
                        warnings.append(f"{edf}: seizure {e.number} ({clock_text(e.start)}-{clock_text(e.end)}) "
                                        f"ends after the registration ({clock_text(reg.registration_end)})")
            elif lists:
                from_edf = edf_plus_labels(edf, facts.header)
                if from_edf is not None:
                    seizures, types, note = from_edf
                    warnings.append(note)
                else:
                    warnings.append(f"{edf}: not in {lists[0].name}: taken as seizure-free")
            else:
                warnings.append(f"{edf}: no seizure list; unannotated, so excluded from training and scoring")
            if annotated:
                warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
            out.append(Recording(
                patient=patient, recording_id=edf.stem, path=str(edf), duration_s=facts.duration_s,
                sfreq=facts.sfreq, channels=facts.channels, seizures=seizures, annotated=annotated,
                warnings=tuple(warnings), subject=patient, meas_date=facts.meas_date, seizure_types=types,
                soz=REGIONS[region] if region else None, soz_region=region, bad_channels=facts.bad_channels,
            ))
    return out


# --------------------------------------------------------------------------- writer
def write_siena(recordings: list[Recording], out: str | os.PathLike) -> dict[str, str]:
    """Write recordings in the Siena layout under ``out``.

    Patients become ``PN00``, ``PN01``... in sorted order (``subject_info.csv`` keeps the source
    id in an extra column), recordings ``PNxx-1.edf``... (referential ``EEG Fp1`` channels, see
    :mod:`datamodules.sources._write`). Seizure times are written as clock times to the second,
    as the real lists are: onsets rounded down and ends up (a warning in the returned notes when
    that moved a time). Unannotated recordings are left out.

    Returns
    -------
    dict
        ``{source patient: PNxx}``.
    """
    from datamodules.sources._write import start_of, write_recording

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = {p: f"PN{k:02d}" for k, p in enumerate(sorted({r.patient for r in recordings}))}
    info_rows = [["patient_id", " age_years", " gender", " seizure", " localization", " lateralization",
                  " eeg_channel", " number_seizures", " rec_time_minutes", " source_patient"]]
    for patient, name in names.items():
        recs = sorted((r for r in recordings if r.patient == patient and r.annotated), key=lambda r: r.recording_id)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        lines = [name, "", "Data Sampling Rate: %g Hz" % (recs[0].sfreq if recs else 0), "", ""]
        number = 0
        minutes = 0.0
        channels = 0
        types = set()
        for k, r in enumerate(recs, start=1):
            file_name = f"{name}-{k}.edf"
            duration = write_recording(r, folder / file_name, "siena")
            minutes += duration / 60
            start = start_of(r) or _dt.datetime(2000, 1, 1)
            reg = start.hour * 3600 + start.minute * 60 + start.second
            for i, (a, b) in enumerate(r.seizures):
                number += 1
                types.add(r.seizure_type(i))
                lines += [f"Seizure n {number}", f"File name: {file_name}",
                          f"Registration start time: {clock_text(reg)}",
                          f"Registration end time: {clock_text(reg + math.ceil(duration))}",
                          f"Seizure start time: {clock_text(reg + math.floor(a))}",
                          f"Seizure end time: {clock_text(reg + math.ceil(b))}", ""]
        (folder / f"Seizures-list-{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        region = next((r.soz_region for r in recs if r.soz_region), None)
        side, _, where = (region or "").partition(" ")
        loc = {"temporal": "T", "frontal": "F", "occipital": "O", "parietal": "P", "central": "C"}.get(where, "n/a")
        lat = {"left": "L", "right": "R"}.get(side, "n/a")
        klass = reverse(SIENA_TYPES, types.pop(), "n/a") if len(types) == 1 else "n/a"
        if recs:
            from datamodules.sources._write import eeg_channels
            channels = len(eeg_channels(recs[0]))
        info_rows.append([name, "n/a", "n/a", klass, loc, lat, str(channels), str(number),
                          str(int(round(minutes))), patient])
    with open(out / "subject_info.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(info_rows)
    return names
