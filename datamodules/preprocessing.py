"""Signal preprocessing before caching: band-pass, notch, resampling, in microvolts.

Zero-phase IIR filters (second-order sections, ``scipy.signal.sosfiltfilt``) so seizure onsets
are not shifted in time; polyphase resampling. One recording at a time, float32 out.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps


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


def preprocess(x: np.ndarray, sfreq: float, cfg: PreprocessingConfig) -> tuple[np.ndarray, float]:
    """Filter and resample ``x`` (n_chans, n_times) in microvolts.

    Returns the processed float32 signal and its sampling rate.
    """
    x = np.asarray(x, dtype=np.float32)
    nyq = sfreq / 2.0
    low = cfg.l_freq if cfg.l_freq and cfg.l_freq > 0 else None
    high = cfg.h_freq if cfg.h_freq and cfg.h_freq < nyq else None
    stages = []  # (kind, coefficients), applied forward and backward
    if x.shape[-1] > 3 * (2 * cfg.filter_order + 1):
        if low and high:
            stages.append(("sos", sps.butter(cfg.filter_order, [low, high], btype="bandpass", fs=sfreq, output="sos")))
        elif low:
            stages.append(("sos", sps.butter(cfg.filter_order, low, btype="highpass", fs=sfreq, output="sos")))
        elif high:
            stages.append(("sos", sps.butter(cfg.filter_order, high, btype="lowpass", fs=sfreq, output="sos")))
        notch = cfg.notch_freq
        if notch and notch < nyq and (high is None or notch < high * 1.25):
            stages.append(("ba", sps.iirnotch(notch, Q=30.0, fs=sfreq)))
    if stages:
        # channel by channel, in float64, into a float32 result: whole-array float64 copies
        # (and scipy's internal ones) dominated time and memory of the cache build
        out = np.empty(x.shape, dtype=np.float32)
        for i in range(x.shape[0]):
            ch = x[i].astype(np.float64)
            for kind, coef in stages:
                ch = sps.sosfiltfilt(coef, ch) if kind == "sos" else sps.filtfilt(*coef, ch)
            out[i] = ch
        x = out
    out_sfreq = float(sfreq)
    if cfg.sfreq and abs(cfg.sfreq - sfreq) > 1e-6:
        ratio = Fraction(cfg.sfreq / sfreq).limit_denominator(1000)
        x = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
        out_sfreq = float(cfg.sfreq)
    return np.ascontiguousarray(x, dtype=np.float32), out_sfreq
