"""Post-processing into events, SzCORE hypothesis files, and timescoring-based scores."""
from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.events import PostprocessConfig, probabilities_to_events, read_events_tsv, write_events_tsv
from experiments.scoring import aggregate, per_patient, score_recording


def test_threshold_merge_and_min_duration():
    start = np.arange(0, 600, 2.0)
    prob = np.zeros_like(start)
    prob[(start >= 100) & (start < 140)] = 0.9  # a 40 s seizure
    prob[(start >= 146) & (start < 150)] = 0.9  # 6 s later: merged into it
    prob[(start >= 400) & (start < 404)] = 0.9  # a 4 s blip: too short
    cfg = PostprocessConfig(smooth_s=0, threshold=0.5, min_duration_s=8, merge_gap_s=10)
    events = probabilities_to_events(start, prob, 2.0, cfg)
    assert [(e.onset_s, e.offset_s) for e in events] == [(100.0, 150.0)]
    assert events[0].confidence == pytest.approx(0.9)


def test_smoothing_removes_isolated_windows():
    start = np.arange(0, 100, 2.0)
    prob = np.zeros_like(start)
    prob[10] = 1.0
    cfg = PostprocessConfig(smooth_s=6, threshold=0.5, min_duration_s=0)
    assert probabilities_to_events(start, prob, 2.0, cfg) == []


def test_events_tsv_round_trip(tmp_path):
    cfg = PostprocessConfig(smooth_s=0, threshold=0.5, min_duration_s=0, merge_gap_s=0)
    start = np.arange(0, 60, 2.0)
    prob = (start >= 20) * (start < 30) * 0.8
    events = probabilities_to_events(start, prob, 2.0, cfg)
    p = write_events_tsv(tmp_path / "sub_events.tsv", events, 60.0)
    header = p.read_text().splitlines()[0].split("\t")
    assert header == ["onset", "duration", "eventType", "confidence", "channels", "dateTime", "recordingDuration"]
    assert read_events_tsv(p) == ([(20.0, 30.0)], 60.0)
    empty = write_events_tsv(tmp_path / "none_events.tsv", [], 60.0)
    assert "bckg" in empty.read_text() and read_events_tsv(empty) == ([], 60.0)


def test_szcore_event_scoring_tolerances():
    # detection starting 25 s early and ending 50 s late is still one true positive, no false alarm
    s = score_recording("r", "p", [(1000, 1060)], [(975, 1110)], 3600)
    assert (s.event.tp, s.event.fp, s.event.ref) == (1, 0, 1)
    # a detection far away is a false alarm; the missed seizure a false negative
    s = score_recording("r", "p", [(1000, 1060)], [(2000, 2030)], 3600)
    assert (s.event.tp, s.event.fp) == (0, 1)
    m = s.event.metrics()
    assert m["sensitivity"] == 0 and m["fp_per_24h"] == pytest.approx(24.0)
    # sample scoring at 1 Hz counts seconds
    s = score_recording("r", "p", [(100, 160)], [(130, 190)], 600)
    assert (s.sample.tp, s.sample.fp, s.sample.ref) == (30, 30, 60)


def test_per_patient_mean_skips_nan_and_pools():
    a = score_recording("a1", "A", [(100, 160)], [(100, 160)], 3600)
    b = score_recording("b1", "B", [], [(500, 520)], 3600)  # no seizure: sensitivity NaN
    pp = per_patient([a, b])
    assert math.isnan(pp["B"]["event"]["sensitivity"]) and pp["A"]["event"]["sensitivity"] == 1
    agg = aggregate(pp, [a, b])
    assert agg["event"]["mean_over_patients"]["sensitivity"] == {"mean": 1.0, "sd": 0.0, "n": 1}
    assert agg["event"]["pooled"]["fp"] == 1 and agg["event"]["pooled"]["precision"] == 0.5
