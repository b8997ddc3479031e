"""Each number of the evaluation on small cases computed by hand: intervals and bounds,
localization scores, threshold curves and operating points, duration breakdown, chance level,
and the study summary built from them."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from experiments.evaluate import (
    chance_counts,
    curve_f1,
    duration_bin,
    evaluate_method,
    seizure_detections,
    sensitivity_at,
    threshold_curve,
    tune_threshold,
)
from experiments.events import Event, PostprocessConfig
from experiments.localization import rank_auroc, score_seizure, summarize
from experiments.scoring import ScoringParams
from experiments.summary import compare, localization_summary, method_summary, verdict
from experiments.uncertainty import bootstrap_mean, bootstrap_statistic, paired_difference, poisson_upper

EXACT = PostprocessConfig(smooth_s=0.0, threshold=0.5, min_duration_s=0.0, merge_gap_s=0.0)


@dataclass(frozen=True)
class Rec:
    recording_id: str
    patient: str
    duration_s: float
    seizures: tuple


# -- intervals and bounds ------------------------------------------------------------------------
def test_poisson_upper_bound_is_garwoods():
    assert poisson_upper(0, 24.0) == pytest.approx(2.9957, abs=1e-4)  # the "rule of three"
    assert poisson_upper(0, 2.5) == pytest.approx(2.9957 * 24 / 2.5, rel=1e-4)  # 0 FA in 2.5 h: <= 28.8/24 h
    assert poisson_upper(2, 24.0) == pytest.approx(6.2958, abs=1e-4)
    assert math.isnan(poisson_upper(1, 0.0))


def test_bootstrap_over_patients():
    same = bootstrap_mean([0.5, 0.5, 0.5, float("nan")])
    assert (same.value, same.lo, same.hi, same.n) == (0.5, 0.5, 0.5, 3)  # NaN skipped, no spread
    one = bootstrap_mean([0.7])
    assert one.value == 0.7 and math.isnan(one.lo)
    spread = bootstrap_mean([0.0, 1.0, 0.0, 1.0, 0.5, 0.5], seed=1)
    assert spread.lo < 0.5 < spread.hi and 0.0 <= spread.lo and spread.hi <= 1.0
    diff = paired_difference([0.9, 0.8, 0.85, 0.95], [0.5, 0.4, 0.5, 0.6])
    assert diff.value == pytest.approx(0.375) and diff.lo > 0
    pooled = bootstrap_statistic([(1, 2), (3, 4)], lambda g: sum(a for a, _ in g) / sum(b for _, b in g))
    assert pooled.value == pytest.approx(4 / 6)
    assert verdict(0.1, 0.3, "lsn", "line_length") == "lsn beats line_length"
    assert verdict(-0.3, -0.1, "lsn", "line_length") == "line_length beats lsn"
    assert "has not shown" in verdict(-0.1, 0.2, "lsn", "line_length")


# -- localization ---------------------------------------------------------------------------------
def test_localization_scores_by_hand():
    channels = ("A", "B", "C", "D")
    mask = [0, 1, 0, 1]
    r = score_seizure([0.9, 0.5, 0.1, 0.2], mask, channels)
    # top is A (not in SOZ); best SOZ channel B is 2nd; SOZ {0.5, 0.2} vs other {0.9, 0.1}: 2 of 4 pairs
    assert (r.top_channel, r.top1, r.rank, r.chance, r.auroc) == ("A", False, 2, 0.5, 0.5)
    assert score_seizure([0.1, 0.9, 0.0, 0.8], mask, channels).auroc == 1.0
    assert rank_auroc([1.0, 1.0], [1, 0]) == 0.5  # ties count half
    s = summarize([{"top1": True, "chance": 0.25, "rank": 1, "auroc": 1.0},
                   {"top1": False, "chance": 0.25, "rank": 3, "auroc": 0.5},
                   {"top1": False, "chance": 0.25, "missed": True}])  # an undetected seizure is a miss
    assert s["top1"] == pytest.approx(1 / 3) and s["chance_corrected"] == pytest.approx((1 / 3 - 0.25) / 0.75)
    assert s["rank"] == 2.0 and s["auroc"] == 0.75 and s["n"] == 3
    with pytest.raises(ValueError, match="marks no channel"):
        score_seizure([1, 2], [0, 0], ("A", "B"))


# -- detection: curves, operating points, breakdown, chance -----------------------------------------
def _one_recording():
    rec = Rec("r1", "p1", 1200.0, ((100.0, 130.0),))
    t = np.arange(0, 1200, 2.0)
    p = np.full(t.shape, 0.3)
    p[(t >= 100) & (t < 130)] = 0.9  # the seizure
    p[(t >= 500) & (t < 504)] = 0.6  # a false alarm that a threshold above 0.6 removes
    return rec, {"r1": (t, p)}


def test_threshold_curve_tuning_and_operating_points():
    rec, windows = _one_recording()
    params = ScoringParams()
    curve = threshold_curve([rec], windows, 2.0, EXACT, params, thresholds=[0.2, 0.5, 0.7, 0.95])
    # 0.2: the whole recording is one event, split by SzCORE into 300 s pieces: 1 hit, 3 false alarms
    assert curve["tp"] == [1.0, 1.0, 1.0, 0.0] and curve["fp"] == [3.0, 1.0, 0.0, 0.0]
    assert curve["ref"] == 1.0 and curve["hours"] == pytest.approx(1200 / 3600)
    assert curve_f1(curve).tolist() == pytest.approx([0.4, 2 / 3, 1.0, 0.0])
    assert tune_threshold(curve) == 0.7
    assert sensitivity_at(curve, 1.0) == 1.0  # 0 false alarms at 0.7
    quiet = dict(curve, fp=[3.0, 1.0, 1.0, 1.0])  # never quieter than 1 FA in 20 min
    assert sensitivity_at(quiet, 1.0) == 0.0 and sensitivity_at(quiet, 72.0) == 1.0
    tie = {"thresholds": [0.4, 0.6], "tp": [1.0, 1.0], "fp": [0.0, 0.0], "ref": 1.0, "hours": 1.0}
    assert tune_threshold(tie) == 0.6  # equal F1 and alarms: the higher threshold


def test_duration_bins_and_detection_within_tolerance():
    assert [duration_bin(d) for d in (6, 10, 29.9, 45, 61)] == ["<10 s", "10-30 s", "10-30 s", "30-60 s", ">60 s"]
    rec = Rec("r", "p", 3600.0, ((100.0, 108.0), (1000.0, 1100.0), (2000.0, 2040.0)))
    events = {"r": [Event(75.0, 80.0, 0.9),      # 20 s before onset: within the 30 s tolerance
                    Event(1190.0, 1200.0, 0.9)]}  # 90 s after the offset: outside the 60 s tolerance
    got = seizure_detections([rec], events, ScoringParams())
    assert [g["detected"] for g in got] == [True, False, False]
    assert got[0]["bin"] == "<10 s" and got[0]["detected_onset_s"] == 75.0


def test_chance_places_the_same_detections_at_random():
    rec = Rec("r", "p", 1000.0, ((100.0, 160.0),))
    everything = {"r": [Event(0.0, 1000.0, 1.0)]}
    c = chance_counts([rec], everything, ScoringParams(), n_perm=5)
    assert c["tp"] == [1.0] * 5 and c["ref"] == 1.0  # a whole-recording detection is found by chance too
    short = {"r": [Event(500.0, 502.0, 1.0)]}
    c = chance_counts([rec], short, ScoringParams(), n_perm=400, seed=3)
    # a 2 s alarm hits when it starts within [100 - 30 - 2, 160 + 60): p ~ 152 / 998
    assert np.mean(c["tp"]) == pytest.approx(152 / 998, abs=0.05)
    assert chance_counts([rec], {"r": []}, ScoringParams(), n_perm=3)["tp"] == [0.0, 0.0, 0.0]


def test_evaluate_method_and_study_summary():
    rec, windows = _one_recording()
    val = Rec("v1", "pv", 1200.0, ((300.0, 330.0),))
    t = np.arange(0, 1200, 2.0)
    pv = np.where((t >= 300) & (t < 330), 0.8, 0.2)
    post = PostprocessConfig(smooth_s=0.0, threshold="auto", min_duration_s=0.0, merge_gap_s=0.0)
    m = evaluate_method([val], {"v1": (t, pv)}, [rec], windows, 2.0, post, ScoringParams(), n_perm=10)
    assert 0.2 < m["threshold"] <= 0.8  # tuned on the validation recording only
    assert m["recordings"][0]["event"]["tp"] == 1.0 and m["window_auroc"] == 1.0
    fold = lambda p, f1_tp, fp: {"patient": p, "fold": p, "model_name": "lsn", "methods": {
        "lsn": {**m, "kind": "model", "recordings": [dict(m["recordings"][0], patient=p,
                                                          event={**m["recordings"][0]["event"], "fp": fp})]},
        "line_length": {**m, "kind": "baseline", "recordings": [dict(m["recordings"][0], patient=p, event={
            **m["recordings"][0]["event"], "tp": f1_tp, "fp": 2.0})]}}}
    folds = [fold(f"p{i}", 0.0, 0.0) for i in range(4)]
    lsn = method_summary(folds, "lsn", n_boot=200)
    assert lsn["aggregate"]["event"]["mean_over_patients"]["f1"]["mean"] == 1.0
    assert lsn["aggregate"]["event"]["pooled"]["fp_per_24h_upper"] == pytest.approx(poisson_upper(0, 4 * 1200 / 3600),
                                                                                  rel=1e-4)
    assert lsn["duration"]["30-60 s"] == {"detected": 4, "total": 4}
    ll = method_summary(folds, "line_length", n_boot=200)
    assert ll["aggregate"]["event"]["mean_over_patients"]["f1"]["mean"] == 0.0
    assert compare({"lsn": lsn, "line_length": ll}, "lsn", n_boot=200)["line_length"]["verdict"] == \
        "lsn beats line_length"


def test_localization_summary_patient_level():
    channels = ["A", "B", "C", "D"]
    seiz = lambda p, top_in: {"patient": p, "soz": ["X"], "chance": 0.25, "methods": {
        "m": {"top1": top_in, "rank": 1 if top_in else 2, "auroc": 1.0 if top_in else 0.6,
              "scores": [0.9, 0.1, 0.0, 0.0] if top_in else [0.1, 0.9, 0.0, 0.0]}}}
    folds = [{"channels": channels, "localization_seizures": [seiz("p1", True), seiz("p1", True), seiz("p2", False)]}]
    from eeg import montage

    real = montage.soz_channel_mask
    try:  # channel A alone touches the zone
        montage.soz_channel_mask = lambda ch, soz: np.array([1.0, 0, 0, 0], np.float32)
        loc = localization_summary(folds, n_boot=200)
    finally:
        montage.soz_channel_mask = real
    r = loc["methods"]["m"]
    assert r["top1"] == pytest.approx(2 / 3) and r["per_patient_top1"] == {"p1": 1.0, "p2": 0.0}
    assert r["patient_top1"] == 0.5 and loc["n_patients"] == 2


def test_a_detector_no_better_than_its_detections_placed_at_random_is_called_so():
    from experiments.summary import chance_verdict

    def method(f1, chance_hi):
        return {"aggregate": {"event": {"mean_over_patients": {"f1": {"mean": f1}}}},
                "chance": {"f1": {"mean": chance_hi - 0.02, "lo": 0.0, "hi": chance_hi}}}

    assert "NOT above its chance level" in chance_verdict(method(0.41, 0.42), "lsn")
    assert "NOT above" in chance_verdict(method(0.42, 0.42), "lsn")
    assert chance_verdict(method(0.59, 0.26), "lsn").startswith("lsn is above its chance level")
    assert chance_verdict({"aggregate": {}, "chance": {}}, "lsn") is None


def test_timing_says_which_folds_record_their_stages():
    # a resumed run whose first fold was written before the stage breakdown existed: the stage
    # sums cover only the folds that have one, and the text says so instead of passing them off
    # as the whole study's
    from experiments.report import _timing, summary_markdown

    old = {"fit_seconds": 300.0, "total_seconds": 330.0}
    new = {"fit_seconds": 100.0, "total_seconds": 120.0, "timing": {"fit_s": 100.0, "predict_s": 15.0}}
    t = _timing([old, new], wall_seconds=130.0, data_seconds=2.0)
    assert t["training_s"] == 400.0 and t["evaluation_s"] == 50.0
    assert t["folds"] == {"fit_s": 100.0, "predict_s": 15.0} and (t["folds_timed"], t["folds_total"]) == (1, 2)
    text = summary_markdown({"name": "s", "run_id": "r", "wall_seconds": 130.0, "timing": t, "folds_ok": [],
                             "folds_failed": []})
    assert "Wall time of this invocation: 2.2 min. Summed over its folds" in text
    assert "training 6.7 min" in text
    assert "Summed over the 1 of 2 folds that record stages: training 100 s, prediction 15 s." in text
    t_all = _timing([new, new], wall_seconds=25.0, data_seconds=0.0)
    text = summary_markdown({"name": "s", "run_id": "r", "wall_seconds": 25.0, "timing": t_all, "folds_ok": [],
                             "folds_failed": []})
    assert "Wall time of this invocation: 25 s." in text and "Summed over folds: training 200 s" in text


def test_seeds_summary_pairs_the_model_with_its_baselines_per_seed_and_averaged(tmp_path):
    # two seeds of a 3-patient study: each patient's F1 is averaged over the seeds before the
    # paired bootstrap over patients, so the seed-averaged difference is the mean of the per-seed ones
    import json

    from experiments.report import aggregate_seeds

    def run(seed, lsn, ll, top1):
        methods = {name: {"per_patient": {p: {"event": {"f1": f}} for p, f in zip("abc", f1s)},
                          "aggregate": {"event": {"mean_over_patients": {"f1": {"mean": float(np.mean(f1s))}},
                                                  "pooled": {"f1": 0.5, "fp_per_24h": 3.0}}},
                          "window_auroc": {"value": 0.9}}
                   for name, f1s in (("lsn", lsn), ("line_length", ll))}
        loc = {"methods": {"lsn": {"top1": float(np.mean(top1)), "per_patient_top1": dict(zip("abc", top1))},
                           "earliest_rise": {"top1": 0.5, "per_patient_top1": dict(zip("abc", [0.5] * 3))}}}
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({
            "model": "lsn", "methods": methods, "localization": loc, "chance_verdict": f"verdict {seed}",
            "comparison": {"line_length": {"f1_difference": {"value": 0.1, "lo": -0.1, "hi": 0.3}}},
            "localization_comparison": {}}))
        return d

    runs = [run(0, [0.8, 0.6, 0.7], [0.2, 0.3, 0.1], [1.0, 0.0, 1.0]),
            run(1, [0.6, 0.8, 0.7], [0.4, 0.1, 0.3], [1.0, 1.0, 1.0])]
    text = aggregate_seeds(tmp_path / "agg", runs, [0, 1])
    out = json.loads((tmp_path / "agg/seeds_summary.json").read_text())
    c = out["seed_averaged"]["comparison"]["line_length"]
    assert c["f1_difference"]["value"] == pytest.approx(0.7 - 0.2333333, abs=1e-6)
    assert c["verdict"] == "lsn beats line_length"
    top1 = out["seed_averaged"]["localization_comparison"]["earliest_rise"]["top1_difference"]
    assert top1["value"] == pytest.approx((1.0 + 0.5 + 1.0) / 3 - 0.5)
    assert out["methods"]["lsn"]["event F1 (mean over patients)"]["values"] == pytest.approx([0.7, 0.7])
    assert "| line_length | event F1 minus | 0.10 [-0.10, 0.30] | 0.10 [-0.10, 0.30] | 0.47 [" in text
    assert "| earliest_rise | top-1 in SOZ minus | n/a | n/a | 0.33 [" in text
    assert "- lsn beats line_length (detection, averaged over seeds)" in text
    assert "- seed 1: verdict 1" in text
