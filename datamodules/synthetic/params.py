"""Every knob of the synthetic corpus, and the presets that set them.

Two presets:

``realistic`` (the default)
    Hours of EEG per patient in 2-4 recordings (1.5-2 h), 2-4 seizures per patient with at least
    one recording seizure-free, heavy-tailed seizure durations (6-150 s, some under 10 s),
    ictal rhythms only 1.2-3x the background, four seizure morphologies, propagation that may
    outgrow the onset zone, seizures partly under muscle artifact, drowsiness and sleep, the
    artifacts of a ward recording, and annotations that miss the true onset by -3..+10 s.
``easy``
    The corpus of earlier versions, for fast tests: 2 recordings of about 12 min per patient,
    clear seizures (3.5-6.5x the background, opened by low-voltage fast activity and evolving),
    the onset zone always strongest, no sleep, exact annotations.

A knob given to :func:`~datamodules.synthetic.generate_corpus` (or on the command line)
replaces the preset's value; :func:`resolve` checks them all and names the first bad one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

#: Bump when the bytes written for a given set of parameters change (invalidates reuse).
GENERATOR_VERSION = 2

#: Seizure morphologies the generator can draw (see ``seizures.py``).
MORPHOLOGIES = ("evolving", "electrodecremental", "rhythmic_buildup", "spike_wave")

#: Artifact and non-seizure event kinds with a rate (events per hour of the state they need).
EVENT_KINDS = (
    "blink",              # eyes open
    "eye_movement",       # lateral saccades, eyes open
    "slow_eye_movement",  # roving lateral eye movements, drowsiness
    "muscle",             # EMG bursts, temporal or frontal, sometimes bilateral and large (awake)
    "chewing",            # 1-2 Hz trains of bilateral temporal EMG bursts (awake)
    "movement",           # movement artifact on every electrode (awake)
    "pop",                # electrode pop: step and exponential decay on one electrode
    "bad_electrode",      # one electrode turns noisy or drifts for minutes
    "rhythmic_burst",     # short rhythmic bursts that are not seizures (generalized or regional)
    "interictal_spike",   # isolated spike-and-wave at the onset zone
    "interictal_run",     # 1-4 s run of spike-and-wave at the onset zone
)
#: Kinds kept away from seizures so that the annotation stays the only seizure-like event there.
HARD_NEGATIVES = ("rhythmic_burst", "interictal_spike", "interictal_run")


@dataclass(frozen=True)
class GenerationParams:
    """Everything that changes the bytes of a corpus (with :data:`GENERATOR_VERSION`).

    Attributes
    ----------
    preset : str
        The preset the other values started from (``realistic`` or ``easy``).
    n_patients : int
        Subjects ``chb01``, ``chb02``... (``chb21`` skipped: CHB-MIT's chb21 is chb01).
    n_recordings : (int, int)
        Range of EDF files per patient.
    hours : (float, float) or None
        Range of hours of EEG per patient, shared out over its recordings (used when
        ``minutes`` is None).
    minutes : float or None
        Typical length of each recording instead (each lasts ``minutes`` x U(0.85, 1.25)).
    seed : int
        Same seed and parameters -> same bytes.
    seizures_per_patient : (int, int)
        Range of seizures per patient (with ``hours``, the seizure rate).
    seizure_free_recordings : int
        At least this many recordings of each patient hold no seizure (when it has more).
    seizure_s : (float, float)
        Shortest and longest seizure (s).
    seizure_median_s : (float, float)
        Range of a patient's median seizure duration; durations are lognormal around it
        (heavy-tailed) and clipped to ``seizure_s``.
    ictal_gain : (float, float)
        Range of a patient's ictal rhythm RMS over the background RMS in the strongest
        onset-zone channel, at the seizure's plateau (each seizure varies by about 12 % around
        it, kept within 0.8x the low and 1.2x the high end).
    morphologies : tuple of str
        Morphologies drawn (each patient has a usual one; a quarter of seizures take another).
    propagation : float
        Share of each patient's seizures whose propagated rhythm (neighbouring or contralateral
        region) becomes larger than at the onset zone (stochastically rounded per patient).
    ictal_emg : float
        Share of each patient's seizures partly hidden under muscle artifact (likewise).
    sleep : (float, float)
        Range of a patient's share of time drowsy or asleep.
    artifacts : float
        Scale of every event rate (0: clean background, seizures and sleep only).
    rates : tuple of (str, float)
        Events per hour by kind (:data:`EVENT_KINDS`), before ``artifacts``.
    onset_error_s : (float, float)
        Range of annotated minus true onset (s); clinicians mostly mark late.
    offset_error_s : float
        Annotated offset is the true one +/- up to this (s).
    montage : str
        What the EDF files hold: ``bipolar`` (the 23 CHB-MIT channels) or ``referential`` (each
        simulated electrode against an ideal common reference, ``EEG FP1-REF``).
    """

    preset: str = "realistic"
    n_patients: int = 6
    n_recordings: tuple[int, int] = (2, 4)
    hours: tuple[float, float] | None = (1.5, 2.0)
    minutes: float | None = None
    seed: int = 0
    seizures_per_patient: tuple[int, int] = (2, 4)
    seizure_free_recordings: int = 1
    seizure_s: tuple[float, float] = (6.0, 150.0)
    seizure_median_s: tuple[float, float] = (12.0, 40.0)
    ictal_gain: tuple[float, float] = (1.2, 3.0)
    morphologies: tuple[str, ...] = MORPHOLOGIES
    propagation: float = 0.7
    ictal_emg: float = 0.35
    sleep: tuple[float, float] = (0.1, 0.5)
    artifacts: float = 1.0
    rates: tuple[tuple[str, float], ...] = ()
    onset_error_s: tuple[float, float] = (-3.0, 10.0)
    offset_error_s: float = 10.0
    montage: str = "bipolar"
    version: int = GENERATOR_VERSION

    def rate(self, kind: str) -> float:
        """Events of ``kind`` per hour, ``artifacts`` included."""
        return dict(self.rates).get(kind, 0.0) * self.artifacts

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["rates"] = dict(self.rates)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> GenerationParams:
        d = dict(d)
        return resolve(d.pop("preset"), version=d.pop("version", GENERATOR_VERSION), **d)


_REALISTIC_RATES = {
    "blink": 600.0, "eye_movement": 120.0, "slow_eye_movement": 60.0, "muscle": 60.0,
    "chewing": 6.0, "movement": 4.0, "pop": 18.0, "bad_electrode": 0.6,
    "rhythmic_burst": 20.0, "interictal_spike": 40.0, "interictal_run": 10.0,
}
_EASY_RATES = {
    "blink": 600.0, "eye_movement": 120.0, "slow_eye_movement": 0.0, "muscle": 60.0,
    "chewing": 9.0, "movement": 0.0, "pop": 18.0, "bad_electrode": 0.0,
    "rhythmic_burst": 24.0, "interictal_spike": 48.0, "interictal_run": 15.0,
}

#: Preset name -> the values it sets (the rest are :class:`GenerationParams` defaults).
PRESETS: dict[str, dict] = {
    "realistic": {"rates": _REALISTIC_RATES},
    "easy": {
        "n_recordings": (2, 2), "hours": None, "minutes": 12.0, "seizure_free_recordings": 0,
        "seizure_s": (10.0, 120.0), "seizure_median_s": (25.0, 60.0), "ictal_gain": (3.5, 6.5),
        "morphologies": ("electrodecremental",), "propagation": 0.0, "ictal_emg": 0.0,
        "sleep": (0.0, 0.0), "rates": _EASY_RATES, "onset_error_s": (0.0, 0.0), "offset_error_s": 0.0,
    },
}

#: Minimum distance between a true seizure and a file edge or another seizure (s).
MARGIN_S = 60


def _pair(name: str, value, kind=float) -> tuple:
    """``value`` as a (low, high) pair: one number means low == high."""
    if isinstance(value, str) or not hasattr(value, "__len__"):
        value = (value, value)
    if len(value) != 2:
        raise ValueError(f"{name} must be one number or a (min, max) pair, got {value!r}")
    try:
        lo, hi = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers, got {value!r}") from None
    if kind is int and any(float(v) != int(float(v)) for v in value):
        raise ValueError(f"{name} must hold whole numbers, got {value!r}")
    if lo > hi:
        raise ValueError(f"{name} must be min <= max, got {lo:g}..{hi:g}")
    return lo, hi


def resolve(preset: str = "realistic", **knobs) -> GenerationParams:
    """The :class:`GenerationParams` of ``preset`` with ``knobs`` replacing its values (None keeps
    the preset's). Raises ValueError with one sentence naming the first bad knob."""
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic corpus preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(GenerationParams)} - {"preset"}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise ValueError(f"unknown synthetic corpus option {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    values = {**PRESETS[preset], **{k: v for k, v in knobs.items() if v is not None}}
    if knobs.get("hours") is not None and knobs.get("minutes") is None:
        values["minutes"] = None  # hours asked for: they replace the preset's recording length
    rates = dict(PRESETS[preset]["rates"])
    for kind, rate in dict(values.get("rates") or {}).items():
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown artifact kind {kind!r} in rates; known: {', '.join(EVENT_KINDS)}")
        try:
            rates[kind] = float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"rate of {kind} must be a number of events per hour, got {rate!r}") from None
        if rates[kind] < 0:
            raise ValueError(f"rate of {kind} must be >= 0 events per hour, got {rate!r}")
    values["rates"] = tuple(sorted(rates.items()))
    p = GenerationParams(preset=preset, **values)
    p = dataclasses.replace(
        p, n_patients=_int("n_patients", p.n_patients), seed=_int("seed", p.seed),
        n_recordings=_pair("n_recordings", p.n_recordings, int),
        hours=None if p.hours is None else _pair("hours", p.hours),
        minutes=None if p.minutes is None else float(p.minutes),
        seizures_per_patient=_pair("seizures_per_patient", p.seizures_per_patient, int),
        seizure_free_recordings=_int("seizure_free_recordings", p.seizure_free_recordings),
        seizure_s=_pair("seizure_s", p.seizure_s), seizure_median_s=_pair("seizure_median_s", p.seizure_median_s),
        ictal_gain=_pair("ictal_gain", p.ictal_gain),
        morphologies=tuple([p.morphologies] if isinstance(p.morphologies, str) else p.morphologies),
        propagation=float(p.propagation), ictal_emg=float(p.ictal_emg), sleep=_pair("sleep", p.sleep),
        artifacts=float(p.artifacts), onset_error_s=_pair("onset_error_s", p.onset_error_s),
        offset_error_s=float(p.offset_error_s), montage=str(p.montage), version=int(p.version),
    )
    _validate(p)
    return p


