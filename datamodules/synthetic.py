"""Synthetic CHB-MIT-shaped corpus: the offline default and the test bed of the framework.

``generate_corpus(out)`` writes a folder laid out exactly like the PhysioNet CHB-MIT Scalp EEG
Database (Shoeb 2009; Goldberger et al. 2000): ``chbNN/chbNN_MM.edf`` (plain EDF, 256 Hz,
1 s data records, the 23-channel bipolar montage with the duplicated ``T8-P8``, physical range
-800..800 uV on 12-bit digital values), ``chbNN/chbNN-summary.txt``, ``SUBJECT-INFO``,
``RECORDS`` and ``RECORDS-WITH-SEIZURES``, plus ``soz.tsv`` with each patient's true seizure
onset zone. The annotated seizures are the simulated ones, to the second: exact ground truth
for detection (LSN) and localization (SZLoc, ECAM maps).

The signals are simulated per 10-20 electrode (referential) and then montaged, so that
what a clinician sees in the double banana follows from the physiology:

* background: 1/f^beta noise sources at the electrodes mixed by a Gaussian distance kernel
  (volume conduction: neighbours correlate, so bipolar channels are smaller than referential
  ones), a slowly varying vigilance envelope, a posterior alpha rhythm that waxes and wanes
  and is blocked when the eyes are open, amplifier noise and, in some patients, 60 Hz;
* artifacts: eye blinks and lateral eye movements (frontal, eyes open only), muscle bursts
  (20-70 Hz, temporal), chewing, electrode pops (step and exponential decay on one electrode,
  the only thing that may saturate the amplifier);
* hard negatives, kept 20 s before and 40 s after seizures: 1-4 s rhythmic bursts (2-8 Hz,
  2.5-6x the background, regional anywhere, the onset zone included, or bilateral), interictal
  spike-and-wave complexes and 1-4 s runs at the onset zone: none is a seizure, so power alone
  does not detect seizures;
* seizures: low-voltage fast activity (15-25 Hz, about background amplitude, 2-6 s) with
  attenuation of the background at the onset zone, then rhythmic discharges whose frequency
  falls (6.5-9 Hz -> 2.5-4 Hz) while their amplitude grows to a plateau of 3.5-6.5x the
  background RMS in the strongest channel (capped so that no bipolar discharge exceeds
  520 uV) and their morphology turns from sinusoidal to spike-and-wave; spatial weights graded
  with distance from the onset zone (onset-zone electrodes unequal, so bipolar pairs do not
  cancel; neighbours recruited unevenly), spread with a delay that grows with distance (1-3
  cm/s), in 40 % of seizures >= 30 s a late spread to the homologous region of the other
  hemisphere, heavy-tailed durations (lognormal, 10-120 s), post-ictal delta slowing and
  suppression that decay after the offset. Each patient has its own onset zone (one of
  :data:`SOZ_CATALOG`, 2-3 neighbouring electrodes with a region of ``montage.REGIONS``),
  amplitude, frequencies and morphology; its seizures are stereotyped with small variations.

Generation is deterministic per seed (same bytes), and patient ``k`` of a corpus does not depend
on how many patients are generated. A hidden ``.synthetic.json`` keeps the full truth
(:class:`CorpusTruth`, including the artifact and hard-negative events) so that a corpus built
with the same parameters is reused instead of rebuilt.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as _fft

from datamodules.recording import DatasetError
from eeg.head import electrode_positions
from eeg.montage import CHBMIT_23, REGIONS

#: Bump when the bytes written for a given set of parameters change (invalidates reuse).
GENERATOR_VERSION = 1

#: Electrodes simulated (referential), the ones the 23 CHB-MIT bipolar labels touch.
ELECTRODES: tuple[str, ...] = (
    "FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T7", "C3", "CZ", "C4", "T8",
    "P7", "P3", "PZ", "P4", "P8", "O1", "O2", "FT9", "FT10",
)
SFREQ = 256
PHYSICAL_RANGE_UV = (-800.0, 800.0)
DIGITAL_RANGE = (-2048, 2047)
#: Physical value of one digital step (the quantization of the real files): 1600/4095 uV.
QUANTUM_UV = (PHYSICAL_RANGE_UV[1] - PHYSICAL_RANGE_UV[0]) / (DIGITAL_RANGE[1] - DIGITAL_RANGE[0])
#: Minimum distance between a seizure and a file edge or another seizure.
MARGIN_S = 60
SEIZURE_DURATION_RANGE_S = (10, 120)
MAX_SEIZURES_PER_RECORDING = 3
#: Recording lengths are ``minutes`` times a factor drawn in this range (10.2-15 min for 12).
_LENGTH_FACTOR = (0.85, 1.25)
#: Largest bipolar ictal discharge (uV), leaving room in the +-800 uV range for what adds to it.
_ICTAL_PEAK_UV = 520.0
#: Hard negatives stay this far from seizures so that the ground truth stays clean.
_HARD_NEGATIVE_GUARD_S = (20.0, 40.0)

#: Onset zones a patient may get: (region name from ``montage.REGIONS``, electrodes with the
#: electrode of maximal field first). Focal sets of 2-3 neighbouring electrodes.
SOZ_CATALOG: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("left temporal", ("T7", "F7", "FT9")),
    ("right frontal", ("F4", "FP2", "F8")),
    ("right temporal", ("T8", "P8", "FT10")),
    ("left frontal", ("F3", "FP1", "F7")),
    ("right parietal", ("P4", "P8")),
    ("left central", ("C3", "F3", "P3")),
    ("right temporal", ("F8", "T8", "FT10")),
    ("left parietal", ("P3", "P7")),
    ("midline", ("CZ", "PZ", "FZ")),
    ("left occipital", ("O1", "P7", "P3")),
    ("right central", ("C4", "F4", "P4")),
    ("left temporal", ("P7", "T7")),
)
assert all(set(e) & set(REGIONS[r]) for r, e in SOZ_CATALOG)

#: Mean events per minute (scaled per patient, and by ``artifacts``).
_RATES_PER_MIN = {
    "blink": 10.0,            # eyes-open periods only
    "eye_movement": 2.0,      # eyes-open periods only
    "muscle": 1.0,
    "chewing": 0.15,
    "pop": 0.3,
    "rhythmic_burst": 0.4,    # hard negative
    "interictal_spike": 0.8,  # hard negative (isolated spike-and-wave at the onset zone)
    "interictal_run": 0.25,   # hard negative (1-4 s run of spike-and-wave at the onset zone)
}
_HARD_NEGATIVES = ("rhythmic_burst", "interictal_spike", "interictal_run")


# --------------------------------------------------------------------------------------------
# Truth records
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeizureTruth:
    """One simulated seizure, as annotated (whole seconds from the file start) and as built.

    Attributes
    ----------
    onset_s, offset_s : int
        Annotated onset and offset: the first sample of low-voltage fast activity and the end of
        the rhythmic discharges.
    lvfa_s : float
        Duration of the low-voltage fast activity that opens the seizure.
    lvfa_hz, freq_start_hz, freq_end_hz : float
        Frequency of the fast activity, of the first and of the last rhythmic discharges.
    gain : float
        Design plateau ratio of ictal to background RMS in the strongest onset-zone channel.
    spread : float
        Weight (relative to the strongest onset-zone electrode) reached by the nearest non-SOZ
        electrodes.
    contralateral_s : float or None
        Seconds after onset at which the homologous region of the other hemisphere joins (None:
        the seizure stays on one side).
    """

    onset_s: int
    offset_s: int
    lvfa_s: float
    lvfa_hz: float
    freq_start_hz: float
    freq_end_hz: float
    gain: float
    spread: float
    contralateral_s: float | None = None

    @property
    def duration_s(self) -> int:
        return self.offset_s - self.onset_s


@dataclass(frozen=True)
class EventTruth:
    """A non-seizure event written into a recording (artifact or hard negative)."""

    kind: str
    onset_s: float
    duration_s: float
    electrodes: tuple[str, ...]

    @property
    def hard_negative(self) -> bool:
        return self.kind in _HARD_NEGATIVES


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

    @property
    def seizures(self) -> tuple[tuple[float, float], ...]:
        """``((onset_s, offset_s), ...)`` in the form :class:`~datamodules.recording.Recording` uses."""
        return tuple((float(s.onset_s), float(s.offset_s)) for s in self.seizure_details)


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

    @property
    def n_seizures(self) -> int:
        return sum(len(r.seizure_details) for r in self.recordings)


@dataclass(frozen=True)
class GenerationParams:
    """Everything that changes the bytes of a corpus (with :data:`GENERATOR_VERSION`)."""

    n_patients: int = 6
    n_recordings: int = 2
    minutes: float = 12.0
    seed: int = 0
    seizures_per_patient: tuple[int, int] = (2, 4)
    artifacts: float = 1.0
    version: int = GENERATOR_VERSION


@dataclass(frozen=True)
class CorpusTruth:
    """What :func:`generate_corpus` wrote: per patient the onset zone, per recording the seizures."""

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

    def patient(self, patient: str) -> PatientTruth:
        for p in self.patients:
            if p.patient == patient:
                return p
        raise KeyError(f"no patient {patient!r} in the synthetic corpus at {self.root}")

    def seizures(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """``{recording_id: ((onset_s, offset_s), ...)}`` for every recording (empty when none)."""
        return {r.recording_id: r.seizures for r in self.recordings}

    def soz(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """``{patient: (electrodes, region)}``, the content of ``soz.tsv``."""
        return {p.patient: (p.soz, p.region) for p in self.patients}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CorpusTruth:
        def seizure(s):
            return SeizureTruth(**s)

        def event(e):
            return EventTruth(e["kind"], float(e["onset_s"]), float(e["duration_s"]), tuple(e["electrodes"]))

        def recording(r):
            return RecordingTruth(r["recording_id"], r["path"], int(r["duration_s"]), r["start_time"],
                                  r["end_time"], tuple(seizure(s) for s in r["seizure_details"]),
                                  tuple(event(e) for e in r["events"]))

        def patient(p):
            return PatientTruth(p["patient"], tuple(p["soz"]), p["region"], tuple(p["soz_weights"]),
                                p["gender"], float(p["age"]), tuple(recording(r) for r in p["recordings"]))

        prm = dict(d["params"])
        prm["seizures_per_patient"] = tuple(prm["seizures_per_patient"])
        return cls(str(d["root"]), GenerationParams(**prm), tuple(patient(p) for p in d["patients"]),
                   float(d.get("sfreq", SFREQ)))


TRUTH_FILE = ".synthetic.json"


def load_truth(root: str | os.PathLike) -> CorpusTruth:
    """The :class:`CorpusTruth` of a corpus written by :func:`generate_corpus` (from its
    hidden ``.synthetic.json``); ``root`` in the result is the folder given here."""
    path = Path(root) / TRUTH_FILE
    try:
        d = json.loads(path.read_text())
        truth = CorpusTruth.from_dict(d)
    except FileNotFoundError:
        raise DatasetError(f"{path}: not found; {root} is not a synthetic corpus written by "
                           "datamodules.synthetic.generate_corpus") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: unreadable synthetic corpus truth ({e})") from None
    return dataclasses.replace(truth, root=str(root))


# --------------------------------------------------------------------------------------------
# Per-patient physiology
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Physiology:
    """Per-patient parameters of the simulation (drawn once per patient)."""

    bg_uV: float  # referential RMS of the 1/f background
    beta: float  # spectral exponent of the background (power ~ 1/f^beta)
    mix_cm: float  # width of the volume-conduction kernel
    alpha_hz: float
    alpha_uV: float
    eyes_closed_fraction: float
    line_uV: float  # 60 Hz amplitude (0 for most patients)
    electrode_gain: tuple[float, ...]  # impedance / skull differences
    lvfa_hz: float
    freq_start_hz: float
    freq_end_hz: float
    gain: float
    spikiness: float  # 0 sinusoidal .. 1 spike-and-wave at the end of a seizure
    spike_ms: float  # width (sigma) of the spike
    spread: float
    spread_cm: float
    spread_speed_cm_s: float
    post_tau_s: float
    post_gain: float
    duration_median_s: float
    rate_scale: float


def _draw_physiology(rng: np.random.Generator) -> _Physiology:
    return _Physiology(
        bg_uV=float(rng.uniform(18.0, 30.0)),
        beta=float(rng.uniform(1.7, 2.2)),
        mix_cm=float(rng.uniform(3.5, 4.5)),
        alpha_hz=float(rng.uniform(8.0, 10.5)),  # paediatric posterior rhythm
        alpha_uV=float(rng.uniform(15.0, 35.0)),
        eyes_closed_fraction=float(rng.uniform(0.3, 0.6)),
        line_uV=float(rng.uniform(1.0, 4.0)) if rng.random() < 0.4 else 0.0,
        electrode_gain=tuple(float(g) for g in np.exp(0.1 * rng.standard_normal(len(ELECTRODES)))),
        lvfa_hz=float(rng.uniform(15.0, 25.0)),
        freq_start_hz=float(rng.uniform(6.5, 9.0)),
        freq_end_hz=float(rng.uniform(2.5, 4.0)),
        gain=float(rng.uniform(3.5, 6.5)),
        spikiness=float(rng.uniform(0.4, 1.0)),
        spike_ms=float(rng.uniform(10.0, 18.0)),
        spread=float(rng.uniform(0.25, 0.6)),
        spread_cm=float(rng.uniform(5.0, 8.0)),
        spread_speed_cm_s=float(rng.uniform(1.0, 3.0)),
        post_tau_s=float(rng.uniform(15.0, 45.0)),
        post_gain=float(rng.uniform(1.0, 2.5)),
        duration_median_s=float(rng.uniform(25.0, 60.0)),
        rate_scale=float(np.exp(0.3 * rng.standard_normal())),
    )


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # A seed sequence per (seed, patient, recording, ...) keeps patient k the same whatever the
    # number of patients, and never depends on Python's randomized str hashing.
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def _subject_name(k: int) -> str:
    # chb21 is chb01 recorded later in the real database, and sources merge them into one
    # patient: skip that number so that every synthetic subject is its own patient.
    n = k + 1 if k + 1 < 21 else k + 2
    return f"chb{n:02d}"


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------
class _Geometry:
    """Electrode positions (cm), distances, and the bipolar matrix of the 23 CHB-MIT labels."""

    def __init__(self):
        pos = electrode_positions()
        self.pos = np.array([pos[e] for e in ELECTRODES]) * 100.0
        self.dist = np.linalg.norm(self.pos[:, None] - self.pos[None], axis=-1)
        self.index = {e: i for i, e in enumerate(ELECTRODES)}
        self.bipolar = np.zeros((len(CHBMIT_23), len(ELECTRODES)))
        for k, label in enumerate(CHBMIT_23):
            a, b = label.split("-")
            self.bipolar[k, self.index[a]] = 1.0
            self.bipolar[k, self.index[b]] = -1.0
        self.pairs = [tuple(self.index[x] for x in lab.split("-")) for lab in CHBMIT_23]

    def weights_near(self, electrodes, sigma_cm: float) -> np.ndarray:
        """Gaussian fall-off with the distance to the nearest of ``electrodes``."""
        idx = [self.index[e] for e in electrodes]
        d = self.dist[:, idx].min(axis=1)
        return np.exp(-0.5 * (d / sigma_cm) ** 2)

    def max_bipolar(self, w: np.ndarray) -> float:
        """Largest |w_a - w_b| over the 23 bipolar channels: how much of a field shows in them."""
        return float(max(abs(w[a] - w[b]) for a, b in self.pairs))

    def mixing(self, sigma_cm: float) -> np.ndarray:
        """Volume conduction: each electrode sees the sources near it (rows of unit norm)."""
        k = np.exp(-0.5 * (self.dist / sigma_cm) ** 2)
        return k / np.linalg.norm(k, axis=1, keepdims=True)


_GEOMETRY: _Geometry | None = None


def _geometry() -> _Geometry:
    global _GEOMETRY
    if _GEOMETRY is None:
        _GEOMETRY = _Geometry()
    return _GEOMETRY


# --------------------------------------------------------------------------------------------
# Signal primitives
# --------------------------------------------------------------------------------------------
def _shaped_noise(rng: np.random.Generator, n_src: int, n: int, amplitude: Callable) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``amplitude(f)``, unit variance per row."""
    m = _fft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(m, 1.0 / SFREQ)
    amp = amplitude(f).astype(np.float32)
    amp[0] = 0.0
    # single precision: half the time of double, and far below the 0.39 uV quantization
    spec = np.empty((n_src, f.size), dtype=np.complex64)
    spec.real = rng.standard_normal((n_src, f.size), dtype=np.float32)
    spec.imag = rng.standard_normal((n_src, f.size), dtype=np.float32)
    spec *= amp
    x = _fft.irfft(spec, m, axis=-1)[:, :n].astype(np.float64)
    x /= np.maximum(x.std(axis=-1, keepdims=True), 1e-12)
    return x


