"""SzCORE BIDS layout (Dan et al., "SzCORE: seizure community open-source research evaluation
framework for the validation of EEG-based automated seizure detection algorithms", Epilepsia
2024; the ``epilepsy2bids`` converter writes CHB-MIT, Siena, TUSZ... in this form)::

    sub-01/ses-01/eeg/sub-01_ses-01_task-szMonitoring_run-00_eeg.edf
    sub-01/ses-01/eeg/sub-01_ses-01_task-szMonitoring_run-00_events.tsv

``events.tsv`` columns (BIDS-score): onset, duration, eventType, confidence, channels, dateTime,
recordingDuration. ``eventType`` follows the BIDS-score vocabulary
(:data:`datamodules.sources.vocabulary.EVENT_TYPES`: ``bckg`` for background, ``sz`` and its
ILAE subtypes ``sz_foc_ia``, ``sz_gen_m_tonicClonic``...); a row with any other type, or with an
onset or duration that is not a finite number, stops the index with a sentence naming the file
and line (a type such as ``seizure`` silently dropped would turn a seizure recording into a
seizure-free one; an onset of ``nan`` would become a whole-recording seizure at scoring).
Channel labels in these EDFs use old names and mixed case (``Fp1-F7``, ``T3-T5``);
Recording.channels keep them as found and :func:`eeg.montage.derive` maps them.

The ``channels`` column of seizure events (comma-separated labels, or ``n/a``) is a second
source of onset zones: the electrodes of the listed channels, pooled over a patient's
seizures. ``soz.tsv`` at the root, when it has a row for the patient, takes precedence
(see :func:`datamodules.sources.scan`). A recording without ``events.tsv`` whose EDF+
annotation signal holds seizure events is annotated from them (with a warning).

:func:`write_bids` writes any index in this layout (``python -m datamodules convert --to bids``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources._common import edf_plus_labels, header_facts, read_text, seizure_warnings
from datamodules.sources.vocabulary import EVENT_TYPES
from eeg.montage import channel_electrodes

LAYOUT = "bids"
REQUIRED_COLUMNS = ("onset", "duration", "eventType")
COLUMNS = ("onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration")
_EMPTY = {"", "n/a", "na"}
#: Tolerance between ``recordingDuration`` and the EDF header's duration before warning.
DURATION_TOLERANCE_S = 1.0
TASK = "szMonitoring"



def detect(root: Path) -> bool:
    """A SzCORE BIDS root holds ``sub-*/[ses-*/]eeg/*_eeg.edf``."""
    return any(_eeg_files(root))


def _eeg_files(root: Path):
    # Dot files are copy debris (macOS "._" resource forks), not recordings.
    return (p for p in root.glob("sub-*/**/eeg/*_eeg.edf") if not p.name.startswith(".") and p.is_file())


@dataclass(frozen=True)
class Events:
    """A parsed ``events.tsv``.

    Attributes
    ----------
    seizures : tuple of (float, float)
        ``(onset, onset + duration)`` of the seizure events.
    types : tuple of str
        Their eventType.
    channels : tuple of tuple of str
        Per seizure, the labels of its ``channels`` column (empty for ``n/a``).
    recording_duration : float or None
        The ``recordingDuration`` column (first value), when present.
    """

    seizures: tuple[tuple[float, float], ...]
    types: tuple[str, ...]
    channels: tuple[tuple[str, ...], ...]
    recording_duration: float | None


def _finite(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}: {what} {text!r} is not a finite number")
    return value


def read_events(path: str | os.PathLike) -> Events:
    """Read a SzCORE ``events.tsv``.

    Raises
    ------
    DatasetError
        Naming the file and line: missing columns, an eventType outside the BIDS-score
        vocabulary, an onset, duration or recordingDuration that is not a finite number, a
        negative onset or duration, a confidence outside [0, 1].
    """
    path = Path(path)
    rows = list(csv.reader(io.StringIO(read_text(path, "events file")), delimiter="\t"))
    if not rows:
        raise DatasetError(f"{path}: empty events file (no header line)")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: events file lacks column(s) {', '.join(missing)} (header {header})")
    col = {name: header.index(name) for name in header}
    seizures: list[tuple[float, float]] = []
    types: list[str] = []
    channels: list[tuple[str, ...]] = []
    duration: float | None = None
    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        where = f"{path}, line {number}"
        if len(row) != len(header):
            raise DatasetError(f"{where}: {len(row)} fields, the header has {len(header)}")
        get = lambda name, row=row: row[col[name]].strip() if name in col else ""  # noqa: E731
        event_type = get("eventType")
        if event_type not in EVENT_TYPES:
            low = event_type.lower()
            close = "sz" if ("seiz" in low or low.startswith("sz")) else "bckg" if low.startswith(("b", "back")) else ""
            hint = f" (did you mean {close!r}?)" if close else ""
            raise DatasetError(
                f"{where}: eventType {event_type!r} is not in the BIDS-score vocabulary "
                f"(bckg, sz, sz_foc_*, sz_gen_*, sz_uo_*){hint}"
            )
        onset = _finite(get("onset"), "onset", where)
        length = _finite(get("duration"), "duration", where)
        if length < 0 or onset < 0:
            raise DatasetError(f"{where}: negative onset or duration ({onset:g}, {length:g})")
        if get("recordingDuration").lower() not in _EMPTY:
            value = _finite(get("recordingDuration"), "recordingDuration", where)
            duration = value if duration is None else duration
        if get("confidence").lower() not in _EMPTY:
            confidence = _finite(get("confidence"), "confidence", where)
            if not 0.0 <= confidence <= 1.0:
                raise DatasetError(f"{where}: confidence {confidence:g} is outside [0, 1]")
        if event_type == "bckg":
            continue
        seizures.append((onset, round(onset + length, 9)))  # 4.9724 + 31.3591: no 36.331500000000005
        types.append(event_type)
        listed = get("channels")
        channels.append(() if listed.lower() in _EMPTY else
                        tuple(c.strip() for c in listed.split(",") if c.strip()))
    return Events(tuple(seizures), tuple(types), tuple(channels), duration)


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
        events_path = edf.with_name(recording_id + "_events.tsv")
        facts = header_facts(edf)
        warnings = list(facts.warnings)
        seizures: tuple[tuple[float, float], ...] = ()
        types: tuple[str, ...] = ()
        annotated = events_path.is_file()
        if not annotated:
            from_edf = edf_plus_labels(edf, facts.header)
            if from_edf is not None:
                seizures, types, note = from_edf
                annotated = True
                warnings.append(note)
            else:
                warnings.append(
                    f"{edf}: no {events_path.name}; unannotated, so excluded from training and scoring "
                    "(not taken as seizure-free)"
                )
        else:
            events = read_events(events_path)
            seizures, types = events.seizures, events.types
            duration = events.recording_duration
            if (facts.header is not None and duration is not None
                    and abs(duration - facts.duration_s) > DURATION_TOLERANCE_S):
                warnings.append(
                    f"{edf}: EDF header gives {facts.duration_s:g} s, {events_path.name} "
                    f"recordingDuration {duration:g} s"
                )
            for labels in events.channels:
                for label in labels:
                    electrodes = channel_electrodes(label)
                    if not electrodes:
                        warnings.append(f"{events_path}: seizure channel {label!r} is not an EEG channel; ignored")
                    for e in electrodes:
                        named.setdefault(patient, [])
                        if e not in named[patient]:
                            named[patient].append(e)
        if annotated:
            warnings += seizure_warnings(str(edf), seizures, facts.duration_s, facts.header is not None)
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
            seizure_types=types,
            bad_channels=facts.bad_channels,
        ))
    # Onset zones are a patient's, not a file's: pool the electrodes over all its seizures.
    return [r.with_(soz=tuple(named[r.patient])) if r.patient in named else r for r in out]


# --------------------------------------------------------------------------- writer
def events_rows(rec: Recording, duration_s: float, channels: str = "n/a") -> list[list[str]]:
    """BIDS-score rows of one recording: one per seizure, or one ``bckg`` row when it has none."""
    from datamodules.sources._write import seconds_text, start_of

    start = start_of(rec)
    date = start.strftime("%Y-%m-%d %H:%M:%S") if start else "n/a"
    rows = []
    for k, (a, b) in enumerate(rec.seizures):
        rows.append([seconds_text(a), seconds_text(b - a), rec.seizure_type(k), "n/a", channels, date,
                     seconds_text(duration_s)])
    if not rows:
        rows.append(["0", seconds_text(duration_s), "bckg", "n/a", "n/a", date, seconds_text(duration_s)])
    return rows


def write_bids(recordings: list[Recording], out: str | os.PathLike) -> dict[str, str]:
    """Write recordings in the SzCORE BIDS layout under ``out``.

    One subject per patient (``sub-<patient letters and digits>``), one session per dataset
    subject of that patient (CHB-MIT chb21 becomes chb01's second session), one run per
    recording in recording order. EDF files are copied as they are when the recording is the
    whole file, else written from its samples. Seizures keep their BIDS-score type; the
    ``channels`` column lists the patient's onset-zone electrodes when known. Unannotated
    recordings are left out (BIDS-score has no way to say "not annotated").

    Returns
    -------
    dict
        ``{source patient: BIDS subject}``.
    """
    from datamodules.sources._write import label_of, write_recording

    out = Path(out)
    subjects: dict[str, str] = {}
    for patient in sorted({r.patient for r in recordings}):
        label = label_of(patient)
        if f"sub-{label}" in subjects.values():
            raise DatasetError(f"patients {patient!r} and another both map to BIDS subject sub-{label}")
        subjects[patient] = f"sub-{label}"
    rows_participants = []
    for patient, subject in subjects.items():
        recs = sorted((r for r in recordings if r.patient == patient and r.annotated),
                      key=lambda r: r.recording_id)
        sessions = sorted({r.subject or r.patient for r in recs}, key=lambda s: (s != patient, s))
        for r in recs:
            session = f"ses-{sessions.index(r.subject or r.patient) + 1:02d}"
            run = sum(1 for q in recs[:recs.index(r)] if (q.subject or q.patient) == (r.subject or r.patient))
            stem = f"{subject}_{session}_task-{TASK}_run-{run:02d}"
            folder = out / subject / session / "eeg"
            duration = write_recording(r, folder / f"{stem}_eeg.edf", "as_found")
            channels = ",".join(r.soz) if r.soz else "n/a"
            with open(folder / f"{stem}_events.tsv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, delimiter="\t", lineterminator="\n")
                w.writerow(COLUMNS)
                w.writerows(events_rows(r, duration, channels))
        rows_participants.append(f"{subject}\t{patient}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "participants.tsv").write_text("participant_id\tsource_patient\n" + "\n".join(rows_participants) + "\n",
                                          encoding="utf-8")
    (out / "dataset_description.json").write_text(json.dumps(
        {"Name": "Converted by seizure-lightning (python -m datamodules convert)", "BIDSVersion": "1.9.0",
         "DatasetType": "raw"}, indent=1) + "\n", encoding="utf-8")
    return subjects
