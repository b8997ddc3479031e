"""The Recording record: what every dataset source produces, metadata only.

A source turns a dataset folder into a list of :class:`Recording` without reading signal
samples (only EDF headers). Everything downstream (montage, cache, windows, splits, scoring)
works from these records.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recording:
    """One EEG recording (one EDF file) and its annotations.

    Attributes
    ----------
    patient : str
        Patient identity used for splits (CHB-MIT ``chb21`` is ``chb01`` recorded later, so it
        maps to ``chb01``; see :func:`datamodules.sources.chbmit.patient_of`).
    recording_id : str
        Unique id within the dataset, e.g. ``chb05_13`` or ``sub-01_ses-01_task-szMonitoring_run-00``.
    path : str
        Path of the EDF file.
    duration_s : float
        Duration in seconds, from the EDF header.
    sfreq : float
        Sampling rate in Hz of the EEG channels, from the EDF header.
    channels : tuple of str
        Channel labels exactly as found in the file (dummies and duplicates included).
    seizures : tuple of (float, float)
        Annotated seizures as ``(onset_s, offset_s)`` relative to the file start.
    soz : tuple of str or None
        Seizure onset zone electrodes (canonical 10-20 names), when known.
    soz_region : str or None
        Coarse region label (``left temporal``...) when the clinician gave one.
    annotated : bool
        False for files with no annotation entry (CHB-MIT files missing from the summary):
        they are never treated as seizure-free and are excluded from training and scoring.
    warnings : tuple of str
        Problems found while indexing, each naming the file.
    subject : str
        Dataset subject label as written (``chb21`` stays ``chb21`` here; ``patient`` merges).
    meas_date : str or None
        Start date and time of the recording (ISO format), from the EDF header.
    seizure_types : tuple of str
        BIDS-score ``eventType`` of each seizure (``sz_foc_ia``, ``sz_gen``...) when the dataset
        says; empty when it does not (every seizure is then ``sz``).
    bad_channels : tuple of int
        Indices (into ``channels``) of channels whose samples cannot be used (no finite scale,
        an empty digital range, a non-voltage unit on an EEG channel); the montage is built
        without them or the recording is unusable (see :func:`datamodules.sources.montage_problem`).
    records : (int, int) or None
        Data records ``[first, stop)`` of the EDF file this recording covers, when it is one
        continuous part of a discontinuous EDF+ (EDF+D) file; None for the whole file.
    start_s : float
        Onset of the first covered data record from the file start (0 for a whole file); seizure
        times are relative to it.
    """

    patient: str
    recording_id: str
    path: str
    duration_s: float
    sfreq: float
    channels: tuple[str, ...]
    seizures: tuple[tuple[float, float], ...] = ()
    soz: tuple[str, ...] | None = None
    soz_region: str | None = None
    annotated: bool = True
    warnings: tuple[str, ...] = ()
    subject: str = ""
    meas_date: str | None = field(default=None, compare=False)
    seizure_types: tuple[str, ...] = ()
    bad_channels: tuple[int, ...] = ()
    records: tuple[int, int] | None = None
    start_s: float = 0.0

    @property
    def n_seizures(self) -> int:
        return len(self.seizures)

    def seizure_type(self, k: int) -> str:
        """BIDS-score ``eventType`` of seizure ``k`` (``sz`` when the dataset does not say)."""
        return self.seizure_types[k] if k < len(self.seizure_types) and self.seizure_types[k] else "sz"

    def with_(self, **changes) -> Recording:
        """A copy with some fields replaced (records are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict, the schema ``python -m datamodules inspect --json`` prints."""
        return {
            "patient": self.patient,
            "subject": self.subject or self.patient,
            "recording_id": self.recording_id,
            "path": str(self.path),
            "duration_s": round(float(self.duration_s), 6),
            "sfreq": float(self.sfreq),
            "channels": list(self.channels),
            "seizures": [[float(a), float(b)] for a, b in self.seizures],
            "soz": list(self.soz) if self.soz is not None else None,
            "soz_region": self.soz_region,
            "annotated": self.annotated,
            "warnings": list(self.warnings),
            "meas_date": self.meas_date,
            "seizure_types": [self.seizure_type(k) for k in range(self.n_seizures)],
            "bad_channels": list(self.bad_channels),
            "records": list(self.records) if self.records is not None else None,
            "start_s": float(self.start_s),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Recording:
        return cls(
            patient=d["patient"],
            recording_id=d["recording_id"],
            path=d["path"],
            duration_s=float(d["duration_s"]),
            sfreq=float(d["sfreq"]),
            channels=tuple(d["channels"]),
            seizures=tuple((float(a), float(b)) for a, b in d.get("seizures", [])),
            soz=tuple(d["soz"]) if d.get("soz") is not None else None,
            soz_region=d.get("soz_region"),
            annotated=bool(d.get("annotated", True)),
            warnings=tuple(d.get("warnings", [])),
            subject=d.get("subject", d["patient"]),
            meas_date=d.get("meas_date"),
            seizure_types=tuple(d.get("seizure_types", ())),
            bad_channels=tuple(int(i) for i in d.get("bad_channels", ())),
            records=tuple(d["records"]) if d.get("records") is not None else None,
            start_s=float(d.get("start_s", 0.0)),
        )


class DatasetError(Exception):
    """A dataset root or file that cannot be read; the message names the file and the problem."""
