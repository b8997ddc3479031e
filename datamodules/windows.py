"""Windows: index arrays over cached continuous recordings (no signal copies).

A window is (recording, start sample). Its label says whether it overlaps an annotated seizure
by at least ``min_overlap`` of its length; ``boundary_dist_s`` and ``onset_dist_s`` tell how far
it is from the annotated onset/offset, so losses can ignore the uncertain band around inexact
human marks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cache import CachedRecording

#: Distance used when a recording has no seizure (finite so it survives float32 and collation).
NO_SEIZURE_S = 1e9


@dataclass(frozen=True)
class WindowIndex:
    """Windows over ``recordings``: parallel arrays, one entry per window."""

    recordings: tuple[CachedRecording, ...]
    recording: np.ndarray  # int32 index into recordings
    start: np.ndarray  # int64 first sample
    label: np.ndarray  # int8, 1 = seizure
    boundary_dist_s: np.ndarray  # float32, >= 0
    onset_dist_s: np.ndarray  # float32, signed (centre - nearest onset)
    n_times: int
    sfreq: float

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def window_s(self) -> float:
        return self.n_times / self.sfreq

    def start_s(self) -> np.ndarray:
        return self.start / self.sfreq

    def select(self, mask_or_idx) -> WindowIndex:
        sel = np.asarray(mask_or_idx)
        return WindowIndex(self.recordings, self.recording[sel], self.start[sel], self.label[sel],
                           self.boundary_dist_s[sel], self.onset_dist_s[sel], self.n_times, self.sfreq)

    @staticmethod
    def concat(a: WindowIndex, b: WindowIndex) -> WindowIndex:
        if a.recordings != b.recordings or a.n_times != b.n_times:
            raise ValueError("can only join windows over the same recordings and length")
        cat = np.concatenate
        return WindowIndex(a.recordings, cat([a.recording, b.recording]), cat([a.start, b.start]),
                           cat([a.label, b.label]), cat([a.boundary_dist_s, b.boundary_dist_s]),
                           cat([a.onset_dist_s, b.onset_dist_s]), a.n_times, a.sfreq)


def make_windows(recordings: list[CachedRecording] | tuple[CachedRecording, ...], window_s: float,
                 hop_s: float, min_overlap: float = 0.5) -> WindowIndex:
    """Every window of ``window_s`` seconds every ``hop_s`` seconds, in recording order.

    Windows that would run past a recording's end are dropped (a recording shorter than one
    window gives none).
    """
    recordings = tuple(recordings)
    if not recordings:
        raise ValueError("no recordings to cut into windows")
    sfreq = recordings[0].sfreq
    if any(abs(r.sfreq - sfreq) > 1e-6 for r in recordings):
        raise ValueError("recordings have different sampling rates; resample them in preprocessing")
    n_times = int(round(window_s * sfreq))
    hop = max(1, int(round(hop_s * sfreq)))
    parts = []
    for i, rec in enumerate(recordings):
        starts = np.arange(0, rec.n_samples - n_times + 1, hop, dtype=np.int64)
        t0 = starts / sfreq
        t1 = t0 + window_s
        label, bdist, odist = _annotate(t0, t1, rec.seizures, min_overlap)
        parts.append((np.full(starts.shape, i, np.int32), starts, label, bdist, odist))
    cols = [np.concatenate(c) for c in zip(*parts)]
    return WindowIndex(recordings, *cols, n_times=n_times, sfreq=float(sfreq))


def _annotate(t0: np.ndarray, t1: np.ndarray, seizures, min_overlap: float):
    n = t0.shape[0]
    label = np.zeros(n, np.int8)
    bdist = np.full(n, NO_SEIZURE_S, np.float32)
    odist = np.full(n, NO_SEIZURE_S, np.float32)
    if n == 0 or not seizures:
        return label, bdist, odist
    length = t1 - t0
    centre = (t0 + t1) / 2
    best_onset = np.full(n, np.inf)
    for on, off in seizures:
        overlap = np.clip(np.minimum(t1, off) - np.maximum(t0, on), 0, None)
        label |= (overlap >= min_overlap * np.minimum(length, off - on)).astype(np.int8) & (overlap > 0)
        for b in (on, off):
            d = np.where((t0 <= b) & (b <= t1), 0.0, np.minimum(np.abs(t0 - b), np.abs(t1 - b)))
            bdist = np.minimum(bdist, d.astype(np.float32))
        rel = centre - on
        closer = np.abs(rel) < np.abs(best_onset)
        best_onset = np.where(closer, rel, best_onset)
    odist = best_onset.astype(np.float32)
    return label, bdist, odist
