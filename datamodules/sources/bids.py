"""SzCORE BIDS layout (Dan et al., "SzCORE: seizure community open-source research evaluation
framework for the validation of EEG-based automated seizure detection algorithms", Epilepsia
2024; the ``epilepsy2bids`` converter writes CHB-MIT, Siena, TUSZ... in this form)::

    sub-01/ses-01/eeg/sub-01_ses-01_task-szMonitoring_run-00_eeg.edf
    sub-01/ses-01/eeg/sub-01_ses-01_task-szMonitoring_run-00_events.tsv

``events.tsv`` columns: onset, duration, eventType, confidence, channels, dateTime,
recordingDuration. Seizure events have an ``eventType`` starting with ``sz`` (``sz``,
``sz_foc_ia``...); ``bckg`` marks a recording without seizures. Channel labels in these EDFs
use old names and mixed case (``Fp1-F7``, ``T3-T5``); Recording.channels keep them as found
and :func:`eeg.montage.derive` maps them.

The ``channels`` column of seizure events (comma-separated labels, or ``n/a``) is a second
source of onset zones: the electrodes of the listed channels, pooled over a patient's
seizures. ``soz.tsv`` at the root, when it has a row for the patient, takes precedence
(see :func:`datamodules.sources.scan`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import header_facts, seizure_warnings
from eeg.montage import channel_electrodes

LAYOUT = "bids"
REQUIRED_COLUMNS = ("onset", "duration", "eventType")
_EMPTY = {"", "n/a", "na"}
#: Tolerance between ``recordingDuration`` and the EDF header's duration before warning.
DURATION_TOLERANCE_S = 1.0


def detect(root: Path) -> bool:
    """A SzCORE BIDS root holds ``sub-*/[ses-*/]eeg/*_eeg.edf``."""
    return any(_eeg_files(root))


def _eeg_files(root: Path):
    # Dot files are copy debris (macOS "._" resource forks), not recordings.
    return (p for p in root.glob("sub-*/**/eeg/*_eeg.edf") if not p.name.startswith(".") and p.is_file())


def read_events(path: str | os.PathLike):
    """Read a SzCORE ``events.tsv``.

    Returns
    -------
    seizures : tuple of (float, float)
        ``(onset, onset + duration)`` of the events whose eventType starts with ``sz``.
    channels : tuple of tuple of str
        Per seizure, the labels of its ``channels`` column (empty for ``n/a``).
    recording_duration : float or None
        The ``recordingDuration`` column (first numeric value), when present.

    Raises
    ------
    DatasetError
        Naming the file and line: missing columns, a seizure whose onset or duration is not a
        number, a negative duration.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t"))
    except OSError as e:
        raise DatasetError(f"{path}: cannot read events ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise DatasetError(f"{path}: empty events file (no header line)")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: events file lacks column(s) {', '.join(missing)} (header {header})")
    col = {name: header.index(name) for name in header}
    seizures: list[tuple[float, float]] = []
    channels: list[tuple[str, ...]] = []
    duration: float | None = None
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}")
        get = lambda name, row=row: row[col[name]].strip() if name in col else ""
        if duration is None and get("recordingDuration").lower() not in _EMPTY:
            try:
                duration = float(get("recordingDuration"))
            except ValueError:
                raise DatasetError(
                    f"{path}, line {number}: recordingDuration {get('recordingDuration')!r} is not a number"
                ) from None
        if not get("eventType").lower().startswith("sz"):
            continue
        try:
            onset, length = float(get("onset")), float(get("duration"))
        except ValueError:
            raise DatasetError(
                f"{path}, line {number}: seizure onset {get('onset')!r} / duration "
                f"{get('duration')!r} is not a number"
            ) from None
        if length < 0 or onset < 0:
            raise DatasetError(f"{path}, line {number}: negative seizure onset or duration")
        seizures.append((onset, onset + length))
        listed = get("channels")
        channels.append(() if listed.lower() in _EMPTY else
                        tuple(c.strip() for c in listed.split(",") if c.strip()))
    return tuple(seizures), tuple(channels), duration


def read_bids(root: str | os.PathLike, *, issues: list[str] | None = None) -> list[Recording]:
    """Index a SzCORE BIDS dataset: one :class:`Recording` per ``*_eeg.edf``, metadata only.

    Parameters
    ----------
    root : path-like
        The BIDS root (holding ``sub-*/``).
    issues : list, optional
        Dataset-level warnings are appended here (none are produced by this layout today; the
        argument keeps the sources interchangeable).

    Returns
    -------
    list of Recording
        ``patient`` is ``sub-XX``; ``recording_id`` the file stem without ``_eeg``; ``soz`` the
        electrodes named in the patient's seizure events (None when none are named).
    """
    root = Path(root)
    out: list[Recording] = []
    named: dict[str, list[str]] = {}
    for edf in sorted(_eeg_files(root)):
        patient = edf.relative_to(root).parts[0]
        recording_id = edf.name[: -len("_eeg.edf")]
        events = edf.with_name(recording_id + "_events.tsv")
        facts = header_facts(edf)
        warnings = list(facts.warnings)
        seizures: tuple[tuple[float, float], ...] = ()
        annotated = events.is_file()
        if not annotated:
            warnings.append(
                f"{edf}: no {events.name}; unannotated, so excluded from training and scoring "
                "(not taken as seizure-free)"
            )
        else:
            seizures, channels, duration = read_events(events)
            if (facts.header is not None and duration is not None
                    and abs(duration - facts.duration_s) > DURATION_TOLERANCE_S):
                warnings.append(
                    f"{edf}: EDF header gives {facts.duration_s:g} s, {events.name} "
                    f"recordingDuration {duration:g} s"
                )
            warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
            for labels in channels:
                for label in labels:
                    electrodes = channel_electrodes(label)
                    if not electrodes:
                        warnings.append(f"{events}: seizure channel {label!r} is not an EEG channel; ignored")
                    for e in electrodes:
                        named.setdefault(patient, [])
                        if e not in named[patient]:
                            named[patient].append(e)
        out.append(Recording(
            patient=patient,
            recording_id=recording_id,
            path=str(edf),
            duration_s=facts.duration_s,
            sfreq=facts.sfreq,
            channels=facts.channels,
            seizures=seizures,
            annotated=annotated,
            warnings=tuple(warnings),
            subject=patient,
            meas_date=facts.meas_date,
        ))
    # Onset zones are a patient's, not a file's: pool the electrodes over all its seizures.
    return [r.with_(soz=tuple(named[r.patient])) if r.patient in named else r for r in out]
