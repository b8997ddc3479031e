"""Patient-specific folds (``data.holdout=recording``): one seizure-bearing recording held out,
the network trained on the same patient's other recordings, validated on other patients; and the
summary, which keeps the patient as the unit when a patient has several folds."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from datamodules.datamodule import LOSODataModule
from datamodules.recording import DatasetError
from datamodules.sources import discover
from datamodules.splits import loso_split, recording_folds
from experiments.summary import chance_summary, method_summary


def _rec(patient, rid, seizures=(), annotated=True):
    return SimpleNamespace(patient=patient, recording_id=rid, seizures=tuple(seizures), annotated=annotated)


def test_recording_folds_need_a_second_seizure_bearing_recording_of_the_patient():
    recs = [_rec("a", "a_1", [(1, 2)]), _rec("a", "a_2"), _rec("a", "a_3", [(5, 9)]),
            _rec("b", "b_1", [(1, 2)]), _rec("b", "b_2"),                      # one seizure file: no fold
            _rec("c", "c_1", [(1, 2)]), _rec("c", "c_2", [(3, 4)], annotated=False),
            _rec("d", "d_1", [(1, 2)]), _rec("d", "d_2", [(3, 4)])]
    assert recording_folds(recs) == ["a_1", "a_3", "d_1", "d_2"]
    # a recording the cache skipped neither is a fold nor makes its patient's other one a fold
    assert recording_folds(recs, usable={"a_1", "a_2", "a_3", "d_1"}) == ["a_1", "a_3"]


def test_a_recording_fold_validates_on_the_same_patients_as_the_patients_loso_fold():
    patients = ["p1", "p2", "p3", "p4", "p5"]
    loso = loso_split(patients, "p3", 2, seed=4)
    fold = loso_split(patients, "p3", 2, seed=4, test_recording="p3_02")
    assert fold.val == loso.val and fold.test == ("p3",) and fold.train == ("p3",)
    # two patients are enough: nobody else needs to train
    assert loso_split(["p1", "p2"], "p1", 1, test_recording="p1_01").val == ("p2",)
    with pytest.raises(DatasetError, match="leaves no training patient"):
        loso_split(["p1", "p2"], "p1", 1)


def test_the_held_out_recording_is_all_the_test_split_and_nothing_of_training(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    recs = discover(root)
    dm = LOSODataModule(str(root), None, cache_dir=str(tmp_path), val_patients=1, batch_size=32, progress=False,
                        holdout="recording", test_recording="chb02_02")
    dm.setup("fit")
    assert dm.test_patient == "chb02"
    assert [r.recording_id for r in dm.split_recordings("test")] == ["chb02_02"]
    assert [r.recording_id for r in dm.split_recordings("train")] == ["chb02_01"]
    val = {r.patient for r in dm.split_recordings("val")}
    assert val and "chb02" not in val
    # its seizures are the held-out recording's, every second of it is predicted once
    truth = next(r for r in recs if r.recording_id == "chb02_02")
    assert [(e.onset_s, e.offset_s) for e in dm.seizure_events("test")] == list(truth.seizures)
    starts = np.concatenate([b["start_s"].numpy() for b in dm.predict_dataloader()])
    assert np.all(np.diff(starts) == dm.window_s) and starts[0] == 0.0
    assert dm.unusable_recordings("test") == []


def test_recording_holdout_refuses_what_it_cannot_do(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    with pytest.raises(ValueError, match="needs test_recording"):
        LOSODataModule(str(root), "chb01", holdout="recording")
    with pytest.raises(ValueError, match="needs holdout='recording'"):
        LOSODataModule(str(root), "chb01", test_recording="chb01_01")
    with pytest.raises(ValueError, match="holdout must be"):
        LOSODataModule(str(root), "chb01", holdout="seizure")
    dm = LOSODataModule(str(root), None, cache_dir=str(tmp_path), val_patients=1, progress=False,
                        holdout="recording", test_recording="chb09_01")
    with pytest.raises(DatasetError, match="recording 'chb09_01' is not in"):
        dm.setup("fit")
    # the patient's only other recording is seizure-free: nothing to learn the patient's seizures from
    recs = [dataclasses.replace(r, seizures=()) if r.recording_id == "chb01_02" else r for r in discover(root)]
    dm = LOSODataModule(str(root), None, cache_dir=str(tmp_path), val_patients=1, progress=False,
                        holdout="recording", test_recording="chb01_01", recordings=recs)
    with pytest.raises(DatasetError, match="no seizure-bearing recording besides chb01_01"):
        dm.setup("fit")


def _fold(patient, rid, tp, fp, ref, auroc, curve_tp, chance_tp):
    rec = {"recording_id": rid, "patient": patient,
           "event": {"tp": tp, "fp": fp, "ref": ref, "hours": 1.0},
           "sample": {"tp": tp, "fp": fp, "ref": ref, "hours": 1.0}}
    curve = {"thresholds": [0.9, 0.5, 0.1], "tp": curve_tp, "fp": [0, 1, 10], "ref": ref, "hours": 1.0}
    method = {"kind": "model", "recordings": [rec], "window_auroc": auroc, "threshold": 0.5, "curve": curve,
              "seizures": [], "chance": {"tp": chance_tp, "fp": [1, 1], "ref": ref}}
    return {"fold": rid, "patient": patient, "methods": {"lsn": method}}


def test_summary_keeps_the_patient_as_the_unit_over_several_recording_folds():
    folds = [_fold("p1", "p1_01", 1, 0, 1, 0.9, [0, 1, 1], [1, 0]),
             _fold("p1", "p1_02", 0, 2, 1, 0.7, [0, 0, 1], [0, 0]),
             _fold("p2", "p2_01", 1, 0, 1, 0.8, [1, 1, 1], [0, 0])]
    s = method_summary(folds, "lsn", fa_points=(30.0,), n_boot=50)
    p1 = s["per_patient"]["p1"]
    assert p1["recordings"] == 2 and p1["event"]["tp"] == 1 and p1["event"]["fp"] == 2 and p1["event"]["ref"] == 2
    assert p1["window_auroc"] == pytest.approx(0.8) and p1["threshold"] == [0.5, 0.5]
    # p1's own curve is the sum of its two folds': at 2 false alarms in 2 h (24 per 24 h), 1 of its
    # 2 seizures is found (the last fold alone would say 0 of 1)
    assert p1["sens_at_fa"]["30.0"] == pytest.approx(0.5)
    assert s["window_auroc"]["value"] == pytest.approx((0.8 + 0.8) / 2)
    assert len(s["per_patient"]) == 2
    # chance: counts of a patient's folds summed before the mean over patients (permutation 0:
    # p1 1 of 2 found, p2 0 of 1 -> 0.25; permutation 1: 0), not a mean over folds (1/3, then 0)
    ch = chance_summary([f["methods"]["lsn"] for f in folds], patients=["p1", "p1", "p2"])
    assert ch["sensitivity"]["mean"] == pytest.approx(0.125)
    assert chance_summary([f["methods"]["lsn"] for f in folds])["sensitivity"]["mean"] == pytest.approx(1 / 6)


def test_patient_specific_study_runs_one_fold_per_held_out_recording(tmp_path):
    import json

    from experiments.config import load_config
    from experiments.runner import run_experiment

    overrides = [f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                 f"runs_dir={tmp_path / 'runs'}", "run_id=ps", "synthetic.preset=easy", "synthetic.n_patients=3",
                 "synthetic.n_recordings=2", "synthetic.minutes=5.0", "data.val_patients=1",
                 "trainer.max_epochs=1", "trainer.min_epochs=1", "trainer.enable_progress_bar=false",
                 "activation_maps=null", "wandb=null", "folds=[chb01_01,chb01_02]"]
    assert run_experiment(load_config("chb_patient_specific", overrides, env={})) == 0
    run = tmp_path / "runs/chb_patient_specific/ps"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["folds_ok"] == ["chb01_01", "chb01_02"]
    # where the time went: every stage of every fold, the summary's own cost, all inside the wall time
    timing = summary["timing"]
    assert set(timing["folds"]) == {"fit_s", "predict_s", "scoring_s", "baselines_s", "localization_s",
                                    "saving_s", "panels_s"}
    assert timing["report_s"] > 0 and timing["wall_s"] >= timing["data_s"] + sum(
        v for k, v in timing["folds"].items() if k != "panels_s") - 1
    assert "2 held-out recordings of 1 patients" in (run / "summary.md").read_text()
    for rid in ("chb01_01", "chb01_02"):
        m = json.loads((run / "folds" / rid / "metrics.json").read_text())
        assert m["patient"] == "chb01" and [r["recording_id"] for r in m["recordings"]] == [rid]
    lsn = summary["methods"]["lsn"]
    assert list(lsn["per_patient"]) == ["chb01"] and lsn["per_patient"]["chb01"]["recordings"] == 2
    # a fold that is not a held-out recording is refused in one sentence
    bad = load_config("chb_patient_specific", overrides[:-1] + ["run_id=bad", "folds=[chb01]"], env={})
    from experiments.config import ConfigError
    with pytest.raises(ConfigError, match="not held-out recordings"):
        run_experiment(bad)
