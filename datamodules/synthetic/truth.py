"""What a synthetic corpus holds, as built: the ground truth behind its annotations.

The summaries say what a clinician would have marked (whole seconds, with the marking error of
the preset); the truth file ``.synthetic.json`` at the corpus root keeps, beside them, the true
onset and offset, the true onset zone, the ictal frequency band, the morphology and the spread
of every seizure, and every artifact, sleep graphoelement and vigilance period written. Tests,
the difficulty check (``python -m experiments.difficulty``) and studies of inexact labels read
it with :func:`load_truth`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError

from .params import HARD_NEGATIVES, GenerationParams
from .primitives import SFREQ

TRUTH_FILE = ".synthetic.json"


@dataclass(frozen=True)
class SeizureTruth:
    """One simulated seizure: as annotated in the summary and as built.

    Attributes
    ----------
    onset_s, offset_s : int
        Annotated onset and offset (whole seconds from the file start), as the summary says.
    true_onset_s, true_offset_s : float
        When the ictal activity really starts at the onset zone and ends.
    morphology : str
        ``evolving`` (rhythm whose frequency falls), ``electrodecremental`` (attenuation and
        low-voltage fast activity, then an evolving rhythm), ``rhythmic_buildup`` (theta or
        delta rhythm that builds up) or ``spike_wave``.
    band_hz : (float, float)
        Frequency band of the ictal rhythm (low-voltage fast activity excluded).
    freq_start_hz, freq_end_hz : float
        Frequency of the first and of the last rhythmic discharges.
    lvfa_s, lvfa_hz : float
        Duration and frequency of the low-voltage fast activity at onset (0 when none).
    gain : float
        Ictal RMS over background RMS in the strongest onset-zone channel, at the plateau.
    spread_s : float
        Seconds after the true onset at which neighbouring electrodes join.
    propagation : tuple of str
        Electrodes where the propagated rhythm becomes larger than at the onset zone (empty when
        the onset zone stays strongest).
    propagation_s : float or None
        Seconds after the true onset at which that larger rhythm appears.
    contralateral_s : float or None
        Seconds after the true onset at which the other hemisphere joins (None: one side only).
    emg_s : float or None
        Seconds after the true onset at which muscle artifact covers the seizure (None: none).
    postictal_s : float
        Time constant of the post-ictal slowing (0: none).
    """

    onset_s: int
    offset_s: int
    true_onset_s: float
    true_offset_s: float
    morphology: str
    band_hz: tuple[float, float]
    freq_start_hz: float
    freq_end_hz: float
    lvfa_s: float = 0.0
    lvfa_hz: float = 0.0
    gain: float = 0.0
    spread_s: float = 0.0
    propagation: tuple[str, ...] = ()
    propagation_s: float | None = None
    contralateral_s: float | None = None
    emg_s: float | None = None
    postictal_s: float = 0.0

    @property
    def duration_s(self) -> int:
        """Annotated duration."""
        return self.offset_s - self.onset_s

    @property
    def true_duration_s(self) -> float:
        return self.true_offset_s - self.true_onset_s


@dataclass(frozen=True)
class EventTruth:
    """A non-seizure event written into a recording (artifact, hard negative, sleep graphoelement)."""

    kind: str
    onset_s: float
    duration_s: float
    electrodes: tuple[str, ...]

    @property
    def hard_negative(self) -> bool:
        return self.kind in HARD_NEGATIVES


@dataclass(frozen=True)
class StateTruth:
    """A vigilance period: ``awake``, ``drowsy`` or ``asleep`` (N2 sleep)."""

    state: str
    onset_s: float
    duration_s: float


@dataclass(frozen=True)
class RecordingTruth:
    """One EDF file of the corpus: where it is, how long, and what it holds."""

    recording_id: str
    path: str  # relative to the corpus root, e.g. ``chb01/chb01_02.edf``
    duration_s: int
    start_time: str  # ``File Start Time`` of the summary
    end_time: str  # ``File End Time`` of the summary (may pass 24:00:00)
    seizure_details: tuple[SeizureTruth, ...]
    events: tuple[EventTruth, ...]
    states: tuple[StateTruth, ...] = ()

    @property
    def seizures(self) -> tuple[tuple[float, float], ...]:
        """Annotated ``((onset_s, offset_s), ...)``, as :class:`~datamodules.recording.Recording` has them."""
        return tuple((float(s.onset_s), float(s.offset_s)) for s in self.seizure_details)

    @property
    def true_seizures(self) -> tuple[tuple[float, float], ...]:
        """True ``((onset_s, offset_s), ...)``."""
        return tuple((s.true_onset_s, s.true_offset_s) for s in self.seizure_details)


@dataclass(frozen=True)
class PatientTruth:
    """One synthetic patient: seizure onset zone, demographics, recordings."""

    patient: str
    soz: tuple[str, ...]  # electrodes, strongest first
    region: str
    soz_weights: tuple[float, ...]  # relative field of each ``soz`` electrode (first is 1)
    gender: str
    age: float
    recordings: tuple[RecordingTruth, ...]
    morphology: str = ""  # the patient's usual seizure morphology
    background_uV: float = 0.0  # referential RMS of the patient's 1/f background
    alpha_hz: float = 0.0

    @property
    def n_seizures(self) -> int:
        return sum(len(r.seizure_details) for r in self.recordings)

    @property
    def seizure_details(self) -> tuple[SeizureTruth, ...]:
        return tuple(s for r in self.recordings for s in r.seizure_details)


@dataclass(frozen=True)
class CorpusTruth:
    """What :func:`~datamodules.synthetic.generate_corpus` wrote: per patient the onset zone,
    per recording the seizures (annotated and true) and everything else simulated."""

    root: str
    params: GenerationParams
    patients: tuple[PatientTruth, ...]
    sfreq: float = float(SFREQ)

    @property
    def n_seizures(self) -> int:
        return sum(p.n_seizures for p in self.patients)

    @property
    def recordings(self) -> tuple[RecordingTruth, ...]:
        return tuple(r for p in self.patients for r in p.recordings)

    @property
    def hours(self) -> float:
        return sum(r.duration_s for r in self.recordings) / 3600.0

    def patient(self, patient: str) -> PatientTruth:
        for p in self.patients:
            if p.patient == patient:
                return p
        raise KeyError(f"no patient {patient!r} in the synthetic corpus at {self.root}")

    def recording(self, recording_id: str) -> RecordingTruth:
        for r in self.recordings:
            if r.recording_id == recording_id:
                return r
        raise KeyError(f"no recording {recording_id!r} in the synthetic corpus at {self.root}")

    def seizures(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """``{recording_id: ((onset_s, offset_s), ...)}`` as annotated, for every recording."""
        return {r.recording_id: r.seizures for r in self.recordings}

    def soz(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """``{patient: (electrodes, region)}``, the content of ``soz.tsv``."""
        return {p.patient: (p.soz, p.region) for p in self.patients}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["params"] = self.params.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CorpusTruth:
        def seizure(s):
            s = dict(s)
            s["band_hz"] = tuple(s["band_hz"])
            s["propagation"] = tuple(s.get("propagation", ()))
            return SeizureTruth(**s)

        def event(e):
            return EventTruth(e["kind"], float(e["onset_s"]), float(e["duration_s"]), tuple(e["electrodes"]))

        def recording(r):
            return RecordingTruth(r["recording_id"], r["path"], int(r["duration_s"]), r["start_time"],
                                  r["end_time"], tuple(seizure(s) for s in r["seizure_details"]),
                                  tuple(event(e) for e in r["events"]),
                                  tuple(StateTruth(**s) for s in r.get("states", ())))

        def patient(p):
            p = dict(p)
            p["soz"], p["soz_weights"] = tuple(p["soz"]), tuple(p["soz_weights"])
            p["recordings"] = tuple(recording(r) for r in p["recordings"])
            return PatientTruth(**p)

        return cls(str(d["root"]), GenerationParams.from_dict(d["params"]),
                   tuple(patient(p) for p in d["patients"]), float(d.get("sfreq", SFREQ)))


def write_truth(path: Path, truth: CorpusTruth) -> None:
    """Write the truth file; its ``root`` is ``.`` so it does not depend on where the corpus lives."""
    body = truth.to_dict()
    body["root"] = "."
    path.write_text(json.dumps(body, separators=(",", ":")))


def load_truth(root: str | os.PathLike) -> CorpusTruth:
    """The :class:`CorpusTruth` of a corpus written by :func:`~datamodules.synthetic.generate_corpus`
    (from its hidden ``.synthetic.json``); ``root`` in the result is the folder given here."""
    path = Path(root) / TRUTH_FILE
    try:
        truth = CorpusTruth.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found; {root} is not a synthetic corpus written by "
                           "datamodules.synthetic.generate_corpus") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: unreadable synthetic corpus truth ({e})") from None
    return dataclasses.replace(truth, root=str(root))