def _narrowband(rng, n_src, n, f0, bw):
    return _shaped_noise(rng, n_src, n, lambda f: np.exp(-0.5 * ((f - f0) / bw) ** 2))


def _smooth_noise(rng: np.random.Generator, n: int, corr_s: float) -> np.ndarray:
    """Slow unit-variance fluctuation (linear interpolation of knots ``corr_s`` apart)."""
    step = max(1, int(corr_s * SFREQ))
    knots = rng.standard_normal(n // step + 2)
    return np.interp(np.arange(n) / step, np.arange(knots.size), knots)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _tukey(n: int, taper: float = 0.3) -> np.ndarray:
    """Tukey (tapered cosine) window: flat middle, cosine ramps over ``taper`` of its length
    (scipy.signal's would cost seconds of import for a one-liner)."""
    w = np.ones(n)
    ramp = int(taper * n / 2)
    if ramp > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        w[:ramp] = edge
        w[n - ramp:] = edge[::-1]
    return w


def _add(x: np.ndarray, start: int, weights: np.ndarray, wave: np.ndarray) -> None:
    """``x[:, start:start+len(wave)] += weights (outer) wave``, cropped at the recording edges."""
    n = x.shape[1]
    a, b = max(start, 0), min(start + wave.shape[-1], n)
    if b <= a:
        return
    seg = wave[..., a - start:b - start]
    if seg.ndim == 1:
        x[:, a:b] += weights[:, None] * seg[None, :]
    else:
        x[:, a:b] += weights[:, None] * seg


def _discharge(phase: np.ndarray, freq: np.ndarray, spikiness: np.ndarray, spike_ms: float) -> np.ndarray:
    """Periodic epileptiform discharge of peak about 1: a sinusoid that turns into a sharp
    surface-negative spike followed by a negative slow wave as ``spikiness`` goes 0 -> 1."""
    p = np.mod(phase + np.pi, 2 * np.pi) - np.pi  # 0 at the spike
    tc = p / (2 * np.pi * freq)  # seconds from the spike peak
    s = spike_ms / 1000.0
    spike = -np.exp(-0.5 * (tc / s) ** 2)
    slow = -0.55 * np.exp(-0.5 * ((p - 1.9) / 0.9) ** 2)
    # subtract each component's mean over a cycle so the discharge adds no DC
    mean = -(s * freq * np.sqrt(2 * np.pi)) - 0.55 * 0.9 * np.sqrt(2 * np.pi) / (2 * np.pi)
    sw = spike + slow - mean
    return (1.0 - spikiness) * -np.cos(phase) + spikiness * sw


# --------------------------------------------------------------------------------------------
# Seizure planning
# --------------------------------------------------------------------------------------------
def _capacity(duration_s: int) -> int:
    lo = SEIZURE_DURATION_RANGE_S[0]
    return int(min(MAX_SEIZURES_PER_RECORDING, max(0, (duration_s - MARGIN_S) // (lo + MARGIN_S))))


def _plan_seizures(rng, phys: _Physiology, durations: list[int], per_patient: tuple[int, int]):
    """Onsets and offsets (whole seconds) per recording: no overlap, >= MARGIN_S from file
    edges and from each other, at most 3 per recording, lognormal durations in 10-120 s."""
    caps = [_capacity(t) for t in durations]
    if sum(caps) == 0:
        need = SEIZURE_DURATION_RANGE_S[0] + 2 * MARGIN_S
        raise ValueError(f"recordings of {max(durations)} s cannot hold a seizure with {MARGIN_S} s "
                         f"margins: recordings must last at least {need} s (raise minutes)")
    n = int(rng.integers(per_patient[0], per_patient[1] + 1))
    n = max(1, min(n, sum(caps)))
    counts = [0] * len(durations)
    for _ in range(n):
        open_ = [i for i in range(len(durations)) if counts[i] < caps[i]]
        counts[int(rng.choice(open_))] += 1
    lo, hi = SEIZURE_DURATION_RANGE_S
    plans = []
    for t, k in zip(durations, counts):
        if k == 0:
            plans.append([])
            continue
        d = np.clip(np.round(phys.duration_median_s * np.exp(0.6 * rng.standard_normal(k))), lo, hi)
        d = d.astype(int)
        room = t - (k + 1) * MARGIN_S
        while d.sum() > room:  # trim the longest to fit, never below the minimum (room >= k*lo)
            i = int(np.argmax(d))
            d[i] -= min(int(d.sum() - room), int(d[i] - lo))
        slack = int(room - d.sum())
        share = np.floor(rng.dirichlet(np.ones(k + 1)) * slack).astype(int)
        gaps = MARGIN_S + share
        onsets, t0 = [], 0
        for i in range(k):
            t0 += int(gaps[i])
            onsets.append((t0, t0 + int(d[i])))
            t0 += int(d[i])
        plans.append(onsets)
    return plans


# --------------------------------------------------------------------------------------------
# Recording synthesis
# --------------------------------------------------------------------------------------------
class _PatientModel:
    """The fixed spatial patterns of one patient (onset zone, spread, alpha, blinks)."""

    def __init__(self, phys: _Physiology, soz: tuple[str, ...], soz_weights: tuple[float, ...]):
        g = _geometry()
        self.phys = phys
        self.soz = soz
        self.w_soz = np.zeros(len(ELECTRODES))
        for e, w in zip(soz, soz_weights):
            self.w_soz[g.index[e]] = w
        idx = [g.index[e] for e in soz]
        self.dist_soz = g.dist[:, idx].min(axis=1)
        self.mixing = g.mixing(phys.mix_cm)
        cov = self.mixing @ self.mixing.T
        bip_var = [cov[a, a] + cov[b, b] - 2 * cov[a, b] for a, b in g.pairs[:18]]
        #: RMS of the 1/f background in a double-banana channel (the reference for "x background")
        self.bg_bipolar_uV = phys.bg_uV * float(np.mean(np.sqrt(bip_var)))
        self.alpha_left = np.exp(-0.5 * (g.dist[:, g.index["O1"]] / 4.5) ** 2)
        self.alpha_right = np.exp(-0.5 * (g.dist[:, g.index["O2"]] / 4.5) ** 2)
        # eye blinks: the cornea-positive eyes sit in front of FP1/FP2
        self.blink = np.exp(-np.minimum(g.dist[:, g.index["FP1"]], g.dist[:, g.index["FP2"]]) / 3.5)
        left = np.exp(-g.dist[:, g.index["F7"]] / 4.0)
        right = np.exp(-g.dist[:, g.index["F8"]] / 4.0)
        self.eye_lateral = left - right
        near = np.exp(-0.5 * (self.dist_soz / 4.0) ** 2) * (self.w_soz == 0)
        self.interictal = self.w_soz + 0.3 * phys.spread * near
        # homologous electrodes of the other hemisphere (mirror x), for bilateral spread
        mirrored = g.pos[idx] * np.array([-1.0, 1.0, 1.0])
        self.dist_mirror = np.linalg.norm(g.pos[:, None] - mirrored[None], axis=-1).min(axis=1)
        self.midline = bool(np.all(np.abs(g.pos[idx, 0]) < 1.0))

    def seizure_weights(self, rng, spread: float, spread_cm: float) -> np.ndarray:
        # neighbours are recruited unevenly (each is a source of its own, not only volume
        # conduction, which would cancel in the bipolar pairs between them)
        outside = spread * np.exp(-0.5 * (self.dist_soz / spread_cm) ** 2)
        outside = np.minimum(outside * np.exp(0.35 * rng.standard_normal(outside.size)), 0.6)
        return np.where(self.w_soz > 0, self.w_soz, outside)


def _eyes_closed(rng, n: int, fraction: float) -> np.ndarray:
    """0/1 eyes-closed state as alternating dwell times, smoothed over 0.4 s."""
    state = np.zeros(n)
    t, closed = 0, bool(rng.random() < fraction)
    while t < n:
        mean = 25.0 * (fraction if closed else 1.0 - fraction) / 0.5
        dwell = int(max(3.0, rng.exponential(mean)) * SFREQ)
        if closed:
            state[t:t + dwell] = 1.0
        t += dwell
        closed = not closed
    k = int(0.4 * SFREQ)
    return np.convolve(state, np.ones(k) / k, mode="same")


def _background(rng, model: _PatientModel, n: int, closed: np.ndarray) -> np.ndarray:
    phys = model.phys
    ne = len(ELECTRODES)

    def pink(f):
        # 1/f^beta power, high-passed at 0.4 Hz, rolled off above 45 Hz
        return (f ** 2 + 1.0) ** (-phys.beta / 4) * (f / np.sqrt(f ** 2 + 0.16)) / (1.0 + (f / 45.0) ** 4)

    src = _shaped_noise(rng, ne, n, pink)
    gain = phys.bg_uV * np.asarray(phys.electrode_gain)
    x = (model.mixing * gain[:, None]) @ src
    x *= np.exp(0.15 * _smooth_noise(rng, n, 20.0))[None, :]  # vigilance drifts
    # posterior alpha: one shared rhythm with some independence between hemispheres; blocked
    # (not abolished) when the eyes are open
    a = _narrowband(rng, 3, n, phys.alpha_hz, 0.45)
    a *= (phys.alpha_uV * (0.2 + 0.8 * closed))[None, :]
    left, right = model.alpha_left, model.alpha_right
    x += np.stack([left + right, 0.5 * left, 0.5 * right], axis=1) / np.sqrt(1.25) @ a
    x += rng.standard_normal((ne, n), dtype=np.float32)  # amplifier noise, 1 uV RMS
    if phys.line_uV > 0:
        amp = phys.line_uV * rng.uniform(0.0, 1.0, ne)
        ph = rng.uniform(0, 2 * np.pi, ne)
        wt = 2 * np.pi * 60.0 * np.arange(n) / SFREQ
        x += np.stack([amp * np.cos(ph), amp * np.sin(ph)], axis=1) @ np.stack([np.sin(wt), np.cos(wt)])
    return x


def _add_seizure(rng, x: np.ndarray, model: _PatientModel, onset: int, offset: int,
                 next_onset: int | None) -> SeizureTruth:
    """Write one seizure (and its post-ictal period) into electrode signals ``x`` (in place)."""
    g = _geometry()
    phys = model.phys
    n_total = x.shape[1]
    dur = offset - onset
    jit = lambda s: float(np.exp(s * rng.standard_normal()))  # noqa: E731  per-seizure variation
    f_start = phys.freq_start_hz * jit(0.06)
    f_end = min(phys.freq_end_hz * jit(0.08), 0.6 * f_start)
    lvfa_hz = float(np.clip(phys.lvfa_hz * jit(0.05), 15.0, 25.0))
    lvfa_s = float(min(rng.uniform(2.0, 6.0), 0.25 * dur))
    spread = float(np.clip(phys.spread * jit(0.25), 0.1, 0.7))
    w = model.seizure_weights(rng, spread, phys.spread_cm * jit(0.1))
    w_soz = model.w_soz
    # delays: the onset zone starts together (within 1.5 s); the rest joins after a time that
    # grows with its distance from the zone
    delay = np.where(w_soz > 0, rng.uniform(0.0, 1.5, w.size) * (w_soz < 1.0),
                     lvfa_s + model.dist_soz / (phys.spread_speed_cm_s * jit(0.2)))
    lag = np.round((np.where(w_soz > 0, rng.uniform(0, 0.015, w.size), 0.004 * model.dist_soz))
                   * SFREQ).astype(int)  # per-discharge propagation (ms), decorrelates neighbours
    gain = float(phys.gain * jit(0.12))
    delta = g.max_bipolar(w)
    crest = 0.45  # ~ RMS / peak of the discharge
    # peak of the strongest bipolar channel = gain x background / crest; keep it within
    # range with room for background and artifacts
    peak_bip = min(gain * model.bg_bipolar_uV / crest, 400.0)
    gain = peak_bip * crest / model.bg_bipolar_uV
    amp = peak_bip / delta

    n = dur * SFREQ
    pad = int(lag.max()) + 1
    t = (np.arange(n + pad) - pad) / SFREQ  # time from onset, padded for the lags
    tr = t - lvfa_s
    rhythm_len = max(dur - lvfa_s, 1.0)
    u = np.clip(tr / rhythm_len, 0.0, 1.0)
    freq = f_end + (f_start - f_end) * np.exp(-3.0 * u)
    freq *= 1.0 + 0.07 * _smooth_noise(rng, t.size, 0.4)  # discharges are not a metronome
    phase = 2 * np.pi * np.cumsum(freq) / SFREQ + rng.uniform(0, 2 * np.pi)
    spik = phys.spikiness * np.clip((f_start - freq) / (f_start - f_end), 0.0, 1.0) ** 0.7
    wave = _discharge(phase, freq, spik, phys.spike_ms)
    # a second harmonic whose phase drifts: sharply contoured, slowly changing waveforms
    wave += 0.3 * (1.0 - spik) * np.cos(2 * phase + 2.0 * _smooth_noise(rng, t.size, 1.5))
    grow = rng.uniform(0.25, 0.5) * rhythm_len
    end_ramp = min(2.0, 0.1 * dur)
    env = (0.25 + 0.75 * _smoothstep(tr / grow)) * _smoothstep((tr + 1.0) / 2.0)
    env *= _smoothstep((dur - t) / end_ramp) * (t >= 0)
    env *= np.clip(1.0 + 0.3 * _smooth_noise(rng, t.size, 0.25), 0.4, 1.6)  # cycle to cycle
    rhythm = amp * env * wave

    # low-voltage fast activity: about background amplitude in the onset-zone channels
    lv = _narrowband(rng, 1, t.size, lvfa_hz, 2.5)[0]
    lv_env = _smoothstep(t / 0.5) * _smoothstep((lvfa_s + 1.5 - t) / 1.5) * (t >= 0)
    lvfa = 1.0 * model.bg_bipolar_uV / max(g.max_bipolar(w_soz), 0.2) * lv_env * lv

    ts = np.arange(n) / SFREQ
    spread_w = w[:, None] * _smoothstep((ts[None, :] - delay[:, None]) / 2.0)
    # some longer seizures recruit the homologous region of the other hemisphere late
    contra = None
    if not model.midline and dur >= 30 and rng.random() < 0.4:
        contra = float(rng.uniform(0.3, 0.6) * dur)
        w_c = rng.uniform(0.25, 0.45) * np.exp(-0.5 * (model.dist_mirror / 4.0) ** 2) * (w_soz == 0)
        spread_w += w_c[:, None] * _smoothstep((ts[None, :] - contra) / 3.0)
    ictal = np.empty((w.size, n))
    for e in range(w.size):
        # each electrode's own slow amplitude fluctuation: bipolar channels are not scaled copies
        local = np.clip(1.0 + 0.15 * _smooth_noise(rng, n, 0.5), 0.6, 1.4)
        ictal[e] = spread_w[e] * local * rhythm[pad - lag[e]:pad - lag[e] + n] \
            + w_soz[e] * lvfa[pad - lag[e]:pad - lag[e] + n]
    # the jitters above may stack: keep the largest bipolar discharge within _ICTAL_PEAK_UV so
    # that background and artifacts on top never reach the amplifier's range
    top = float(np.abs(g.bipolar @ ictal).max())
    if top > _ICTAL_PEAK_UV:
        ictal *= _ICTAL_PEAK_UV / top
        gain *= _ICTAL_PEAK_UV / top

    # background attenuation (electrodecrement) at the onset zone during the seizure
    att = rng.uniform(0.4, 0.7)
    edge = _smoothstep(ts / 0.5) * _smoothstep((dur - ts) / 1.0)
    x[:, onset * SFREQ:offset * SFREQ] *= 1.0 - att * w_soz[:, None] * edge[None, :]
    x[:, onset * SFREQ:offset * SFREQ] += ictal

    # post-ictal: decaying delta slowing and suppression where the seizure was
    tau = phys.post_tau_s * jit(0.2)
    end = min(n_total, offset * SFREQ + int(4 * tau * SFREQ))
    if next_onset is not None:
        end = min(end, next_onset * SFREQ)
    m = end - offset * SFREQ
    if m > SFREQ:
        tp = np.arange(m) / SFREQ
        decay = np.exp(-tp / tau) * _smoothstep(tp / 1.0) * _smoothstep((m / SFREQ - tp) / 2.0)
        supp = np.exp(-tp / tau) * _smoothstep((m / SFREQ - tp) / 2.0)
        seg = x[:, offset * SFREQ:end]
        seg *= 1.0 - 0.5 * (w / w.max())[:, None] * supp[None, :]
        delta_wave = _shaped_noise(rng, 1, m, lambda f: np.exp(-0.5 * ((f - 1.2) / 0.6) ** 2))[0]
        post_amp = phys.post_gain * model.bg_bipolar_uV / max(delta, 0.2)
        seg += post_amp * w[:, None] * (decay * delta_wave)[None, :]

    return SeizureTruth(onset_s=int(onset), offset_s=int(offset), lvfa_s=round(lvfa_s, 3),
                        lvfa_hz=round(lvfa_hz, 3), freq_start_hz=round(f_start, 3),
                        freq_end_hz=round(float(f_end), 3), gain=round(gain, 3), spread=round(spread, 3),
                        contralateral_s=None if contra is None else round(contra, 3))


def _poisson_times(rng, rate_per_min: float, duration_s: float, allowed: Callable[[float, float], bool],
                   length: Callable[[], float]) -> list[tuple[float, float]]:
    k = rng.poisson(rate_per_min * duration_s / 60.0)
    out = []
    for t in np.sort(rng.uniform(0.0, duration_s, k)):
        d = length()
        if t + d < duration_s and allowed(float(t), d):
            out.append((float(t), float(d)))
    return out


def _add_events(rng, x: np.ndarray, model: _PatientModel, closed: np.ndarray,
                seizures: list[tuple[int, int]], scale: float) -> list[EventTruth]:
    """Artifacts and hard negatives, written into electrode signals ``x`` (in place)."""
    g = _geometry()
    phys = model.phys
    n = x.shape[1]
    T = n / SFREQ
    rate = {k: v * phys.rate_scale * scale for k, v in _RATES_PER_MIN.items()}
    events: list[EventTruth] = []
    names = np.array(ELECTRODES)

    def eyes_open(t, d):
        return closed[int(t * SFREQ)] < 0.5

    def anywhere(t, d):
        return True

    lo_guard, hi_guard = _HARD_NEGATIVE_GUARD_S

    def clear_of_seizures(t, d):
        return all(t + d < on - lo_guard or t > off + hi_guard for on, off in seizures)

    def record(kind, t, d, weights, thresh=0.3):
        w = np.abs(weights)
        els = tuple(str(e) for e in names[w >= thresh * w.max()])
        events.append(EventTruth(kind, round(t, 4), round(d, 4), els))

    # eye blinks: cornea-positive deflection at FP1/FP2, ~0.3-0.5 s
    for t, d in _poisson_times(rng, rate["blink"], T, eyes_open, lambda: rng.uniform(0.3, 0.5)):
        k = int(d * SFREQ)
        rise = int(k * 0.35)
        shape = np.concatenate([0.5 - 0.5 * np.cos(np.linspace(0, np.pi, rise)),
                                0.5 + 0.5 * np.cos(np.linspace(0, np.pi, k - rise))])
        amp = rng.uniform(100.0, 250.0)
        _add(x, int(t * SFREQ), model.blink, amp * shape)
        record("blink", t, d, model.blink)
    # lateral eye movements: opposite deflections at F7 and F8, held 0.5-2 s
    for t, d in _poisson_times(rng, rate["eye_movement"], T, eyes_open, lambda: rng.uniform(0.6, 2.0)):
        k = int(d * SFREQ)
        ramp = _smoothstep(np.arange(k) / (0.08 * SFREQ)) * _smoothstep((k - np.arange(k)) / (0.08 * SFREQ))
        amp = rng.uniform(30.0, 70.0) * rng.choice([-1.0, 1.0])
        _add(x, int(t * SFREQ), model.eye_lateral, amp * ramp)
        record("eye_movement", t, d, model.eye_lateral)
    # muscle: 20-70 Hz broadband, independent per electrode, temporal (sometimes frontal)
    sides = {
        "left": {"FT9": 1.0, "T7": 0.9, "F7": 0.7, "P7": 0.3},
        "right": {"FT10": 1.0, "T8": 0.9, "F8": 0.7, "P8": 0.3},
        "frontal": {"FP1": 0.8, "FP2": 0.8, "F7": 0.4, "F8": 0.4},
    }

    def muscle_weights(keys):
        w = np.zeros(len(ELECTRODES))
        for key in keys:
            for e, v in sides[key].items():
                w[g.index[e]] = max(w[g.index[e]], v)
        return w

    def emg(k):
        return _shaped_noise(rng, len(ELECTRODES), k,
                             lambda f: ((f > 20) & (f < 70)) * 1.0 + ((f >= 70) & (f < 100)) * 0.5)

    for t, d in _poisson_times(rng, rate["muscle"], T, anywhere, lambda: rng.uniform(0.5, 6.0)):
        k = int(d * SFREQ)
        choice = rng.choice(4)
        keys = [["left"], ["right"], ["left", "right"], ["frontal"]][choice]
        w = muscle_weights(keys)
        amp = rng.uniform(10.0, 40.0)
        _add(x, int(t * SFREQ), w, amp * emg(k) * _tukey(k, 0.4)[None, :])
        record("muscle", t, d, w)
    # chewing: 1-2 Hz trains of bilateral temporal muscle bursts
    for t, d in _poisson_times(rng, rate["chewing"], T, anywhere, lambda: rng.uniform(2.0, 5.0)):
        k = int(d * SFREQ)
        w = muscle_weights(["left", "right"])
        f_chew = rng.uniform(1.0, 2.0)
        bursts = (np.sin(2 * np.pi * f_chew * np.arange(k) / SFREQ) > 0.3).astype(float)
        bursts = np.convolve(bursts, np.ones(8) / 8, mode="same")
        amp = rng.uniform(30.0, 70.0)
        _add(x, int(t * SFREQ), w, amp * emg(k) * bursts[None, :])
        record("chewing", t, d, w)
    # electrode pops: a step with exponential decay on one electrode; rare ones saturate
    for t, d in _poisson_times(rng, rate["pop"], T, anywhere, lambda: rng.uniform(0.5, 3.0)):
        k = int(d * SFREQ)
        e = int(rng.integers(len(ELECTRODES)))
        big = rng.random() < 0.05
        amp = rng.uniform(900.0, 2000.0) if big else float(np.exp(rng.normal(np.log(120.0), 0.5)))
        tau = d / 5.0
        wave = rng.choice([-1.0, 1.0]) * amp * np.exp(-np.arange(k) / (tau * SFREQ))
        w = np.zeros(len(ELECTRODES))
        w[e] = 1.0
        _add(x, int(t * SFREQ), w, wave)
        record("pop", t, d, w)
    # hard negative: 1-4 s high-amplitude rhythmic burst (2-8 Hz) centred anywhere
    for t, d in _poisson_times(rng, rate["rhythmic_burst"], T, clear_of_seizures, lambda: rng.uniform(1.0, 4.0)):
        k = int(d * SFREQ)
        if rng.random() < 0.4:  # bilateral, frontal (FIRDA-like) or posterior predominant
            centre = str(rng.choice(["FZ", "PZ"]))
            w = g.weights_near([centre], rng.uniform(7.0, 10.0))
        else:  # regional, anywhere (the onset zone included)
            centre = ELECTRODES[int(rng.integers(len(ELECTRODES)))]
            w = g.weights_near([centre], rng.uniform(3.0, 6.0))
        w = w * np.exp(0.25 * rng.standard_normal(w.size))
        f0 = rng.uniform(2.0, 8.0)
        fr = f0 * (1.0 + 0.06 * _smooth_noise(rng, k, 0.3))
        ph = 2 * np.pi * np.cumsum(fr) / SFREQ + rng.uniform(0, 2 * np.pi)
        wave = np.sin(ph) + 0.3 * np.sin(2 * ph + rng.uniform(0, 2 * np.pi))
        wave *= np.clip(1.0 + 0.25 * _smooth_noise(rng, k, 0.25), 0.5, 1.5)
        peak = min(rng.uniform(2.5, 6.0) * model.bg_bipolar_uV, 380.0)
        amp = peak / max(g.max_bipolar(w), 0.2)
        _add(x, int(t * SFREQ), w, amp * wave * _tukey(k, 0.4))
        record("rhythmic_burst", t, d, w)
    # hard negatives: interictal spike-and-wave at the onset zone, isolated or in short runs
    w_ied = model.interictal
    delta_ied = max(g.max_bipolar(w_ied), 0.2)
    for kind, length in (("interictal_spike", lambda: 0.35), ("interictal_run", lambda: rng.uniform(1.0, 4.0))):
        for t, d in _poisson_times(rng, rate[kind], T, clear_of_seizures, length):
            k = int(d * SFREQ)
            f0 = rng.uniform(2.5, 4.0)
            tt = np.arange(k) / SFREQ
            if kind == "interictal_spike":  # one spike and its after-going slow wave
                s = phys.spike_ms / 1000.0
                wave = -np.exp(-0.5 * ((tt - 0.08) / s) ** 2) - 0.5 * np.exp(-0.5 * ((tt - 0.2) / 0.05) ** 2)
            else:
                ph = 2 * np.pi * f0 * tt + rng.uniform(0, 2 * np.pi)
                wave = _discharge(ph, np.full(k, f0), np.full(k, phys.spikiness), phys.spike_ms)
                wave *= _tukey(k, 0.25)
            peak = min(rng.uniform(3.5, 7.0) * model.bg_bipolar_uV, 380.0)
            _add(x, int(t * SFREQ), w_ied, peak / delta_ied * wave)
            record(kind, t, d, w_ied)
    events.sort(key=lambda e: (e.onset_s, e.kind))
    return events


def _synthesize_recording(rng, model: _PatientModel, duration_s: int, seizures: list[tuple[int, int]],
                          artifacts: float):
    """Electrode signals (n_electrodes, n_samples) in uV, the seizures as built, and the events."""
    n = duration_s * SFREQ
    closed = _eyes_closed(rng, n, model.phys.eyes_closed_fraction)
    x = _background(rng, model, n, closed)
    built = []
    for i, (on, off) in enumerate(seizures):
        nxt = seizures[i + 1][0] if i + 1 < len(seizures) else None
        built.append(_add_seizure(rng, x, model, on, off, nxt))
    events = _add_events(rng, x, model, closed, seizures, artifacts) if artifacts > 0 else []
    return x, built, events


def electrode_signals_to_bipolar(x: np.ndarray) -> np.ndarray:
    """The 23 CHB-MIT bipolar channels (``montage.CHBMIT_23`` order) from simulated electrode
    signals ordered as :data:`ELECTRODES`."""
    return _geometry().bipolar @ x


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------
def _field(value, width: int) -> bytes:
    s = str(value)
    if len(s) > width or not s.isascii():
        raise ValueError(f"EDF header field {s!r} does not fit {width} ASCII characters")
    return s.ljust(width).encode("ascii")


def to_digital(bipolar_uV: np.ndarray) -> np.ndarray:
    """Quantize physical values (uV) to the 12-bit digital range, saturating like the amplifier."""
    pmin, pmax = PHYSICAL_RANGE_UV
    dmin, dmax = DIGITAL_RANGE
    d = np.round((bipolar_uV - pmin) / QUANTUM_UV + dmin)
    return np.clip(d, dmin, dmax).astype("<i2")


def write_edf(path: str | os.PathLike, bipolar_uV: np.ndarray, start: _dt.datetime,
              patient_id: str, recording_id: str, labels: tuple[str, ...] = CHBMIT_23) -> None:
    """Write a plain EDF (not EDF+) file the way CHB-MIT files are: 1 s data records at 256 Hz,
    physical -800..800 uV on digital -2048..2047, one signal per label.

    ``bipolar_uV`` has shape (len(labels), n_seconds * 256); values beyond the physical range
    saturate at its ends.
    """
    ns, n = bipolar_uV.shape
    if ns != len(labels) or n % SFREQ:
        raise ValueError(f"{path}: need ({len(labels)}, k*{SFREQ}) samples, got {bipolar_uV.shape}")
    n_records = n // SFREQ
    head = (_field("0", 8) + _field(patient_id, 80) + _field(recording_id, 80)
            + _field(start.strftime("%d.%m.%y"), 8) + _field(start.strftime("%H.%M.%S"), 8)
            + _field(256 * (ns + 1), 8) + _field("", 44) + _field(n_records, 8) + _field(1, 8)
            + _field(ns, 4))
    per_signal = [
        (16, labels), (80, [""] * ns), (8, ["uV"] * ns),
        (8, [f"{PHYSICAL_RANGE_UV[0]:g}"] * ns), (8, [f"{PHYSICAL_RANGE_UV[1]:g}"] * ns),
        (8, [DIGITAL_RANGE[0]] * ns), (8, [DIGITAL_RANGE[1]] * ns),
        (80, [""] * ns), (8, [SFREQ] * ns), (32, [""] * ns),
    ]
    for width, values in per_signal:
        head += b"".join(_field(v, width) for v in values)
    assert len(head) == 256 * (ns + 1)
    records = to_digital(bipolar_uV).reshape(ns, n_records, SFREQ).transpose(1, 0, 2)
    with open(path, "wb") as f:
        f.write(head)
        f.write(np.ascontiguousarray(records).tobytes())


def _clock(seconds: int, pad_hours: bool) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}" if pad_hours else f"{h}:{m:02d}:{s:02d}"


def _summary_text(recordings: list[RecordingTruth]) -> str:
    lines = [f"Data Sampling Rate: {SFREQ} Hz", "*************************", "",
             "Channels in EDF Files:", "**********************"]
    lines += [f"Channel {i}: {c}" for i, c in enumerate(CHBMIT_23, 1)]
    for r in recordings:
        lines += ["", f"File Name: {Path(r.path).name}", f"File Start Time: {r.start_time}",
                  f"File End Time: {r.end_time}", f"Number of Seizures in File: {len(r.seizure_details)}"]
        numbered = len(r.seizure_details) > 1
        for i, s in enumerate(r.seizure_details, 1):
            tag = f"Seizure {i}" if numbered else "Seizure"
            lines += [f"{tag} Start Time: {s.onset_s} seconds", f"{tag} End Time: {s.offset_s} seconds"]
    return "\n".join(lines) + "\n"


def _subject_info_text(patients: list[PatientTruth]) -> str:
    def age(a: float) -> str:
        whole = int(a)
        return f"{whole:2d}" if a == whole else f"{whole:2d}.{int(round((a - whole) * 10))}"

    return "Case\tGender\tAge (years)\n\n" + "".join(f"{p.patient}\t{p.gender}\t{age(p.age)}\n" for p in patients)


def _write_soz(path: Path, patients: list[PatientTruth]) -> None:
    from datamodules.sources.soz import write_soz_tsv

    write_soz_tsv(path, {p.patient: (p.soz, p.region) for p in patients})


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------
def _generate_patient(root: Path, k: int, params: GenerationParams, soz_choice: int,
                      progress: Callable[[str], None] | None) -> PatientTruth:
    subject = _subject_name(k)
    rng = _rng(params.seed, k)
    phys = _draw_physiology(rng)
    region, soz = SOZ_CATALOG[soz_choice]
    # unequal fields within the zone (equal weights would cancel in the bipolar pair between them)
    others = np.sort(rng.uniform(0.3, 0.75, len(soz) - 1))[::-1]
    soz_weights = (1.0, *[round(float(v), 3) for v in others])
    model = _PatientModel(phys, soz, soz_weights)
    gender = str(rng.choice(["F", "M"]))
    age = float(rng.integers(2, 44)) / 2.0  # like SUBJECT-INFO: whole or half years, 1-22
    age = float(int(age)) if rng.random() < 0.7 else age
    age = max(age, 1.5)

    lo, hi = _LENGTH_FACTOR
    durations = [int(round(params.minutes * 60.0 * rng.uniform(lo, hi))) for _ in range(params.n_recordings)]
    plans = _plan_seizures(rng, phys, durations, params.seizures_per_patient)
    clock = int(rng.integers(0, 86400))  # seconds since midnight of the first day
    date0 = _dt.datetime(2059, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 3650)))
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    recordings = []
    for r, (dur, plan) in enumerate(zip(durations, plans)):
        rid = f"{subject}_{r + 1:02d}"
        start = date0 + _dt.timedelta(seconds=clock)
        rec_rng = _rng(params.seed, k, r + 1)
        x, built, events = _synthesize_recording(rec_rng, model, dur, plan, params.artifacts)
        bip = electrode_signals_to_bipolar(x)
        write_edf(folder / f"{rid}.edf", bip, start, subject, f"{rid} synthetic CHB-MIT-shaped recording")
        day_clock = clock % 86400
        recordings.append(RecordingTruth(
            recording_id=rid, path=f"{subject}/{rid}.edf", duration_s=dur,
            start_time=_clock(day_clock, True),
            # the real summaries count end hours on from the start's day (24:21:32, 1:21:39)
            end_time=_clock(day_clock + dur, False),
            seizure_details=tuple(built), events=tuple(events)))
        if progress:
            progress(f"{rid}.edf  {dur / 60:5.1f} min  {len(built)} seizure(s)  {len(events)} events")
        clock += dur + int(rng.integers(3, 15))  # a few seconds between files, as in CHB-MIT
    patient = PatientTruth(subject, soz, region, soz_weights, gender, age, tuple(recordings))
    (folder / f"{subject}-summary.txt").write_text(_summary_text(recordings))
    return patient


def _expected_sizes(truth: CorpusTruth) -> dict[str, int]:
    header = 256 * (len(CHBMIT_23) + 1)
    return {r.path: header + r.duration_s * SFREQ * len(CHBMIT_23) * 2 for r in truth.recordings}


def _is_complete(root: Path, truth: CorpusTruth) -> bool:
    for rel, size in _expected_sizes(truth).items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    names = ["SUBJECT-INFO", "RECORDS", "RECORDS-WITH-SEIZURES", "soz.tsv"]
    names += [f"{p.patient}/{p.patient}-summary.txt" for p in truth.patients]
    return all((root / n).is_file() for n in names)


def _validate(params: GenerationParams) -> None:
    if params.n_patients < 1 or params.n_recordings < 1:
        raise ValueError(f"need at least one patient and one recording, got {params.n_patients} "
                         f"patients x {params.n_recordings} recordings")
    if params.n_patients > 98:
        raise ValueError(f"at most 98 patients fit the chbNN naming, got {params.n_patients}")
    if params.n_recordings > 99:
        raise ValueError(f"at most 99 recordings per patient fit chbNN_MM, got {params.n_recordings}")
    lo, hi = params.seizures_per_patient
    if not 1 <= lo <= hi:
        raise ValueError(f"seizures per patient must be 1 <= min <= max, got {lo}..{hi}")
    if params.minutes <= 0 or params.minutes > 24 * 60:
        raise ValueError(f"minutes per recording must be in (0, 1440], got {params.minutes}")
    if params.artifacts < 0:
        raise ValueError(f"artifacts scale must be >= 0, got {params.artifacts}")
    if params.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {params.seed}")
    shortest = params.minutes * 60.0 * _LENGTH_FACTOR[0]
    if shortest < SEIZURE_DURATION_RANGE_S[0] + 2 * MARGIN_S:
        need = (SEIZURE_DURATION_RANGE_S[0] + 2 * MARGIN_S) / 60.0 / _LENGTH_FACTOR[0]
        raise ValueError(f"--minutes {params.minutes:g} is too short for a seizure with {MARGIN_S} s margins "
                         f"on both sides: use at least {np.ceil(need * 10) / 10:g}")


def generate_corpus(root: str | os.PathLike, n_patients: int = 6, n_recordings: int = 2,
                    minutes: float = 12.0, seed: int = 0, seizures_per_patient: tuple[int, int] = (2, 4),
                    artifacts: float = 1.0, overwrite: bool = False,
                    progress: Callable[[str], None] | None = None) -> CorpusTruth:
    """Write a synthetic CHB-MIT-shaped corpus to ``root`` and return its ground truth.

    Parameters
    ----------
    root : path
        Corpus root. Built in a temporary sibling folder and renamed into place, so several
        processes (SLURM array tasks) may ask for the same corpus at once.
    n_patients : int
        Subjects ``chb01``, ``chb02``... (``chb21`` is skipped: CHB-MIT's chb21 is chb01).
    n_recordings : int
        EDF files per patient, ``chbNN_01.edf``...
    minutes : float
        Typical recording length; each lasts ``minutes`` x U(0.85, 1.25), whole seconds.
    seed : int
        Same seed and parameters -> same bytes.
    seizures_per_patient : (int, int)
        Range of seizures per patient, spread at random over its recordings (at most 3 per
        recording and what 60 s margins allow).
    artifacts : float
        Scale of the artifact and hard-negative rates (0: clean background and seizures only).
    overwrite : bool
        Replace an existing synthetic corpus built with other parameters. A corpus with the
        same parameters is reused as it is; a folder that is not a synthetic corpus is never
        touched.
    progress : callable, optional
        Called with one line per recording written.

    Returns
    -------
    CorpusTruth
        Per patient the onset zone electrodes and region, per recording the seizures written.
    """
    params = GenerationParams(int(n_patients), int(n_recordings), float(minutes), int(seed),
                              (int(seizures_per_patient[0]), int(seizures_per_patient[1])),
                              float(artifacts))
    _validate(params)
    root = Path(root)
    existing = _existing(root, params, overwrite)
    if existing is not None:
        return existing

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        choices = _rng(params.seed).permutation(len(SOZ_CATALOG))
        patients = [
            _generate_patient(tmp, k, params, int(choices[k % len(choices)]), progress)
            for k in range(params.n_patients)
        ]
        (tmp / "SUBJECT-INFO").write_text(_subject_info_text(patients))
        recs = [r for p in patients for r in p.recordings]
        (tmp / "RECORDS").write_text("".join(f"{r.path}\n" for r in recs))
        (tmp / "RECORDS-WITH-SEIZURES").write_text("".join(f"{r.path}\n" for r in recs if r.seizure_details))
        _write_soz(tmp / "soz.tsv", patients)
        truth = CorpusTruth(str(root), params, tuple(patients))
        body = truth.to_dict()
        body["root"] = "."  # the truth file does not depend on where the corpus lives
        (tmp / TRUTH_FILE).write_text(json.dumps(body, indent=1))
        _install(tmp, root, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_truth(root)


def _existing(root: Path, params: GenerationParams, overwrite: bool) -> CorpusTruth | None:
    """The corpus already at ``root`` when it can be reused; None when it must be (re)built."""
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    if not root.is_dir():
        raise DatasetError(f"{root}: exists and is not a folder")
    if not (root / TRUTH_FILE).is_file():
        raise DatasetError(f"{root}: folder is not empty and holds no synthetic corpus "
                           f"({TRUTH_FILE} missing); refusing to write into it")
    truth = load_truth(root)
    if truth.params == params:
        # ours and asked for again: reuse it, or rebuild it when files went missing
        return truth if _is_complete(root, truth) else None
    if not overwrite:
        raise DatasetError(f"{root}: holds a synthetic corpus built with other parameters "
                           f"({truth.params}); pass overwrite=True (--overwrite) to replace it")
    return None


def _install(tmp: Path, root: Path, params: GenerationParams) -> None:
    """Move the finished corpus into place atomically (another process may have won)."""
    old = None
    if root.exists() and any(root.iterdir()):
        old = root.parent / f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(root, old)
    try:
        os.rename(tmp, root)  # replaces an empty folder
    except OSError:
        # someone installed a corpus meanwhile: keep theirs if it is the one asked for
        theirs = load_truth(root)
        if theirs.params != params:
            raise DatasetError(f"{root}: another process wrote a corpus with other parameters "
                               f"({theirs.params}) while this one was being built") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Command line: ``python -m datamodules synth OUT ...``
# --------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    """Arguments of ``python -m datamodules synth``."""
    parser.add_argument("out", help="corpus root to write (CHB-MIT layout)")
    parser.add_argument("--patients", type=int, default=6, help="number of patients (default 6)")
    parser.add_argument("--recordings", type=int, default=2, help="EDF files per patient (default 2)")
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="typical minutes per recording; each lasts 0.85-1.25x this (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--seizures", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"),
                        help="seizures per patient (default 2 4)")
    parser.add_argument("--artifacts", type=float, default=1.0,
                        help="scale of artifact and hard-negative rates, 0 for none (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a synthetic corpus built with other parameters")


def run(args) -> int:
    """Build the corpus described by ``args`` (from :func:`add_arguments`); 0 on success."""
    import sys

    t0 = time.perf_counter()
    try:
        truth = generate_corpus(args.out, n_patients=args.patients, n_recordings=args.recordings,
                                minutes=args.minutes, seed=args.seed, seizures_per_patient=tuple(args.seizures),
                                artifacts=args.artifacts, overwrite=args.overwrite,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (ValueError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    hours = sum(r.duration_s for r in truth.recordings) / 3600.0
    print(f"{truth.root}: {len(truth.patients)} patients, {len(truth.recordings)} recordings "
          f"({hours:.2f} h), {truth.n_seizures} seizures in {time.perf_counter() - t0:.1f} s")
    for p in truth.patients:
        print(f"  {p.patient}: SOZ {','.join(p.soz)} ({p.region}), {p.n_seizures} seizure(s)")
    return 0
