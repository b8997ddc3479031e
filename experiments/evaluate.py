"""Detection evaluation of one fold, the same for a learned model and an untrained baseline.

Every method hands in a table of per-window seizure probabilities (or scores mapped to [0, 1])
for the validation and the held-out recordings; from there everything is shared:

* the event threshold, chosen on the pooled validation patients (maximum event F1; ties: fewer
  false alarms, then the higher threshold) unless the config fixes one;
* events and SzCORE event and sample scores of the held-out recordings at that threshold;
* the threshold-free curve: event true positives and false alarms at every threshold of
  :data:`THRESHOLDS`, from which the sensitivity at 1 and 5 false alarms per 24 h is read;
* which annotated seizures were detected, for the breakdown by seizure duration;
* a chance level: the method's own detections (same number and durations per recording) placed
  at random, scored the same way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .events import Event, PostprocessConfig, probabilities_to_events
from .scoring import Counts, RecordingScore, ScoringParams, event_counts, score_recording

#: Thresholds of the threshold-free curve and of the threshold search.
THRESHOLDS: np.ndarray = np.round(np.arange(0.02, 0.99, 0.02), 2)

#: Seizure duration bins (s) of the sensitivity breakdown.
DURATION_BINS: tuple[tuple[float, float, str], ...] = (
    (0.0, 10.0, "<10 s"), (10.0, 30.0, "10-30 s"), (30.0, 60.0, "30-60 s"), (60.0, math.inf, ">60 s"))


def by_recording(table: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{recording_id: (start_s, probability)}`` of a prediction table."""
    rec = np.asarray(table["recording"])
    start = np.asarray(table["start_s"], dtype=float)
    prob = np.asarray(table["probability"], dtype=float)
    return {r: (start[rec == r], prob[rec == r]) for r in dict.fromkeys(rec.tolist())}


def detect(recordings, windows: dict, window_s: float, post: PostprocessConfig) -> dict[str, list[Event]]:
    """Events of each recording (a recording with no prediction has no event)."""
    out = {}
    for rec in recordings:
        start, prob = windows.get(rec.recording_id, (np.zeros(0), np.zeros(0)))
        out[rec.recording_id] = probabilities_to_events(start, prob, window_s, post, rec.duration_s)
    return out


def score(recordings, events: dict[str, list[Event]], params: ScoringParams) -> list[RecordingScore]:
    return [score_recording(r.recording_id, r.patient, list(r.seizures),
                            [(e.onset_s, e.offset_s) for e in events.get(r.recording_id, [])], r.duration_s, params)
            for r in recordings]