def _int(name: str, value) -> int:
    try:
        if float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def _validate(p: GenerationParams) -> None:
    if p.montage not in ("bipolar", "referential"):
        raise ValueError(f"montage must be 'bipolar' or 'referential', got {p.montage!r}")
    lo_rec, hi_rec = p.n_recordings
    if p.n_patients < 1 or p.n_patients > 98:
        raise ValueError(f"n_patients must be 1..98 (the chbNN names), got {p.n_patients}")
    if lo_rec < 1 or hi_rec > 99:
        raise ValueError(f"n_recordings must be 1..99 per patient (chbNN_MM), got {lo_rec}..{hi_rec}")
    if p.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {p.seed}")
    if p.minutes is None and p.hours is None:
        raise ValueError("give hours (per patient) or minutes (per recording)")
    if p.minutes is not None and not 0 < p.minutes <= 24 * 60:
        raise ValueError(f"minutes per recording must be in (0, 1440], got {p.minutes:g}")
    if p.minutes is None and p.hours[0] <= 0:
        raise ValueError(f"hours per patient must be > 0, got {p.hours[0]:g}..{p.hours[1]:g}")
    lo, hi = p.seizures_per_patient
    if not 1 <= lo <= hi:
        raise ValueError(f"seizures per patient must be 1 <= min <= max, got {lo}..{hi}")
    if p.seizure_free_recordings < 0:
        raise ValueError(f"seizure_free_recordings must be >= 0, got {p.seizure_free_recordings}")
    if p.seizure_s[0] < 1.0 or p.seizure_s[1] > 600.0:
        raise ValueError(f"seizure_s must lie in 1..600 s, got {p.seizure_s[0]:g}..{p.seizure_s[1]:g}")
    if p.seizure_median_s[0] <= 0:
        raise ValueError(f"seizure_median_s must be > 0, got {p.seizure_median_s[0]:g}")
    if p.ictal_gain[0] <= 0 or p.ictal_gain[1] > 20:
        raise ValueError(f"ictal_gain must lie in (0, 20], got {p.ictal_gain[0]:g}..{p.ictal_gain[1]:g}")
    if not p.morphologies or any(m not in MORPHOLOGIES for m in p.morphologies):
        raise ValueError(f"morphologies must be among {', '.join(MORPHOLOGIES)}, "
                         f"got {', '.join(p.morphologies) or 'none'}")
    for name in ("propagation", "ictal_emg"):
        if not 0.0 <= getattr(p, name) <= 1.0:
            raise ValueError(f"{name} is a share of seizures in [0, 1], got {getattr(p, name):g}")
    if p.sleep[0] < 0.0 or p.sleep[1] > 0.9:
        raise ValueError(f"sleep is a share of time in [0, 0.9], got {p.sleep[0]:g}..{p.sleep[1]:g}")
    if p.artifacts < 0:
        raise ValueError(f"artifacts scale must be >= 0, got {p.artifacts:g}")
    if p.onset_error_s[0] < -30 or p.onset_error_s[1] > 30:
        raise ValueError(f"onset_error_s must lie in -30..30 s, got {p.onset_error_s[0]:g}..{p.onset_error_s[1]:g}")
    if not 0 <= p.offset_error_s <= 30:
        raise ValueError(f"offset_error_s must lie in 0..30 s, got {p.offset_error_s:g}")
    shortest = p.seizure_s[0] + 2 * MARGIN_S
    if p.minutes is not None and p.minutes * 60.0 * 0.85 < shortest:
        need = shortest / 60.0 / 0.85
        raise ValueError(f"minutes {p.minutes:g} is too short for a seizure with {MARGIN_S} s margins on both "
                         f"sides: use at least {int(need * 10 + 0.999) / 10:g}")
    if p.minutes is None and p.hours[0] * 3600.0 / hi_rec * 0.7 < shortest:
        raise ValueError(f"hours {p.hours[0]:g} over up to {hi_rec} recordings leaves recordings too short for a "
                         f"seizure with {MARGIN_S} s margins on both sides: raise hours or lower n_recordings")
