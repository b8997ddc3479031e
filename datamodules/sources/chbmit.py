"""CHB-MIT Scalp EEG Database, in its PhysioNet layout.

Shoeb (2009), PhD thesis, MIT; Goldberger et al. (2000), Circulation 101(23), PhysioNet.
The download (``physionet.org/files/chbmit/1.0.0/``) holds one folder per subject::

    chb01/chb01_01.edf ... chb01/chb01-summary.txt
    RECORDS  RECORDS-WITH-SEIZURES  SUBJECT-INFO

Seizure annotations live only in the plain-text ``chbNN-summary.txt`` files, whose format drifts
between subjects. The parser here accepts what the real files contain:

- ``Seizure Start Time:`` and ``Seizure K Start Time:`` (numbered even for one seizure,
  unnumbered and repeated for several); starts and ends are paired by position, never by the
  printed number (a real file labels its second end ``Seizure 1 End Time``);
- irregular spacing (``End Time:  951 seconds``);
- clock times past 24 h and without zero padding (``24:21:32``, ``1:21:39``), kept as text;
- ``Channels changed:`` blocks that apply to every later file, with dummy channels (``-``,
  ``.``) and non-EEG channels (ECG, VNS, ...);
- file names such as ``chb17a_03.edf`` and ``chb02_16+.edf``.

Every entry's seizures are checked against its ``Number of Seizures in File`` line; a mismatch
raises :class:`~datamodules.recording.DatasetError` naming the summary and the EDF file, so a
seizure is never dropped silently. EDF files with no summary entry are indexed as unannotated
(``annotated=False``), never as seizure-free.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import header_facts, read_text, seizure_warnings

LAYOUT = "chbmit"

_SUBJECT = re.compile(r"^(chb\d+)", re.I)
_RATE = re.compile(r"^Data Sampling Rate\s*:\s*([\d.]+)\s*Hz", re.I)
_CHANNEL_BLOCK = re.compile(r"^Channels\s+(in EDF Files|changed)\s*:", re.I)
_CHANNEL = re.compile(r"^Channel\s+(\d+)\s*:\s*(.*)$", re.I)
_FILE = re.compile(r"^File Name\s*:\s*(\S+)\s*$", re.I)
_CLOCK = re.compile(r"^File (Start|End) Time\s*:\s*(\S+)\s*$", re.I)
_COUNT = re.compile(r"^Number of Seizures in File\s*:\s*(\d+)\s*$", re.I)
_SEIZURE = re.compile(
    r"^Seizure(?:\s+(\d+))?\s+(Start|End)\s+Time\s*:\s*(\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)?\s*$", re.I
)
_RULE = re.compile(r"^\*+$")

#: Tolerance between the summary's clock times and the EDF header's duration before warning.
CLOCK_TOLERANCE_S = 60.0


def subject_of(recording_id: str) -> str:
    """Subject label of a CHB-MIT file stem: ``'chb17a_03'`` -> ``'chb17'``,
    ``'chb02_16+'`` -> ``'chb02'``."""
    m = _SUBJECT.match(recording_id)
    if not m:
        raise ValueError(f"{recording_id!r} is not a CHB-MIT file name (chbNN_MM)")
    return m.group(1).lower()


def patient_of(subject: str) -> str:
    """Patient identity for splits: ``chb21`` is ``chb01`` recorded 1.5 years later (PhysioNet
    description of the database), so both map to ``chb01``; every other subject is itself."""
    subject = subject_of(subject)
    return "chb01" if subject == "chb21" else subject


def clock_to_seconds(text: str) -> int:
    """Seconds of a summary clock time as printed (``'24:21:32'`` -> 87692); no day wrap."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a H:MM:SS clock time")
    h, m, s = (int(p) for p in parts)
    return h * 3600 + m * 60 + s


