"""What a model says about *where* and *when* it sees a seizure, in one shape for every model.

LightSeizureNet gives ECAMs (class activation per channel and time step, with a dominant
frequency per channel); SZLoc gives onset maps (per-channel, per-second activity weighted by
temporal attention). Both become an :class:`ActivationMaps`, so one renderer and one logging
callback serve both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActivationMaps:
    """Channel x time activation over an EEG segment.

    Attributes
    ----------
    activity : np.ndarray, shape (n_chans, n_steps)
        Activation per channel per time step (ECAM value or per-channel seizure activity).
    times_s : np.ndarray, shape (n_steps,)
        Time of each step in seconds, relative to the segment start.
    channels : tuple of str
        Channel names (bipolar labels such as ``FP1-F7``).
    freq_hz : np.ndarray or None, shape (n_chans,)
        Dominant frequency of the activated signal per channel (ECAM), NaN for a channel the
        model did not activate; None if not computed.
    freq_track_hz : np.ndarray or None, shape (n_chans, n_freq_steps)
        The same along time (:func:`lightning_modules.lsn.frequency_track`: one value per
        second, the spectral peak of each activated 2 s window), NaN where not activated.
    freq_times_s : np.ndarray or None, shape (n_freq_steps,)
        Times of ``freq_track_hz`` (s from the segment start).
    attention : np.ndarray or None, shape (n_steps,)
        Temporal attention (SZLoc): which intervals drive the localization.
    probability : np.ndarray or None, shape (n_steps,)
        Seizure probability over time (global detection output).
    kind : str
        ``"ecam"`` or ``"onset_map"``: what the activity means, used in captions.
    """

    activity: np.ndarray
    times_s: np.ndarray
    channels: tuple[str, ...]
    freq_hz: np.ndarray | None = None
    freq_track_hz: np.ndarray | None = None
    freq_times_s: np.ndarray | None = None
    attention: np.ndarray | None = None
    probability: np.ndarray | None = None
    kind: str = "ecam"

    def channel_scores(self, start_s: float | None = None, stop_s: float | None = None) -> np.ndarray:
        """Activation per channel averaged over ``[start_s, stop_s)`` (whole segment by default),
        weighted by attention when there is one. The top channel is the model's localization."""
        sel = np.ones(self.times_s.shape, dtype=bool)
        if start_s is not None:
            sel &= self.times_s >= start_s
        if stop_s is not None:
            sel &= self.times_s < stop_s
        if not sel.any():
            sel[:] = True
        act = self.activity[:, sel]
        if self.attention is not None:
            w = np.clip(self.attention[sel], 0, None)
            if w.sum() > 0:
                return (act * w).sum(axis=1) / w.sum()
        return act.mean(axis=1)
