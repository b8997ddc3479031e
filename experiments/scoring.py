"""SzCORE scoring with the ``timescoring`` library (pinned 0.0.7: scores changed between versions).

Per recording: event scoring (SzCORE defaults: 30 s tolerance before onset, 60 s after, events
closer than 90 s merged, longer than 300 s split) and sample scoring at 1 Hz. Counts are summed
per patient, metrics computed per patient, then averaged over patients (NaN skipped, as the
SzCORE benchmark does) and pooled over all recordings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from timescoring import scoring
from timescoring.annotations import Annotation

METRICS = ("sensitivity", "precision", "f1", "fp_per_24h")


@dataclass(frozen=True)
class Counts:
    """What scoring counts: true positives, false positives, reference events (or samples),
    hours scored."""

    tp: float = 0.0
    fp: float = 0.0
    ref: float = 0.0
    hours: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.ref + other.ref, self.hours + other.hours)

    def metrics(self) -> dict:
        sens = self.tp / self.ref if self.ref else math.nan
        prec = self.tp / (self.tp + self.fp) if (self.tp + self.fp) else math.nan
        denom = 2 * self.tp + self.fp + (self.ref - self.tp)
        f1 = 2 * self.tp / denom if denom else math.nan
        fpr = self.fp / (self.hours / 24) if self.hours else math.nan
        return {"sensitivity": sens, "precision": prec, "f1": f1, "fp_per_24h": fpr}


@dataclass(frozen=True)
class RecordingScore:
    recording_id: str
    patient: str
    event: Counts
    sample: Counts


@dataclass(frozen=True)
class ScoringParams:
    """SzCORE scoring settings (its defaults): event tolerances before/after an annotated onset,
    minimum overlap, events longer than ``max_event_duration_s`` split and events closer than
    ``min_duration_between_events_s`` merged; sample scoring at ``sample_fs`` Hz."""

    tolerance_start_s: float = 30.0
    tolerance_end_s: float = 60.0
    min_overlap: float = 0.0
    max_event_duration_s: float = 300.0
    min_duration_between_events_s: float = 90.0
    sample_fs: int = 1

    def __post_init__(self):
        for name in ("tolerance_start_s", "tolerance_end_s", "min_duration_between_events_s"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.min_overlap) <= 1.0:
            raise ValueError(f"min_overlap must be in [0, 1], got {self.min_overlap!r}")
        if float(self.max_event_duration_s) <= 0:
            raise ValueError(f"max_event_duration_s must be > 0, got {self.max_event_duration_s!r}")
        if int(self.sample_fs) < 1:
            raise ValueError(f"sample_fs must be at least 1 Hz, got {self.sample_fs!r}")

    def to_timescoring(self):
        return scoring.EventScoring.Parameters(
            toleranceStart=self.tolerance_start_s, toleranceEnd=self.tolerance_end_s,
            minOverlap=self.min_overlap, maxEventDuration=self.max_event_duration_s,
            minDurationBetweenEvents=self.min_duration_between_events_s)


def written(x: float) -> float:
    """A time as the events TSVs hold it (two decimals), so scores in process and from the files agree."""
    return float(f"{x:.2f}")


def event_mask(events: list[tuple[float, float]], duration_s: float, fs: int = 1) -> np.ndarray:
    """The binary mask the SzCORE evaluator builds from an events TSV: ``int(recordingDuration * fs)``
    samples, each event ``[int(onset * fs), int((onset + duration) * fs))`` (truncated, not
    rounded), with onset, duration and recording duration at the TSV's two decimals."""
    mask = np.zeros(int(written(duration_s) * fs), dtype=bool)
    for on, off in events:
        on = max(0.0, written(on))
        dur = written(off - on)
        if dur > 0:
            mask[int(on * fs):int((on + dur) * fs)] = True
    return mask


def event_counts(reference: list[tuple[float, float]], hypothesis: list[tuple[float, float]], duration_s: float,
                 params: ScoringParams = ScoringParams()) -> Counts:
    """Event scoring only (what threshold curves need, many times over)."""
    fs = int(params.sample_fs)
    ref_mask = event_mask(reference, duration_s, fs)
    if ref_mask.size == 0:
        return Counts(hours=duration_s / 3600)
    ev = scoring.EventScoring(Annotation(ref_mask, fs), Annotation(event_mask(hypothesis, duration_s, fs), fs),
                              params.to_timescoring())
    return Counts(float(ev.tp), float(ev.fp), float(ev.refTrue), ref_mask.size / fs / 3600)


def score_recording(recording_id: str, patient: str, reference: list[tuple[float, float]],
                    hypothesis: list[tuple[float, float]], duration_s: float,
                    params: ScoringParams = ScoringParams()) -> RecordingScore:
    """Event and sample scores of one recording (events in seconds), on the masks the SzCORE
    evaluator would build from the events TSVs (:func:`event_mask`)."""
    fs = int(params.sample_fs)
    ref_mask = event_mask(reference, duration_s, fs)
    hyp_mask = event_mask(hypothesis, duration_s, fs)
    if ref_mask.size == 0:  # a recording shorter than one sample at fs: nothing to score
        return RecordingScore(recording_id, patient, Counts(hours=duration_s / 3600), Counts(hours=duration_s / 3600))
    ref, hyp = Annotation(ref_mask, fs), Annotation(hyp_mask, fs)
    ev = scoring.EventScoring(ref, hyp, params.to_timescoring())
    sa = scoring.SampleScoring(ref, hyp, fs=fs)
    hours = ref_mask.size / fs / 3600  # the scored duration, as the evaluator's false-alarm rate uses it
    return RecordingScore(recording_id, patient,
                          Counts(float(ev.tp), float(ev.fp), float(ev.refTrue), hours),
                          Counts(float(sa.tp), float(sa.fp), float(sa.refTrue), hours))


def per_patient(scores: list[RecordingScore]) -> dict[str, dict]:
    """Counts summed over each patient's recordings, then metrics: {patient: {event: {...}, sample: {...}}}."""
    out: dict[str, dict] = {}
    for s in scores:
        d = out.setdefault(s.patient, {"event": Counts(), "sample": Counts(), "recordings": 0})
        d["event"] = d["event"] + s.event
        d["sample"] = d["sample"] + s.sample
        d["recordings"] += 1
    return {p: {"event": {**d["event"].metrics(), **_counts(d["event"])},
                "sample": {**d["sample"].metrics(), **_counts(d["sample"])},
                "recordings": d["recordings"]} for p, d in sorted(out.items())}


def _counts(c: Counts) -> dict:
    return {"tp": c.tp, "fp": c.fp, "ref": c.ref, "hours": round(c.hours, 4)}


def aggregate(patients: dict[str, dict], scores: list[RecordingScore]) -> dict:
    """Mean and sd over patients (NaN skipped) and pooled totals, for event and sample scoring."""
    out = {}
    for level in ("event", "sample"):
        agg = {}
        for m in METRICS:
            vals = np.array([patients[p][level][m] for p in patients], dtype=float)
            finite = vals[np.isfinite(vals)]
            agg[m] = {"mean": float(finite.mean()) if finite.size else math.nan,
                      "sd": float(finite.std(ddof=0)) if finite.size else math.nan,
                      "n": int(finite.size)}
        total = Counts()
        for s in scores:
            total = total + getattr(s, level)
        out[level] = {"mean_over_patients": agg, "pooled": {**total.metrics(), **_counts(total)}}
    return out
