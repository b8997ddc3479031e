"""Untrained baselines that every study reports beside its learned models.

A learned detector or localizer has shown something only when it beats a rule that needs no
training (the SzCORE benchmark likewise reports a rule-based reference next to learned models).
These are those rules, as pure numpy/torch code with signal-shaped arguments:

* :func:`line_length` and :class:`LineLengthDetector`: line length (Esteller et al., "Line
  length: an efficient feature for seizure onset detection", IEEE EMBS 2001; Koolen et al.,
  Clin Neurophysiol 2014) of each window, relative to the recording's median, mean of the most
  active channels. Its scores go through the same post-processing, threshold search and SzCORE
  scoring as a model's probabilities.
* :func:`largest_amplitude_scores`: "the loudest channel" at the onset.
* :func:`earliest_rise_scores`: "the first channel whose power rises above its own pre-onset
  baseline" (the earliest-involvement rule of visual onset localization).
* :func:`localization_chance`: the top-1 accuracy of a channel drawn at random.

The localizers score channels in an onset window around the annotated onset (default -5 s to
+10 s, :data:`DEFAULT_ONSET_WINDOW_S`): long enough for an onset marked a few seconds late, short
enough to leave propagation and post-ictal slowing out.
"""
from __future__ import annotations

import numpy as np
import torch

#: Onset window (s) around the annotated onset in which localization is scored.
DEFAULT_ONSET_WINDOW_S: tuple[float, float] = (-5.0, 10.0)


def line_length(x):
    """Per-channel line length of windows.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Windows of shape (..., n_chans, n_times).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Shape (..., n_chans): ``sum_t |x[..., t + 1] - x[..., t]|``, the length of the curve
        (in the signal's unit per window), the same type as ``x``.

    Examples
    --------
    >>> line_length(np.array([[0.0, 1.0, -1.0, -1.0]]))
    array([3.])
    """
    if isinstance(x, torch.Tensor):
        return (x[..., 1:] - x[..., :-1]).abs().sum(dim=-1)
    x = np.asarray(x, dtype=np.float64)
    return np.abs(np.diff(x, axis=-1)).sum(axis=-1)