@dataclass(frozen=True)
class SummaryEntry:
    """One ``File Name:`` block of a summary.

    Attributes
    ----------
    file_name : str
        EDF file name as written (``chb05_06.edf``).
    line : int
        Line of its ``File Name:`` in the summary.
    start_clock, end_clock : str or None
        ``File Start Time`` / ``File End Time`` as printed (clock times may pass 24 h).
    n_seizures : int
        ``Number of Seizures in File``.
    seizures : tuple of (float, float)
        Onsets and offsets in seconds from the file start, paired by position.
    channels : tuple of str
        Channel list in effect for this file (the last ``Channels ...`` block before it).
    """

    file_name: str
    line: int
    start_clock: str | None
    end_clock: str | None
    n_seizures: int
    seizures: tuple[tuple[float, float], ...]
    channels: tuple[str, ...]

    @property
    def clock_duration_s(self) -> float | None:
        """End minus start clock time, modulo a day; None when either is missing or malformed."""
        if self.start_clock is None or self.end_clock is None:
            return None
        try:
            return float((clock_to_seconds(self.end_clock) - clock_to_seconds(self.start_clock)) % 86400)
        except ValueError:
            return None


@dataclass(frozen=True)
class Summary:
    """A parsed ``chbNN-summary.txt``."""

    path: str
    sfreq: float | None
    entries: tuple[SummaryEntry, ...]
    warnings: tuple[str, ...] = ()

    def by_file(self) -> dict[str, SummaryEntry]:
        return {e.file_name: e for e in self.entries}


class _EntryBuilder:
    def __init__(self, file_name: str, line: int, channels: tuple[str, ...]):
        self.file_name, self.line, self.channels = file_name, line, channels
        self.start_clock: str | None = None
        self.end_clock: str | None = None
        self.n_seizures: int | None = None
        self.starts: list[float] = []
        self.ends: list[float] = []

    def build(self, summary: str) -> SummaryEntry:
        where = f"{summary}: entry of {self.file_name} (line {self.line})"
        if self.n_seizures is None:
            raise DatasetError(f"{where} has no 'Number of Seizures in File' line")
        if len(self.starts) != len(self.ends):
            raise DatasetError(
                f"{where} has {len(self.starts)} seizure start time(s) but {len(self.ends)} end time(s)"
            )
        if len(self.starts) != self.n_seizures:
            raise DatasetError(
                f"{where}: 'Number of Seizures in File' says {self.n_seizures} but "
                f"{len(self.starts)} seizure(s) are listed"
            )
        seizures = tuple(zip(self.starts, self.ends))
        for a, b in seizures:
            if b <= a:
                raise DatasetError(f"{where}: seizure ends ({b:g} s) before it starts ({a:g} s)")
        return SummaryEntry(self.file_name, self.line, self.start_clock, self.end_clock,
                            self.n_seizures, seizures, self.channels)


def parse_summary(path: str | os.PathLike) -> Summary:
    """Parse a CHB-MIT ``chbNN-summary.txt``.

    Parameters
    ----------
    path : path-like
        The summary file.

    Returns
    -------
    Summary
        Entries in file order; lines the parser does not know become warnings.

    Raises
    ------
    DatasetError
        Naming the summary (and the EDF entry): a seizure count that disagrees with the listed
        seizures, unpaired start/end times, a seizure line that cannot be parsed, an entry with
        no seizure count, an EDF listed twice with different contents.
    """
    path = str(path)
    text = read_text(path, "summary")
    sfreq: float | None = None
    channels: list[str] = []
    channels_frozen: tuple[str, ...] = ()
    in_block = False
    entries: list[SummaryEntry] = []
    seen: dict[str, SummaryEntry] = {}
    warnings: list[str] = []
    current: _EntryBuilder | None = None

    def close():
        nonlocal current
        if current is None:
            return
        entry = current.build(path)
        current = None
        if entry.file_name in seen:
            before = seen[entry.file_name]
            same = (before.seizures, before.channels) == (entry.seizures, entry.channels)
            if not same:
                raise DatasetError(
                    f"{path}: {entry.file_name} is listed on lines {before.line} and {entry.line} "
                    "with different seizures or channels"
                )
            warnings.append(f"{path}: {entry.file_name} listed twice (lines {before.line}, {entry.line})")
            return
        seen[entry.file_name] = entry
        entries.append(entry)

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or _RULE.match(line):
            continue
        if m := _RATE.match(line):
            sfreq = float(m.group(1))
            continue
        if _CHANNEL_BLOCK.match(line):
            close()  # a channel change ends the previous file's entry
            channels, in_block = [], True
            continue
        if m := _CHANNEL.match(line):
            if not in_block:
                warnings.append(f"{path}, line {number}: channel line outside a channel list: {line!r}")
                continue
            k = int(m.group(1))
            if k != len(channels) + 1:
                warnings.append(f"{path}, line {number}: channel {k} listed after {len(channels)} channels")
            channels.append(m.group(2).strip())
            continue
        if m := _FILE.match(line):
            close()
            if in_block:
                channels_frozen, in_block = tuple(channels), False
            current = _EntryBuilder(m.group(1), number, channels_frozen)
            continue
        if current is not None:
            if m := _CLOCK.match(line):
                if m.group(1).lower() == "start":
                    current.start_clock = m.group(2)
                else:
                    current.end_clock = m.group(2)
                continue
            if m := _COUNT.match(line):
                current.n_seizures = int(m.group(1))
                continue
            if m := _SEIZURE.match(line):
                (current.starts if m.group(2).lower() == "start" else current.ends).append(float(m.group(3)))
                continue
        if "seizure" in line.lower():
            owner = f" (entry of {current.file_name})" if current else ""
            raise DatasetError(f"{path}, line {number}{owner}: cannot parse seizure line {line!r}")
        warnings.append(f"{path}, line {number}: line not understood, ignored: {line!r}")
    close()
    return Summary(path, sfreq, tuple(entries), tuple(warnings))


