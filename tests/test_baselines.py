"""The untrained baselines on small hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.baselines import (
    DEFAULT_ONSET_WINDOW_S,
    LineLengthDetector,
    earliest_rise_scores,
    largest_amplitude_scores,
    line_length,
    localization_chance,
    onset_window,
)


def test_line_length_numpy_and_torch():
    x = np.array([[0.0, 1.0, -1.0, -1.0], [2.0, 2.0, 2.0, 2.0]])
    assert line_length(x).tolist() == [3.0, 0.0]  # |1| + |-2| + |0|; a flat channel has none
    batch = np.stack([x, 2 * x])  # (..., C, T)
    assert line_length(batch).tolist() == [[3.0, 0.0], [6.0, 0.0]]
    t = line_length(torch.tensor(batch, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.tolist() == [[3.0, 0.0], [6.0, 0.0]]


def test_detector_windows_and_scores_by_hand():
    # 2 channels, windows of 4 samples; channel 0 alternates 0/1 (line length 3 per window of
    # 4), except the third window where it alternates 0/4 (line length 12); channel 1 is a ramp
    # (line length 3 per window)
    ch0 = np.array([0, 1, 0, 1] * 2 + [0, 4, 0, 4] + [0, 1, 0, 1], dtype=float)
    ch1 = np.arange(16, dtype=float)
    det = LineLengthDetector(n_chans=2, n_times=4, sfreq=4.0, top_k=1)
    assert det.window_s == 1.0
    assert det.window_starts(16).tolist() == [0, 4, 8, 12]
    assert det.window_starts(16, hop=2).tolist() == [0, 2, 4, 6, 8, 10, 12]
    ll = det.window_line_length(np.stack([ch0, ch1]))
    assert ll.tolist() == [[3, 3], [3, 3], [12, 3], [3, 3]]
    # medians 3 and 3 -> ratios; top-1 channel
    assert det.score_recording(np.stack([ch0, ch1])).tolist() == [1.0, 1.0, 4.0, 1.0]
    both = LineLengthDetector(2, 4, 4.0, top_k=2)
    assert both.score_recording(np.stack([ch0, ch1])).tolist() == [1.0, 1.0, 2.5, 1.0]
    # hop of 2 samples: windows start at 0, 2, ..., 12; the window from 6 straddles the jump
    scores = det.score_recording(np.stack([ch0, ch1]), hop=2)
    assert scores.shape == (7,) and scores[4] == max(scores)


def test_detector_divides_by_each_channels_own_median():
    """A naturally busy channel (10x the line length everywhere) does not dominate."""
    rng = np.random.default_rng(0)
    quiet = rng.standard_normal(4000)
    busy = 10 * rng.standard_normal(4000)
    quiet[2000:2200] *= 6  # the event is on the quiet channel
    det = LineLengthDetector(2, 200, 100.0, top_k=1)
    s = det.score_recording(np.stack([quiet, busy]))
    assert int(np.argmax(s)) == 10 and s[10] > 4


def test_detector_edge_cases():
    det = LineLengthDetector(1, 10, 10.0, top_k=1)
    assert det.score_recording(np.zeros((1, 5))).shape == (0,)  # shorter than a window
    assert det.score_recording(np.zeros((1, 30))).tolist() == [0.0, 0.0, 0.0]  # flat: median 0, score 0
    with pytest.raises(ValueError, match=r"shape \(1, n_samples\)"):
        det.score_recording(np.zeros((2, 30)))
    with pytest.raises(ValueError, match="top_k"):
        LineLengthDetector(2, 10, 10.0, top_k=3)
    with pytest.raises(ValueError, match="hop"):
        det.window_starts(30, hop=0)


def test_onset_window():
    assert DEFAULT_ONSET_WINDOW_S == (-5.0, 10.0)
    assert onset_window(1000, 100.0, 5000) == (500, 2000)
    assert onset_window(200, 100.0, 5000) == (0, 1200)  # cut at the recording start
    assert onset_window(4500, 100.0, 5000) == (4000, 5000)
    with pytest.raises(ValueError, match="outside"):
        onset_window(9000, 100.0, 5000)


def test_largest_amplitude_is_rms_per_channel():
    seg = np.array([[3.0, -3.0, 3.0, -3.0], [0.0, 0.0, 0.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
    assert largest_amplitude_scores(seg).tolist() == [3.0, 2.0, 1.0]


def test_earliest_rise_finds_the_first_sustained_rise():
    sf = 10.0
    n = 600  # 60 s; onset at 40 s; onset window 35..50 s; baseline 5..35 s
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, n))
    onset = 400
    x[0, 420:] *= 4  # rises 7 s into the window (42 s)
    x[1, 380:] *= 4  # rises at 38 s: 3 s into the window, first
    x[2, 360:] *= 4  # rises at 36 s, 1 s into the window: earliest
    x[3, 355:358] += 50  # a brief blink-like jump: never a sustained rise
    s = earliest_rise_scores(x, sf, onset)
    assert s.shape == (4,)
    assert s[2] > s[1] > s[0] > s[3]
    assert s[1] == pytest.approx(-(3.0 - 0.75), abs=0.3)  # a 1 s power window reaches 38 s ~0.25-0.75 s early
    assert s[3] < -15.0  # never rose: below every riser (window of 15 s)
    with pytest.raises(ValueError, match="baseline"):
        earliest_rise_scores(x, sf, 50)  # onset window starts at 0 s: no baseline before it


def test_localization_chance():
    assert localization_chance([1, 1, 0, 0, 0, 0, 0, 0]) == 0.25
    assert localization_chance(np.array([True, False, False, False])) == 0.25
    assert localization_chance(np.zeros(18)) == 0.0
    with pytest.raises(ValueError):
        localization_chance([])


def test_scorer_windows_reuses_a_recordings_scores_only_while_rule_and_file_are_the_same(tiny_corpus, tmp_path):
    """A validation patient of one fold is scored again in the next: the second time is read
    from memory, unless the rule's parameters or the cache file changed."""
    import os

    from datamodules.datamodule import LOSODataModule
    from experiments import baselines as bl
    from lightning_modules.baselines import LineLengthDetector

    root, _ = tiny_corpus
    dm = LOSODataModule(str(root), "chb01", cache_dir=str(tmp_path), val_patients=1, progress=False)
    dm.setup("fit")
    recs = dm.split_recordings("val")
    calls = []
    rule = LineLengthDetector(18, 512, 256.0)
    real = rule.score_recording
    rule.score_recording = lambda x: calls.append(1) or real(x)
    bl._SCORED.clear()
    first = bl.scorer_windows(rule, recs)
    again = bl.scorer_windows(rule, recs)
    assert len(calls) == len(recs)
    for rid in first:
        np.testing.assert_array_equal(first[rid][1], again[rid][1])
    again[recs[0].recording_id][1][:] = -1  # callers own their arrays
    assert (bl.scorer_windows(rule, recs)[recs[0].recording_id][1] >= 0).all()
    other = LineLengthDetector(18, 512, 256.0, top_k=3)
    other.score_recording = lambda x: calls.append(1) or LineLengthDetector.score_recording(other, x)
    bl.scorer_windows(other, recs)
    assert len(calls) == 2 * len(recs)
    os.utime(recs[0].h5_path, ns=(1, 1))  # the cache file was rewritten
    bl.scorer_windows(rule, recs[:1])
    assert len(calls) == 2 * len(recs) + 1