class LineLengthDetector:
    """Seizure detector with no training: relative line length of the most active channels.

    For each window of ``n_times`` samples, the line length of every channel is divided by that
    channel's median window line length over the whole recording (so a naturally busy channel
    does not dominate), and the ``top_k`` largest ratios are averaged. A score of 1 is a typical
    window; seizures (and muscle, movement, chewing...) score higher.

    Parameters
    ----------
    n_chans : int
        Channels of the signals it scores.
    n_times : int
        Window length in samples.
    sfreq : float
        Sampling rate (Hz) of those signals.
    top_k : int
        How many of the most active channels are averaged (default 2).

    References
    ----------
    Esteller R, Echauz J, Tcheng T, Litt B, Pless B. Line length: an efficient feature for
    seizure onset detection. Proc. IEEE EMBS 2001, 1707-1710.
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float, top_k: int = 2):
        if int(n_chans) < 1 or int(n_times) < 2 or not float(sfreq) > 0:
            raise ValueError(f"need n_chans >= 1, n_times >= 2 and sfreq > 0, got {n_chans}, {n_times}, {sfreq}")
        if not 1 <= int(top_k) <= int(n_chans):
            raise ValueError(f"top_k must be in 1..n_chans ({n_chans}), got {top_k}")
        self.n_chans, self.n_times, self.sfreq, self.top_k = int(n_chans), int(n_times), float(sfreq), int(top_k)

    @property
    def window_s(self) -> float:
        return self.n_times / self.sfreq

    def window_starts(self, n_samples: int, hop: int | None = None) -> np.ndarray:
        """Sample index of every whole window: 0, hop, 2*hop, ... (``hop`` defaults to ``n_times``)."""
        hop = self.n_times if hop is None else int(hop)
        if hop < 1:
            raise ValueError(f"hop must be >= 1 sample, got {hop}")
        return np.arange(0, int(n_samples) - self.n_times + 1, hop, dtype=np.int64)

    def window_line_length(self, signal: np.ndarray, hop: int | None = None) -> np.ndarray:
        """(n_windows, n_chans) line length of every window (:meth:`window_starts`)."""
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.n_chans:
            raise ValueError(f"signal must have shape ({self.n_chans}, n_samples), got {x.shape}")
        starts = self.window_starts(x.shape[1], hop)
        if starts.size == 0:
            return np.zeros((0, self.n_chans))
        # one pass: cumulative |diff|, then each window is a difference of two cumulative sums
        cum = np.concatenate([np.zeros((self.n_chans, 1)), np.cumsum(np.abs(np.diff(x, axis=1)), axis=1)], axis=1)
        return (cum[:, starts + self.n_times - 1] - cum[:, starts]).T

    def score_recording(self, signal: np.ndarray, hop: int | None = None) -> np.ndarray:
        """Score every window of one recording.

        Parameters
        ----------
        signal : numpy.ndarray
            (n_chans, n_samples), the whole recording.
        hop : int, optional
            Samples between window starts (default ``n_times``: adjacent windows).

        Returns
        -------
        numpy.ndarray
            (n_windows,) scores of the windows starting at 0, hop, 2*hop, ...: the mean of the
            ``top_k`` largest per-channel ratios of window line length to that channel's
            median over the recording (a flat channel, median 0, scores 0).
        """
        ll = self.window_line_length(signal, hop)
        if ll.shape[0] == 0:
            return np.zeros(0)
        median = np.median(ll, axis=0)
        ratio = np.divide(ll, median, out=np.zeros_like(ll), where=median > 0)
        top = np.partition(ratio, self.n_chans - self.top_k, axis=1)[:, self.n_chans - self.top_k:]
        return top.mean(axis=1)


def onset_window(onset_index: int, sfreq: float, n_samples: int,
                 window_s: tuple[float, float] = DEFAULT_ONSET_WINDOW_S) -> tuple[int, int]:
    """Samples ``[start, stop)`` of the onset window around ``onset_index``, cut at the recording edges.

    Raises ValueError when nothing of the window lies inside the recording.
    """
    start = max(0, int(onset_index + round(window_s[0] * sfreq)))
    stop = min(int(n_samples), int(onset_index + round(window_s[1] * sfreq)))
    if stop <= start:
        raise ValueError(f"onset window {window_s} s around sample {onset_index} lies outside the "
                         f"recording of {n_samples} samples")
    return start, stop


def largest_amplitude_scores(segment: np.ndarray) -> np.ndarray:
    """RMS of each channel of ``segment`` (n_chans, n_times): the "loudest channel" localizer.

    Give it the onset window (:func:`onset_window`); the channel with the highest score is its
    answer.
    """
    x = np.asarray(segment, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"segment must have shape (n_chans, n_times > 0), got {x.shape}")
    return np.sqrt(np.mean(x ** 2, axis=1))


def _running_power(x: np.ndarray, length: int, starts: np.ndarray) -> np.ndarray:
    cum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x ** 2, axis=1)], axis=1)
    return (cum[:, starts + length] - cum[:, starts]) / length


def earliest_rise_scores(signal: np.ndarray, sfreq: float, onset_index: int, baseline_s: float = 30.0,
                         window_s: tuple[float, float] = DEFAULT_ONSET_WINDOW_S, power_s: float = 1.0,
                         step_s: float = 0.25, factor: float = 2.0, sustain_s: float = 2.0) -> np.ndarray:
    """Earliest-involvement localizer: which channel's power rose above its own baseline first.

    Power is the mean square over ``power_s`` windows every ``step_s`` inside the onset window;
    each channel's baseline is the median of those powers over the ``baseline_s`` seconds
    before the onset window (robust to a blink or a muscle burst there). A channel rises at the
    first step from which its power stays at or above ``factor`` times its baseline for
    ``sustain_s`` seconds (a blink or a pop does not; a discharge that builds up does).

    Parameters
    ----------
    signal : numpy.ndarray
        (n_chans, n_samples), the recording (or a stretch holding the baseline and the window).
    sfreq : float
        Sampling rate (Hz).
    onset_index : int
        Sample of the annotated onset in ``signal``.
    baseline_s, window_s, power_s, step_s, factor, sustain_s
        As described above.

    Returns
    -------
    numpy.ndarray
        (n_chans,) scores, higher = earlier: ``-t_rise`` (seconds from the window start) for a
        channel that rose, below every riser (``-(window length) - 1``) for one that never did,
        plus ``1e-3 * log(largest power ratio)`` so that ties go to the larger rise.

    Raises
    ------
    ValueError
        When less than ``power_s`` of baseline precedes the onset window, or the window is
        shorter than ``power_s``.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"signal must have shape (n_chans, n_samples), got {x.shape}")
    start, stop = onset_window(onset_index, sfreq, x.shape[1], window_s)
    length = max(1, int(round(power_s * sfreq)))
    step = max(1, int(round(step_s * sfreq)))
    b0 = max(0, start - int(round(baseline_s * sfreq)))
    if start - b0 < length:
        raise ValueError(f"earliest rise needs at least {power_s:g} s of baseline before the onset window "
                         f"(sample {start}), got {(start - b0) / sfreq:g} s")
    if stop - start < length:
        raise ValueError(f"onset window of {(stop - start) / sfreq:g} s is shorter than power_s={power_s:g} s")
    base = np.median(_running_power(x, length, np.arange(b0, start - length + 1, step)), axis=1)
    starts = np.arange(start, stop - length + 1, step)
    ratio = _running_power(x, length, starts) / np.maximum(base, 1e-12)[:, None]
    above = ratio >= factor
    run = max(1, int(round(sustain_s / step_s)))
    if above.shape[1] >= run:  # steps from which the next ``run`` steps all stay above
        windows = np.lib.stride_tricks.sliding_window_view(above, run, axis=1)
        rose = windows.all(axis=-1)
    else:
        rose = above.all(axis=1, keepdims=True)
    t_rise = np.where(rose.any(axis=1), rose.argmax(axis=1) * step / sfreq, np.nan)
    window_len = (stop - start) / sfreq
    score = np.where(np.isnan(t_rise), -window_len - 1.0, -np.nan_to_num(t_rise))
    return score + 1e-3 * np.log(np.maximum(ratio.max(axis=1), 1e-12))


def localization_chance(soz_mask) -> float:
    """Top-1 accuracy of a channel picked at random: the share of channels touching the onset zone.

    Parameters
    ----------
    soz_mask : array-like
        (n_chans,) 1 (or True) for channels in the onset zone.
    """
    m = np.asarray(soz_mask, dtype=np.float64).ravel()
    if m.size == 0:
        raise ValueError("empty onset-zone mask")
    return float(np.mean(m > 0))