@dataclass(frozen=True)
class SubjectInfo:
    """A row of ``SUBJECT-INFO``."""

    subject: str
    gender: str
    age_years: float


def read_subject_info(path: str | os.PathLike) -> dict[str, SubjectInfo]:
    """Read CHB-MIT's ``SUBJECT-INFO`` (tab-separated, ages space-padded; chb24 is absent)."""
    path = Path(path)
    lines = read_text(path, "subject table").splitlines()
    out: dict[str, SubjectInfo] = {}
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split("\t")]
        if not line.strip() or cells[0].lower() == "case":
            continue
        if len(cells) != 3:
            raise DatasetError(f"{path}, line {number}: expected 'case, gender, age', got {line!r}")
        try:
            age = float(cells[2])
        except ValueError:
            raise DatasetError(f"{path}, line {number}: age {cells[2]!r} is not a number") from None
        out[cells[0]] = SubjectInfo(cells[0], cells[1], age)
    return out


def _read_records_list(path: Path) -> set[str] | None:
    """``RECORDS`` / ``RECORDS-WITH-SEIZURES``: one ``chbNN/chbNN_MM.edf`` per line."""
    if not path.is_file():
        return None
    try:
        return {ln.strip() for ln in read_text(path, "records list").splitlines() if ln.strip()}
    except DatasetError:
        return None


def _channel_difference(header: tuple[str, ...], summary: tuple[str, ...]) -> str | None:
    a = [c.upper() for c in header]
    b = [c.upper() for c in summary]
    if a == b:
        return None
    for k, (x, y) in enumerate(zip(header, summary)):
        if x.upper() != y.upper():
            return f"channel {k + 1} is {x!r} in the EDF, {y!r} in the summary"
    return f"the EDF has {len(header)} channels, the summary {len(summary)}"


def _subject_dirs(root: Path) -> list[Path]:
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"chb\d+", d.name, re.I))
    if not dirs and any(root.glob("chb*-summary.txt")):
        return [root]  # the root is one subject's folder
    return dirs


def detect(root: Path) -> bool:
    """A CHB-MIT root holds ``chbNN/chbNN-summary.txt`` (or is one subject's folder)."""
    return any(root.glob("chb*/chb*-summary.txt")) or any(root.glob("chb*-summary.txt"))


