"""Window labels and distances, LOSO splits (no leak), the balanced sampler."""
from __future__ import annotations

import numpy as np
import pytest

from datamodules.cache import CachedRecording
from datamodules.datamodule import BalancedWindowSampler
from datamodules.recording import DatasetError
from datamodules.splits import loso_split
from datamodules.windows import NO_SEIZURE_S, make_windows


def _rec(rid, seconds, seizures=()):
    return CachedRecording("p", rid, int(seconds * 256), 256.0, ("FP1-F7",), tuple(seizures), None, "x.h5")


def test_labels_follow_overlap_rule():
    w = make_windows([_rec("a", 100, [(10.0, 21.0)])], window_s=2.0, hop_s=2.0, min_overlap=0.5)
    assert len(w) == 50 and w.n_times == 512
    starts = w.start_s()
    expected = [(min(s + 2, 21) - max(s, 10)) >= 1.0 for s in starts]
    np.testing.assert_array_equal(w.label.astype(bool), expected)
    assert w.label.sum() == 5 + 1  # windows 10-12 ... 18-20 fully, 20-22 overlaps 1 s


def test_boundary_and_onset_distances():
    w = make_windows([_rec("a", 60, [(20.0, 30.0)])], 2.0, 1.0)
    i = int(np.flatnonzero(w.start_s() == 10.0)[0])
    assert w.boundary_dist_s[i] == pytest.approx(8.0)  # window 10-12, onset at 20
    assert w.onset_dist_s[i] == pytest.approx(11.0 - 20.0)
    j = int(np.flatnonzero(w.start_s() == 19.0)[0])
    assert w.boundary_dist_s[j] == 0.0  # the onset falls inside 19-21
    k = int(np.flatnonzero(w.start_s() == 33.0)[0])
    assert w.boundary_dist_s[k] == pytest.approx(3.0)  # offset at 30
    none = make_windows([_rec("b", 10)], 2.0, 2.0)
    assert (none.boundary_dist_s == NO_SEIZURE_S).all() and (none.label == 0).all()


def test_short_recording_and_last_partial_window():
    w = make_windows([_rec("a", 7.5), _rec("b", 1.0)], 2.0, 2.0)
    assert list(w.start_s()) == [0.0, 2.0, 4.0]  # no window runs past the end; 'b' gives none


def test_loso_never_leaks_the_held_out_patient():
    patients = ["chb01", "chb02", "chb03", "chb04", "chb05"]
    for test in patients:
        s = loso_split(patients, test, 1, seed=0)
        assert s.test == (test,)
        assert test not in s.val and test not in s.train
        assert set(s.val).isdisjoint(s.train)
        assert set(s.val) | set(s.train) | {test} == set(patients)
    assert loso_split(patients, "chb03", 2, seed=1) == loso_split(patients, "chb03", 2, seed=1)
    with pytest.raises(DatasetError, match="chb21"):
        loso_split(patients, "chb21")  # chb21 is chb01: sources merge it, it is no separate patient
    with pytest.raises(DatasetError, match="no training patient"):
        loso_split(["a", "b"], "a", 1)


def test_balanced_sampler_ratio_and_determinism():
    labels = np.array([1] * 10 + [0] * 1000)
    s = BalancedWindowSampler(labels, ratio=3, seed=4)
    s.set_epoch(0)
    a = list(s)
    assert len(a) == 40 and sum(labels[a]) == 10 and len(set(a)) == 40
    s.set_epoch(0)
    assert list(s) == a
    s.set_epoch(1)
    assert list(s) != a
