"""Signal primitives shared by the background, artifact and seizure simulations.

Electrode geometry (positions in cm, distances, the CHB-MIT bipolar matrix), coloured noise,
smooth envelopes and the random streams: one place for what every part of the simulation uses.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import fft as _fft

from eeg.head import electrode_positions
from eeg.montage import CHBMIT_23

#: Electrodes simulated (referential): the ones the 23 CHB-MIT bipolar labels touch.
ELECTRODES: tuple[str, ...] = (
    "FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T7", "C3", "CZ", "C4", "T8",
    "P7", "P3", "PZ", "P4", "P8", "O1", "O2", "FT9", "FT10",
)
#: Sampling rate of every simulated signal and written file (CHB-MIT's).
SFREQ = 256

#: What the EDF files hold: the 23 CHB-MIT bipolar channels (``bipolar``, the default), or each
#: simulated electrode against an ideal common reference (``referential``), labelled as TUSZ
#: labels them (``EEG FP1-REF``, ``EEG T3-REF``: the old 10-20 names T3/T4/T5/T6).
MONTAGES = ("bipolar", "referential")
_OLD_NAMES = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
REFERENTIAL_LABELS: tuple[str, ...] = tuple(f"EEG {_OLD_NAMES.get(e, e)}-REF" for e in ELECTRODES)


def montage_labels(montage: str) -> tuple[str, ...]:
    """EDF channel labels of a corpus written in ``montage`` (see :data:`MONTAGES`)."""
    return CHBMIT_23 if montage == "bipolar" else REFERENTIAL_LABELS


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent random stream per ``(seed, patient, recording, ...)``.

    A seed sequence per key keeps patient ``k`` the same whatever the number of patients, and
    never depends on Python's randomized string hashing.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def subject_name(k: int) -> str:
    """``chb01``, ``chb02``... for patient index ``k`` (0-based), skipping ``chb21``.

    CHB-MIT's chb21 is chb01 recorded later and the sources merge them into one patient, so
    every synthetic subject gets a number of its own.
    """
    n = k + 1 if k + 1 < 21 else k + 2
    return f"chb{n:02d}"


class Geometry:
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

    def one_hot(self, electrodes, values=None) -> np.ndarray:
        """A weight vector with ``values`` (default 1) at ``electrodes`` and 0 elsewhere."""
        w = np.zeros(len(ELECTRODES))
        values = [1.0] * len(electrodes) if values is None else values
        for e, v in zip(electrodes, values):
            w[self.index[e]] = max(w[self.index[e]], float(v))
        return w

    def max_bipolar(self, w: np.ndarray) -> float:
        """Largest |w_a - w_b| over the 23 bipolar channels: how much of a field shows in them."""
        return float(max(abs(w[a] - w[b]) for a, b in self.pairs))

    def mixing(self, sigma_cm: float) -> np.ndarray:
        """Volume conduction: each electrode sees the sources near it (rows of unit norm)."""
        k = np.exp(-0.5 * (self.dist / sigma_cm) ** 2)
        return k / np.linalg.norm(k, axis=1, keepdims=True)

    def mirrored_distance(self, electrodes) -> np.ndarray:
        """Distance of every electrode to the mirror image (other hemisphere) of ``electrodes``."""
        idx = [self.index[e] for e in electrodes]
        mirrored = self.pos[idx] * np.array([-1.0, 1.0, 1.0])
        return np.linalg.norm(self.pos[:, None] - mirrored[None], axis=-1).min(axis=1)


_GEOMETRY: Geometry | None = None


def geometry() -> Geometry:
    """The one :class:`Geometry` (built on first use)."""
    global _GEOMETRY
    if _GEOMETRY is None:
        _GEOMETRY = Geometry()
    return _GEOMETRY


def to_bipolar(x: np.ndarray) -> np.ndarray:
    """The 23 CHB-MIT bipolar channels (``CHBMIT_23`` order) from electrode signals ordered as
    :data:`ELECTRODES`."""
    return (geometry().bipolar.astype(x.dtype)) @ x


# --------------------------------------------------------------------------------------------
# Noise and envelopes
# --------------------------------------------------------------------------------------------
def shaped_noise(rng: np.random.Generator, n_src: int, n: int, amplitude: Callable) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``amplitude(f)``, unit variance per row (float32)."""
    m = _fft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(m, 1.0 / SFREQ)
    amp = np.asarray(amplitude(f), dtype=np.float32)
    amp[0] = 0.0
    # single precision: half the time of double, and far below the 0.39 uV quantization
    spec = np.empty((n_src, f.size), dtype=np.complex64)
    spec.real = rng.standard_normal((n_src, f.size), dtype=np.float32)
    spec.imag = rng.standard_normal((n_src, f.size), dtype=np.float32)
    spec *= amp
    x = _fft.irfft(spec, m, axis=-1)[:, :n]
    x /= np.maximum(x.std(axis=-1, keepdims=True), 1e-12)
    return x.astype(np.float32, copy=False)