def read_chbmit(root: str | os.PathLike, *, issues: list[str] | None = None) -> list[Recording]:
    """Index a CHB-MIT download: one :class:`Recording` per EDF file found, metadata only.

    Parameters
    ----------
    root : path-like
        The folder holding ``chb01/`` ... ``chb24/`` (or a single subject's folder).
    issues : list, optional
        Dataset-level warnings (summary entries whose EDF is missing, summary lines not
        understood, files listed in ``RECORDS`` but absent) are appended here.

    Returns
    -------
    list of Recording
        Channels, duration and sampling rate come from the EDF headers; seizures from the
        summaries. ``patient`` merges chb21 into chb01; ``subject`` keeps the folder's label.

    Raises
    ------
    DatasetError
        For a summary that cannot be trusted (see :func:`parse_summary`).
    """
    root = Path(root)
    issues = issues if issues is not None else []
    records = _read_records_list(root / "RECORDS")
    with_seizures = _read_records_list(root / "RECORDS-WITH-SEIZURES")
    out: list[Recording] = []
    for folder in _subject_dirs(root):
        summaries = [parse_summary(p) for p in sorted(folder.glob("chb*-summary.txt"))]
        entries: dict[str, tuple[SummaryEntry, Summary]] = {}
        for s in summaries:
            issues.extend(s.warnings)
            for e in s.entries:
                if e.file_name in entries:
                    raise DatasetError(
                        f"{e.file_name} has entries in both {entries[e.file_name][1].path} and {s.path}"
                    )
                entries[e.file_name] = (e, s)
        # Dot files are copy debris (macOS "._chb01_01.edf" resource forks), not recordings.
        edfs = sorted(p for p in folder.iterdir()
                      if p.suffix.lower() == ".edf" and not p.name.startswith(".") and p.is_file())
        names = {p.name for p in edfs}
        for name, (entry, s) in entries.items():
            if name not in names:
                issues.append(
                    f"{s.path}: {name} (line {entry.line}, {entry.n_seizures} seizure(s)) "
                    f"has no EDF file in {folder}"
                )
        for edf in edfs:
            out.append(_recording(edf, folder, entries.get(edf.name), summaries, root, with_seizures))
    if records is not None:
        on_disk = {str(Path(r.path).relative_to(root)).replace(os.sep, "/") for r in out}
        absent = sorted(records - on_disk)
        if absent:
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            issues.append(f"{root / 'RECORDS'} lists {len(absent)} EDF file(s) not on disk: {shown}")
    return out


def _recording(edf: Path, folder: Path, found, summaries: list[Summary], root: Path,
               with_seizures: set[str] | None) -> Recording:
    recording_id = edf.stem
    try:
        subject = subject_of(recording_id)
    except ValueError:
        subject = folder.name.lower()
    facts = header_facts(edf)
    warnings = list(facts.warnings)
    seizures: tuple[tuple[float, float], ...] = ()
    annotated = found is not None
    if found is None:
        where = ", ".join(s.path for s in summaries) or f"{folder} (no chbNN-summary.txt)"
        warnings.append(
            f"{edf}: no entry in {where}; unannotated, so excluded from training and scoring "
            "(not taken as seizure-free)"
        )
    else:
        entry, summary = found
        seizures = entry.seizures
        if facts.header is not None:
            if entry.channels and (diff := _channel_difference(facts.channels, entry.channels)):
                warnings.append(
                    f"{edf}: channels differ from {summary.path} ({diff}); the EDF header's are used"
                )
            if summary.sfreq is not None and abs(summary.sfreq - facts.sfreq) > 1e-6:
                warnings.append(
                    f"{edf}: EDF header gives {facts.sfreq:g} Hz, {summary.path} says {summary.sfreq:g} Hz"
                )
            clock = entry.clock_duration_s
            if clock is not None and abs(clock - facts.duration_s) > CLOCK_TOLERANCE_S:
                warnings.append(
                    f"{edf}: EDF header gives {facts.duration_s:g} s, {summary.path} clock times "
                    f"{entry.start_clock}-{entry.end_clock} span {clock:g} s"
                )
        warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
    if with_seizures is not None:
        rel = str(edf.relative_to(root)).replace(os.sep, "/") if edf.is_relative_to(root) else edf.name
        listed = rel in with_seizures
        if listed and not seizures:
            warnings.append(f"{edf}: listed in RECORDS-WITH-SEIZURES but has no annotated seizure")
        elif seizures and not listed:
            warnings.append(f"{edf}: has {len(seizures)} seizure(s) but is not in RECORDS-WITH-SEIZURES")
    return Recording(
        patient=patient_of(subject),
        recording_id=recording_id,
        path=str(edf),
        duration_s=facts.duration_s,
        sfreq=facts.sfreq,
        channels=facts.channels,
        seizures=seizures,
        annotated=annotated,
        warnings=tuple(warnings),
        subject=subject,
        meas_date=facts.meas_date,
        bad_channels=facts.bad_channels,
    )
