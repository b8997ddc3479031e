"""From window probabilities to seizure events, and the SzCORE hypothesis files that hold them.

Post-processing (all configurable): moving-average smoothing of the window probabilities,
threshold, merge of events closer than a gap, then removal of events shorter than a minimum
duration. Events are written as BIDS ``events.tsv`` (the SzCORE format): onset, duration,
eventType, confidence, channels, dateTime, recordingDuration.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

BIDS_COLUMNS = ("onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration")


@dataclass(frozen=True)
class PostprocessConfig:
    """How probabilities become events.

    smooth_s : moving-average length over window probabilities (0 = none)
    threshold : probability above which a window is ictal, or ``"auto"``: the runner picks it on
        the validation patients (maximum event F1) and stores it in the checkpoint
    min_duration_s : events shorter than this are dropped (after merging)
    merge_gap_s : events separated by less than this are joined
    """

    smooth_s: float = 6.0
    threshold: float | Literal["auto"] = "auto"
    min_duration_s: float = 4.0
    merge_gap_s: float = 10.0

    def __post_init__(self):
        if self.threshold != "auto" and not (isinstance(self.threshold, (int, float))
                                             and 0.0 < float(self.threshold) < 1.0):
            raise ValueError(f"threshold must be a probability in (0, 1) or 'auto', got {self.threshold!r}")
        for name in ("smooth_s", "min_duration_s", "merge_gap_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) < 1e6:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {v!r}")

    def with_threshold(self, threshold: float) -> PostprocessConfig:
        return replace(self, threshold=float(threshold))


@dataclass(frozen=True)
class Event:
    onset_s: float
    offset_s: float
    confidence: float
    channels: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.offset_s - self.onset_s


def smooth(prob: np.ndarray, hop_s: float, smooth_s: float) -> np.ndarray:
    k = int(round(smooth_s / hop_s))
    if k <= 1:
        return np.asarray(prob, dtype=float)
    kernel = np.ones(k) / k
    padded = np.pad(np.asarray(prob, dtype=float), (k // 2, k - 1 - k // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def probabilities_to_events(start_s: np.ndarray, prob: np.ndarray, window_s: float,
                            cfg: PostprocessConfig = PostprocessConfig(threshold=0.5),
                            duration_s: float | None = None) -> list[Event]:
    """Events of one recording from its window probabilities (windows in time order).

    Each window covers ``[start, start + window_s)``; an event spans its ictal windows.
    """
    if cfg.threshold == "auto":
        raise ValueError("the threshold is 'auto': tune it first (experiments.evaluate.tune_threshold)")
    start_s = np.asarray(start_s, dtype=float)
    prob = np.asarray(prob, dtype=float)
    if start_s.size == 0:
        return []
    order = np.argsort(start_s, kind="stable")
    start_s, prob = start_s[order], prob[order]
    hop = float(np.median(np.diff(start_s))) if start_s.size > 1 else window_s
    p = smooth(prob, hop, cfg.smooth_s)
    ictal = p >= cfg.threshold
    events: list[list[float]] = []
    idx = np.flatnonzero(ictal)
    if idx.size:
        breaks = np.flatnonzero(np.diff(idx) > 1)
        for seg in np.split(idx, breaks + 1):
            on, off = start_s[seg[0]], start_s[seg[-1]] + window_s
            conf = float(p[seg].max())
            if events and on - events[-1][1] < cfg.merge_gap_s:
                events[-1][1] = off
                events[-1][2] = max(events[-1][2], conf)
            else:
                events.append([on, off, conf])
    end = duration_s if duration_s is not None else start_s[-1] + window_s
    return [Event(float(a), float(min(b, end)), round(c, 4)) for a, b, c in events
            if min(b, end) - a >= cfg.min_duration_s]


def write_events_tsv(path: str | Path, events: list[Event], recording_duration_s: float,
                     date_time: str = "2000-01-01 00:00:00", event_type: str = "sz") -> Path:
    """Write SzCORE hypothesis events (BIDS events.tsv). A recording with no event gets one
    ``bckg`` row spanning it, as SzCORE annotations do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [(f"{e.onset_s:.2f}", f"{e.duration_s:.2f}", event_type, f"{e.confidence:.4f}",
             ",".join(e.channels) or "n/a", date_time, f"{recording_duration_s:.2f}") for e in events]
    if not rows:
        rows = [("0.00", f"{recording_duration_s:.2f}", "bckg", "n/a", "n/a", date_time,
                 f"{recording_duration_s:.2f}")]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(BIDS_COLUMNS)
        w.writerows(rows)
    return path


def read_events_tsv(path: str | Path) -> tuple[list[tuple[float, float]], float]:
    """Seizure (onset, offset) pairs of a BIDS events.tsv and its recording duration."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    events = [(float(r["onset"]), float(r["onset"]) + float(r["duration"]))
              for r in rows if r["eventType"].lower().startswith("sz")]
    duration = float(rows[0]["recordingDuration"]) if rows else 0.0
    return events, duration
