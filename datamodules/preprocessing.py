"""Signal preprocessing before caching: band-pass, notch, resampling, in microvolts.

Zero-phase IIR filters (second-order sections, ``scipy.signal.sosfiltfilt``) so seizure onsets
are not shifted in time; polyphase resampling. Channel by channel (the cache build streams one
channel of one recording at a time), float32 out.

Precision: filtering in float32 is faster, but the 0.5 Hz high-pass has poles close to the unit
circle and float32 arithmetic adds an error that grows with the signal's amplitude (its DC
offset and drifts included). A channel is filtered in float32 only where that error stays
below half the EDF quantization step of the channel (the resolution the file itself has), else
in float64. Two checks must both pass, each with a safety factor: :func:`float32_error_bound`
(a calibration of the filter chain on a probe signal, scaled by the channel's peak amplitude)
and the error measured on the channel itself, both precisions run on the 30 s around its
largest absolute value (:func:`measured_float32_error`); the measurement catches signals the
calibration underrates.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

#: Safety factor on the predicted and on the measured float32 filtering error.
FLOAT32_SAFETY = 4.0
#: Seconds of a channel, around its largest absolute value, filtered in both precisions.
PROBE_S = 30.0


@dataclass(frozen=True)
class PreprocessingConfig:
    """What is done to every recording before it is cached.

    Attributes
    ----------
    l_freq, h_freq : float or None
        Band-pass edges in Hz (None disables that side). Defaults keep 0.5-40 Hz, where scalp
        seizure rhythms live, and remove drift and muscle/line noise.
    notch_freq : float or None
        Mains frequency to notch (60 Hz in North America, where CHB-MIT was recorded; 50 Hz in
        Europe). Skipped when above the low-pass or Nyquist.
    sfreq : float or None
        Target sampling rate; None keeps the recording's own.
    filter_order : int
        Butterworth order of each band edge (applied forward and backward: doubled).
    """

    l_freq: float | None = 0.5
    h_freq: float | None = 40.0
    notch_freq: float | None = 60.0
    sfreq: float | None = 256.0
    filter_order: int = 4

    def __post_init__(self):
        for name in ("l_freq", "h_freq", "notch_freq", "sfreq"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"{name} must be a positive frequency in Hz or null, got {v!r}")
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(f"l_freq ({self.l_freq} Hz) must be below h_freq ({self.h_freq} Hz)")
        if self.sfreq is not None and self.h_freq is not None and self.h_freq >= self.sfreq / 2:
            raise ValueError(f"h_freq ({self.h_freq} Hz) must be below half the sampling rate "
                             f"({self.sfreq} Hz)")
        if not isinstance(self.filter_order, int) or not 1 <= self.filter_order <= 10:
            raise ValueError(f"filter_order must be an integer in 1..10, got {self.filter_order!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_mapping(cls, d) -> PreprocessingConfig:
        return cls(**{k: (None if v in (None, "null", "None") else v) for k, v in dict(d).items()})


@lru_cache(maxsize=64)
def filter_stages(sfreq: float, cfg: PreprocessingConfig) -> list[tuple[str, tuple]]:
    """The filters applied at ``sfreq``: ``[("sos", sos) | ("ba", (b, a))]``, forward and backward."""
    nyq = sfreq / 2.0
    low = cfg.l_freq if cfg.l_freq and cfg.l_freq > 0 else None
    high = cfg.h_freq if cfg.h_freq and cfg.h_freq < nyq else None
    stages: list[tuple[str, tuple]] = []
    if low and high:
        stages.append(("sos", sps.butter(cfg.filter_order, [low, high], btype="bandpass", fs=sfreq, output="sos")))
    elif low:
        stages.append(("sos", sps.butter(cfg.filter_order, low, btype="highpass", fs=sfreq, output="sos")))
    elif high:
        stages.append(("sos", sps.butter(cfg.filter_order, high, btype="lowpass", fs=sfreq, output="sos")))
    notch = cfg.notch_freq
    if notch and notch < nyq and (high is None or notch < high * 1.25):
        stages.append(("ba", sps.iirnotch(notch, Q=30.0, fs=sfreq)))
    return stages


def _apply(stages, x: np.ndarray, dtype) -> np.ndarray:
    y = x.astype(dtype, copy=False)
    for kind, coef in stages:
        if kind == "sos":
            y = sps.sosfiltfilt(np.asarray(coef, dtype=dtype), y)
        else:
            b, a = (np.asarray(c, dtype=dtype) for c in coef)
            y = sps.filtfilt(b, a, y)
    return y


@lru_cache(maxsize=32)
def _float32_gain(sfreq: float, cfg: PreprocessingConfig) -> float:
    """max |float32 - float64 output| per unit of input peak amplitude, measured on a probe
    (60 s of a random walk, the drift that strains a high-pass most, plus white noise)."""
    stages = filter_stages(sfreq, cfg)
    if not stages:
        return 0.0
    rng = np.random.default_rng(0)
    n = int(60 * sfreq)
    probe = np.cumsum(rng.normal(0.0, 1.0, n)) + rng.normal(0.0, 10.0, n)
    probe = probe - probe.mean() + 0.5 * np.abs(probe).max()  # a DC offset too
    err = np.abs(_apply(stages, probe, np.float32).astype(np.float64) - _apply(stages, probe, np.float64)).max()
    return float(err / np.abs(probe).max())


def float32_error_bound(peak_uv: float, sfreq: float, cfg: PreprocessingConfig) -> float:
    """Predicted worst float32 filtering error (uV) of a channel whose peak amplitude is
    ``peak_uv``, safety factor included."""
    return FLOAT32_SAFETY * _float32_gain(float(sfreq), cfg) * float(peak_uv)


def measured_float32_error(x: np.ndarray, sfreq: float, cfg: PreprocessingConfig) -> float:
    """max |float32 - float64| of the filters on the ``PROBE_S`` seconds of ``x`` around its
    largest absolute value (where the filters' state is largest)."""
    stages = filter_stages(float(sfreq), cfg)
    if not stages or x.size == 0:
        return 0.0
    hi, lo = int(np.argmax(x)), int(np.argmin(x))
    k = hi if abs(float(x[hi])) >= abs(float(x[lo])) else lo
    half = int(PROBE_S * sfreq / 2)
    seg = np.asarray(x[max(0, k - half): k + half])
    if seg.shape[-1] <= 3 * (2 * cfg.filter_order + 1):
        return 0.0
    return float(np.abs(_apply(stages, seg, np.float32).astype(np.float64) - _apply(stages, seg, np.float64)).max())


def preprocess_channel(x: np.ndarray, sfreq: float, cfg: PreprocessingConfig,
                       step_uv: float | None = None, peak_uv: float | None = None) -> tuple[np.ndarray, bool]:
    """Filter and resample one channel (1-D, microvolts).

    ``step_uv`` is the channel's EDF quantization step: when given and the predicted float32
    error (:func:`float32_error_bound`) is below half of it, the filters run in float32
    (``peak_uv``, the channel's largest absolute value, when the caller knows it already).
    Returns the float32 result and whether float32 was used.
    """
    x = np.asarray(x)
    stages = filter_stages(float(sfreq), cfg) if x.shape[-1] > 3 * (2 * cfg.filter_order + 1) else []
    single = False
    if stages:
        if step_uv is not None and peak_uv is None:
            peak_uv = max(float(x.max()), -float(x.min())) if x.size else 0.0
        single = (step_uv is not None and float32_error_bound(peak_uv, sfreq, cfg) < step_uv / 2
                  and FLOAT32_SAFETY * measured_float32_error(x, sfreq, cfg) < step_uv / 2)
        x = _apply(stages, x, np.float32 if single else np.float64)
    ratio = _ratio(sfreq, cfg)
    if ratio is not None:
        x = sps.resample_poly(np.asarray(x, dtype=np.float32), ratio.numerator, ratio.denominator)
    return np.ascontiguousarray(x, dtype=np.float32), single


def _ratio(sfreq: float, cfg: PreprocessingConfig) -> Fraction | None:
    if cfg.sfreq and abs(cfg.sfreq - sfreq) > 1e-6:
        return Fraction(cfg.sfreq / sfreq).limit_denominator(1000)
    return None


def output_sfreq(sfreq: float, cfg: PreprocessingConfig) -> float:
    """Sampling rate after preprocessing."""
    return float(cfg.sfreq) if _ratio(sfreq, cfg) is not None else float(sfreq)


def output_length(n: int, sfreq: float, cfg: PreprocessingConfig) -> int:
    """Samples after preprocessing ``n`` samples at ``sfreq`` (``resample_poly``: ceil(n * up / down))."""
    ratio = _ratio(sfreq, cfg)
    return n if ratio is None else -(-n * ratio.numerator // ratio.denominator)


def preprocess(x: np.ndarray, sfreq: float, cfg: PreprocessingConfig,
               steps_uv=None) -> tuple[np.ndarray, float]:
    """Filter and resample ``x`` (n_chans, n_times) in microvolts, channel by channel.

    ``steps_uv`` (one quantization step per channel, optional) lets channels be filtered in
    float32 where that is exact enough (see :func:`preprocess_channel`); without it, float64.
    Returns the processed float32 signal and its sampling rate.
    """
    x = np.asarray(x)
    rows = [preprocess_channel(x[i], sfreq, cfg, None if steps_uv is None else steps_uv[i])[0]
            for i in range(x.shape[0])]
    out = np.stack(rows) if rows else np.zeros((0, x.shape[-1]), dtype=np.float32)
    return np.ascontiguousarray(out, dtype=np.float32), output_sfreq(sfreq, cfg)