def threshold_curve(recordings, windows: dict, window_s: float, post: PostprocessConfig, params: ScoringParams,
                    thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Event counts summed over ``recordings`` at every threshold:
    ``{"thresholds", "tp", "fp", "ref", "hours"}`` (lists over thresholds; ref and hours fixed).
    Neighbouring thresholds often give the same events: those are scored once."""
    tp, fp = np.zeros(len(thresholds)), np.zeros(len(thresholds))
    ref = hours = 0.0
    for rec in recordings:
        start, prob = windows.get(rec.recording_id, (np.zeros(0), np.zeros(0)))
        seen: dict[tuple, Counts] = {}
        for k, t in enumerate(thresholds):
            evs = tuple((e.onset_s, e.offset_s) for e in
                        probabilities_to_events(start, prob, window_s, post.with_threshold(float(t)), rec.duration_s))
            if evs not in seen:
                seen[evs] = event_counts(list(rec.seizures), list(evs), rec.duration_s, params)
            c = seen[evs]
            tp[k] += c.tp
            fp[k] += c.fp
        c = next(iter(seen.values())) if seen else event_counts(list(rec.seizures), [], rec.duration_s, params)
        ref += c.ref
        hours += c.hours
    return {"thresholds": [float(t) for t in thresholds], "tp": tp.tolist(), "fp": fp.tolist(),
            "ref": float(ref), "hours": float(hours)}


def curve_f1(curve: dict) -> np.ndarray:
    tp, fp, ref = np.asarray(curve["tp"], float), np.asarray(curve["fp"], float), float(curve["ref"])
    denom = tp + fp + ref  # 2 tp + fp + (ref - tp): SzCORE's F1
    return np.divide(2 * tp, denom, out=np.full(tp.shape, np.nan), where=denom > 0)


def tune_threshold(curve: dict) -> float:
    """The threshold of maximum event F1 on a (validation) curve; ties: fewer false alarms, then
    the higher threshold. No seizure and no alarm at all: the highest threshold."""
    f1 = np.nan_to_num(curve_f1(curve), nan=-1.0)
    keys = [(f1[i], -curve["fp"][i], curve["thresholds"][i]) for i in range(len(f1))]
    return float(max(keys)[2])


def sensitivity_at(curve: dict, fa_per_24h: float) -> float:
    """The best event sensitivity among thresholds whose false-alarm rate is at most ``fa_per_24h``
    (0 when none is that quiet; NaN without annotated seizures)."""
    ref, hours = float(curve["ref"]), float(curve["hours"])
    if ref <= 0 or hours <= 0:
        return float("nan")
    rate = np.asarray(curve["fp"], float) / (hours / 24)
    ok = rate <= fa_per_24h + 1e-9
    return float(np.max(np.asarray(curve["tp"], float)[ok]) / ref) if ok.any() else 0.0


def add_curves(curves: Sequence[dict]) -> dict:
    """Pooled curve: counts summed over patients at each (shared) threshold."""
    curves = [c for c in curves if c]
    if not curves:
        return {}
    return {"thresholds": curves[0]["thresholds"],
            "tp": np.sum([c["tp"] for c in curves], axis=0).tolist(),
            "fp": np.sum([c["fp"] for c in curves], axis=0).tolist(),
            "ref": float(sum(c["ref"] for c in curves)), "hours": float(sum(c["hours"] for c in curves))}


def duration_bin(duration_s: float) -> str:
    return next(label for lo, hi, label in DURATION_BINS if lo <= duration_s < hi)


def seizure_detections(recordings, events: dict[str, list[Event]], params: ScoringParams) -> list[dict]:
    """Each annotated seizure, and whether a detection overlaps it within SzCORE's tolerances
    (``tolerance_start_s`` before the onset, ``tolerance_end_s`` after the offset)."""
    out = []
    for rec in recordings:
        for on, off in rec.seizures:
            lo, hi = on - params.tolerance_start_s, off + params.tolerance_end_s
            hit = [e for e in events.get(rec.recording_id, []) if e.offset_s > lo and e.onset_s < hi]
            out.append({"recording": rec.recording_id, "patient": rec.patient, "onset_s": float(on),
                        "offset_s": float(off), "duration_s": float(off - on), "bin": duration_bin(off - on),
                        "detected": bool(hit), "detected_onset_s": float(hit[0].onset_s) if hit else None})
    return out


def chance_counts(recordings, events: dict[str, list[Event]], params: ScoringParams, n_perm: int = 100,
                  seed: int = 0) -> dict:
    """Event counts when the method's own detections are placed at random: each detection keeps
    its duration and recording, its onset is uniform over the recording. ``{"tp": [n_perm],
    "fp": [n_perm], "ref", "hours"}`` summed over ``recordings``."""
    rng = np.random.default_rng(seed)
    tp, fp = np.zeros(n_perm), np.zeros(n_perm)
    ref = hours = 0.0
    for rec in recordings:
        durs = [min(e.duration_s, rec.duration_s) for e in events.get(rec.recording_id, [])]
        for k in range(n_perm):
            starts = rng.uniform(0, np.maximum(rec.duration_s - np.asarray(durs), 0)) if durs else []
            hyp = sorted((float(a), float(a + d)) for a, d in zip(starts, durs))
            s = event_counts(list(rec.seizures), hyp, rec.duration_s, params)
            tp[k] += s.tp
            fp[k] += s.fp
            if k == 0:
                ref += s.ref
                hours += s.hours
    return {"tp": tp.tolist(), "fp": fp.tolist(), "ref": ref, "hours": hours}


def window_auroc(recordings, windows: dict, window_s: float, min_overlap: float = 0.5) -> float:
    """AUROC of the window probabilities against the windows' labels (NaN with one class only)."""
    from datamodules.clips import window_labels

    from .localization import rank_auroc

    ys, ps = [], []
    for rec in recordings:
        start, prob = windows.get(rec.recording_id, (np.zeros(0), np.zeros(0)))
        ys.append(window_labels(np.asarray(start, float), window_s, rec.seizures, min_overlap))
        ps.append(prob)
    y, p = np.concatenate(ys) if ys else np.zeros(0), np.concatenate(ps) if ps else np.zeros(0)
    return rank_auroc(p, y)


def evaluate_method(val_recordings, val_windows: dict, test_recordings, test_windows: dict, window_s: float,
                    post: PostprocessConfig, params: ScoringParams, *, n_perm: int = 100, seed: int = 0,
                    min_overlap: float = 0.5) -> dict:
    """Everything a fold reports about one detection method (plain values, for metrics.json)."""
    val_curve = None
    if post.threshold == "auto":
        val_curve = threshold_curve(val_recordings, val_windows, window_s, post, params)
        post = post.with_threshold(tune_threshold(val_curve))
    events = detect(test_recordings, test_windows, window_s, post)
    scores = score(test_recordings, events, params)
    from dataclasses import asdict

    return {
        "threshold": float(post.threshold),
        "postprocess": asdict(post),
        "recordings": [asdict(s) for s in scores],
        "events": {rid: [[e.onset_s, e.offset_s, e.confidence] for e in evs] for rid, evs in events.items()},
        "curve": threshold_curve(test_recordings, test_windows, window_s, post, params),
        "val_curve": val_curve,
        "seizures": seizure_detections(test_recordings, events, params),
        "chance": chance_counts(test_recordings, events, params, n_perm=n_perm, seed=seed),
        "window_auroc": window_auroc(test_recordings, test_windows, window_s, min_overlap),
    }