def narrowband(rng: np.random.Generator, n_src: int, n: int, f0: float, bw: float) -> np.ndarray:
    """Unit-variance noise concentrated around ``f0`` Hz (Gaussian band of width ``bw``)."""
    return shaped_noise(rng, n_src, n, lambda f: np.exp(-0.5 * ((f - f0) / bw) ** 2))


def band_noise(rng: np.random.Generator, n_src: int, n: int, lo: float, hi: float) -> np.ndarray:
    """Unit-variance noise with a flat spectrum between ``lo`` and ``hi`` Hz (soft edges)."""
    def amp(f):
        return 1.0 / (1.0 + (lo / np.maximum(f, 1e-3)) ** 8) / (1.0 + (f / hi) ** 8)

    return shaped_noise(rng, n_src, n, amp)


def smooth_noise(rng: np.random.Generator, n: int, corr_s: float) -> np.ndarray:
    """Slow unit-variance fluctuation (linear interpolation of knots ``corr_s`` apart)."""
    step = max(1, int(corr_s * SFREQ))
    knots = rng.standard_normal(n // step + 2)
    return np.interp(np.arange(n) / step, np.arange(knots.size), knots)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic ramp between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def tukey(n: int, taper: float = 0.3) -> np.ndarray:
    """Tukey (tapered cosine) window: flat middle, cosine ramps over ``taper`` of its length."""
    w = np.ones(n)
    ramp = int(taper * n / 2)
    if ramp > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        w[:ramp] = edge
        w[n - ramp:] = edge[::-1]
    return w


def add(x: np.ndarray, start: int, weights: np.ndarray, wave: np.ndarray) -> None:
    """``x[:, start:start+len(wave)] += weights (outer) wave``, cropped at the recording edges.

    ``wave`` is one row (shared by every electrode, scaled by ``weights``) or one row per
    electrode.
    """
    n = x.shape[1]
    a, b = max(start, 0), min(start + wave.shape[-1], n)
    if b <= a:
        return
    seg = wave[..., a - start:b - start]
    if seg.ndim == 1:
        x[:, a:b] += (weights[:, None] * seg[None, :]).astype(x.dtype, copy=False)
    else:
        x[:, a:b] += (weights[:, None] * seg).astype(x.dtype, copy=False)


def discharge(phase: np.ndarray, freq: np.ndarray, spikiness: np.ndarray, spike_ms: float) -> np.ndarray:
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


def poisson_times(rng: np.random.Generator, rate_per_h: float, duration_s: float,
                  allowed: Callable[[float, float], bool], length: Callable[[], float]) -> list[tuple[float, float]]:
    """Onsets (Poisson, ``rate_per_h``) and lengths of events that fit the recording and ``allowed``."""
    k = rng.poisson(max(rate_per_h, 0.0) * duration_s / 3600.0)
    out = []
    for t in np.sort(rng.uniform(0.0, duration_s, k)):
        d = float(length())
        if t + d < duration_s and allowed(float(t), d):
            out.append((float(t), d))
    return out
