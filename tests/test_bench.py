"""Smoke test of the ``make bench`` harness: every section on a tiny corpus, ours only.

The figures themselves are not asserted (speed claims live in ``make bench``, not in timed
tests); what is checked is that each section measures what it says, the schema holds, the
targets are computed from the measurements, and bad input fails clearly. braindecode is not
needed (and is hidden in the test that checks its absence is reported).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# bench/ is a tool of the repository, not part of the installed package: `python -m pytest` from
# the root finds it, a bare `pytest` needs the root on the path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import SCHEMA, SECTIONS, TARGETS, BenchConfig, run_bench
from bench.__main__ import parse_args
from bench.cache_build import bipolar_picks
from bench.corpus import corpus_shape, ensure_corpus, replicate
from bench.predict import predict_recording
from bench.report import render_markdown
from bench.stats import Measurement, ratio
from datamodules.recording import DatasetError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole harness once: ~6 min of EEG, one repetition, tiny batches."""
    base = tmp_path_factory.mktemp("bench")
    torch.set_num_threads(1)
    cfg = BenchConfig(work=str(base / "work"), out=str(base / "out"), hours=0.1, recording_minutes=3.0,
                      repeats=1, scale_factors=(1, 2), braindecode_scale_factors=(), scale_repeats=1,
                      batch_size=16, loader_workers=(0, 2), loader_seconds=0.1, inference_seconds=0.02,
                      szloc_batch=1, train_steps=1, braindecode=False, main_job="smoke",
                      main_job_args=(f"synthetic.root={base / 'smoke_corpus'}", f"cache_dir={base / 'smoke_cache'}",
                                     "folds=[chb01]", "trainer.max_epochs=1", "wandb=null"))
    res = run_bench(cfg)
    return cfg, res, base


def test_run_writes_results_with_the_documented_schema(tiny_run):
    cfg, res, base = tiny_run
    on_disk = json.loads((base / "out" / "results.json").read_text())
    assert on_disk["schema"] == SCHEMA
    assert set(on_disk) >= {"created", "machine", "config", "corpus", "cache_build", "scale", "loader",
                            "model_cost", "inference", "training", "main_job", "targets", "total_s"}
    assert on_disk["machine"]["device"] == "cpu" and on_disk["machine"]["gpu"] is None
    assert on_disk["machine"]["braindecode"] is None
    assert on_disk["corpus"]["n_recordings"] == 2 and on_disk["corpus"]["n_file_channels"] == 23
    assert 0.08 < on_disk["corpus"]["hours"] < 0.13  # 2 x 3 min, lengths drawn x U(0.85, 1.25)
    md = (base / "out" / "results.md").read_text()
    assert md == render_markdown(on_disk)
    for heading in ("## Cache build", "## Scale", "## Loader", "## Model cost", "## Inference",
                    "## Training step", "## The main job", "## Targets"):
        assert heading in md


def test_cache_build_measures_a_fresh_process(tiny_run):
    cfg, res, _ = tiny_run
    ours = res["cache_build"]["ours"]
    assert ours["seconds"]["median"] > 0 and ours["seconds"]["values"] == [ours["seconds"]["median"]]
    # the child's own peak memory, at least what it held after its imports
    assert ours["peak_rss_mb"]["median"] >= ours["work_rss_mb"]["median"] > 0
    # 2 s windows without overlap over each recording
    expected = sum(int(r.duration_s // 2) for r in ensure_corpus(cfg.work, 0.1, 3.0).recordings)
    assert ours["n_windows"] == expected
    assert ours["edf_mb_per_s"]["median"] == pytest.approx(res["corpus"]["edf_mb"] / ours["seconds"]["median"])
    assert "braindecode" not in res["cache_build"] and res["cache_build"]["ratio"]["speedup"] is None


def test_scale_rows_grow_with_the_corpus(tiny_run):
    _, res, _ = tiny_run
    all_rows = res["scale"]["rows"]
    assert [(r["implementation"], r["factor"]) for r in all_rows] == [
        ("ours", 1), ("ours", 2), ("ours, 1 process", 1), ("ours, 1 process", 2)]
    assert {r["n_jobs"] for r in all_rows if r["implementation"] == "ours, 1 process"} == {1}
    rows = {r["factor"]: r for r in all_rows if r["implementation"] == "ours"}
    assert rows[2]["hours"] == pytest.approx(2 * rows[1]["hours"])
    # the tree's memory is sampled every 250 ms: builds this short may end before a worker is seen
    assert all(r["peak_rss_mb"]["median"] > 0 and r["worker_peak_rss_mb"]["median"] >= 0 for r in all_rows)
    fit = res["scale"]["fit"]["ours"]
    assert fit["hours"] == [rows[1]["hours"], rows[2]["hours"]]
    assert fit["estimates_s"]["CHB-MIT (983 h)"] == pytest.approx(fit["intercept_s"] + 983 * fit["slope_s_per_hour"])
    precision = res["scale"]["precision"]
    assert precision["error_over_step"] < 0.5
    assert rows[2]["edf_mb"] == pytest.approx(2 * rows[1]["edf_mb"])
    assert rows[2]["n_windows"] == 2 * rows[1]["n_windows"] == 2 * res["cache_build"]["ours"]["n_windows"]
    for r in rows.values():
        assert r["seconds_per_eeg_hour"]["median"] == pytest.approx(r["seconds"]["median"] / r["hours"])


def test_loader_serves_windows_of_the_right_shape(tiny_run):
    _, res, _ = tiny_run
    rows = res["loader"]["rows"]
    assert [(r["dataset"], r["num_workers"]) for r in rows] == [("ours", 0), ("ours", 2)]
    for r in rows:
        assert r["window_shape"] == [18, 512]
        assert r["windows_per_s"]["median"] > 0 and r["vs_braindecode_lazy"] is None


PRUNED = "LSN pruned 60%, whole filters"
KERNELS = "LSN pruned 60%, balanced kernels"


def test_model_cost_and_inference_rows(tiny_run):
    _, res, _ = tiny_run
    cost = {r["model"]: r for r in res["model_cost"]["rows"]}
    assert set(cost) == {"LSN dense", PRUNED, KERNELS, "SZLoc"}
    assert cost["LSN dense"]["input"] == [18, 512] and cost["LSN dense"]["macs_vs_dense"] == 1.0
    assert cost["SZLoc"]["input"] == [18, 45 * 256] and cost["SZLoc"]["eeg_seconds"] == 45
    # 60 % of the kernels pruned and compacted: at most half the MACs, fewer parameters
    for name in (PRUNED, KERNELS):
        assert cost[name]["macs_vs_dense"] == pytest.approx(cost[name]["macs"] / cost["LSN dense"]["macs"])
        assert cost[name]["macs_vs_dense"] <= 0.5
        assert cost[name]["params"] < cost["LSN dense"]["params"]
    assert "widths [5, 9, 9, 9, 9, 9, 8]" in cost[PRUNED]["note"]
    rows = res["inference"]["model_only"]
    for r in rows:
        rt = r["realtime_factor"]["median"]
        eeg_s = cost.get(r["model"], cost["LSN dense"])["eeg_seconds"]
        assert rt == pytest.approx(r["windows_per_s"]["median"] * eeg_s)
        assert r["eeg_hours_per_s"]["median"] == pytest.approx(rt / 3600)
    torch_rows = {r["model"]: r for r in rows if r["source"] == "ours"}
    assert set(torch_rows) == {"LSN dense", "LSN dense, reference", PRUNED, KERNELS, "SZLoc"}
    for source in ("ours", "ours, ONNX Runtime", "ours, ONNX Runtime (extended optimizations)"):
        by = {r["model"]: r for r in rows if r["source"] == source}
        assert {PRUNED, KERNELS, "LSN dense"} <= set(by), source
        assert by["LSN dense"]["vs_dense"] == 1.0  # each LSN row against dense in the same runtime
        assert by[PRUNED]["vs_dense"] == pytest.approx(
            by[PRUNED]["windows_per_s"]["median"] / by["LSN dense"]["windows_per_s"]["median"])
    onnx = [r for r in rows if r["source"].startswith("ours, ONNX Runtime")]
    assert len(onnx) == 6 and {r["ort_level"] for r in onnx} == {"default", "extended"}
    assert all(r["max_abs_diff_vs_torch"] < 1e-3 for r in onnx)  # the export computes the same
    e2e = {r["model"]: r for r in res["inference"]["from_edf"]}
    assert set(e2e) == {"LSN dense", PRUNED}
    assert e2e["LSN dense"]["eeg_hours"] == pytest.approx(res["corpus"]["hours"])


def test_training_rows(tiny_run):
    _, res, _ = tiny_run
    tr = res["training"]
    assert tr["gpu"] is None and "no GPU" in tr["gpu_note"]
    rows = {r["model"]: r for r in tr["rows"]}
    assert set(rows) == {"LSN dense", "LSN dense, reference"}  # braindecode's rows need braindecode
    assert all(r["batch_size"] == 16 and r["windows_per_s"]["median"] > 0 for r in rows.values())
    assert tr["cpu"]["windows_per_s"] == rows["LSN dense"]["windows_per_s"]
    assert rows["LSN dense, reference"]["lsn_vs_this"] == pytest.approx(
        rows["LSN dense"]["windows_per_s"]["median"] / rows["LSN dense, reference"]["windows_per_s"]["median"])


def test_targets_are_read_from_the_measurements(tiny_run):
    _, res, _ = tiny_run
    t = {x["name"]: x for x in res["targets"]}
    assert set(t) == set(TARGETS)
    ours0 = next(r for r in res["loader"]["rows"] if r["num_workers"] == 0)
    assert t["loader_windows_per_s"]["value"] == ours0["windows_per_s"]["median"]
    assert t["loader_windows_per_s"]["met"] == (ours0["windows_per_s"]["median"] >= 20000)
    lsn = next(r for r in res["inference"]["model_only"] if r["model"] == "LSN dense" and r["source"] == "ours")
    assert t["lsn_realtime_factor"]["value"] == lsn["realtime_factor"]["median"]
    rows = {r["factor"]: r for r in res["scale"]["rows"] if r["implementation"] == "ours"}
    assert t["cache_memory_growth"]["value"] == pytest.approx(
        rows[2]["peak_rss_mb"]["median"] / rows[1]["peak_rss_mb"]["median"])
    pruned = next(r for r in res["inference"]["model_only"] if r["model"] == PRUNED and r["source"] == "ours")
    assert t["lsn_pruned_speed"]["value"] == pruned["vs_dense"]
    onnx = next(r for r in res["inference"]["model_only"]
                if r["model"] == PRUNED and r["source"] == "ours, ONNX Runtime")
    assert t["lsn_pruned_speed_onnx"]["value"] == onnx["vs_dense"]
    assert t["lsn_pruned_macs"]["value"] <= 0.5 and t["lsn_pruned_macs"]["met"] is True
    # no braindecode in this run: the ratios are not measured, not guessed
    assert t["cache_speedup"]["value"] is None and t["cache_speedup"]["met"] is None
    assert t["loader_vs_lazy"]["value"] is None and t["loader_vs_lazy"]["met"] is None


def test_predict_recording_scores_every_whole_window(tiny_run):
    cfg, res, _ = tiny_run
    from lightning_modules.lsn import LightSeizureNet

    rec = ensure_corpus(cfg.work, 0.1, 3.0).recordings[0]
    p = predict_recording(LightSeizureNet(18), rec, batch_size=7)
    assert p.shape == (int(rec.duration_s // 2),) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))


def test_replicate_and_corpus_shape():
    assert corpus_shape(2.0, 60.0) == (2, 1, 60.0)
    assert corpus_shape(0.1, 60.0) == (1, 1, pytest.approx(6.0))
    with pytest.raises(ValueError, match="positive"):
        corpus_shape(0, 60)


def test_replicated_ids_are_unique(tiny_run):
    cfg, res, _ = tiny_run
    corpus = ensure_corpus(cfg.work, 0.1, 3.0)
    big = replicate(corpus, 3)
    assert len(big.recordings) == 3 * len(corpus.recordings)
    assert len({r.recording_id for r in big.recordings}) == len(big.recordings)
    assert len({r.patient for r in big.recordings}) == 3 * len({r.patient for r in corpus.recordings})
    with pytest.raises(ValueError, match=">= 1"):
        replicate(corpus, 0)


def test_bipolar_picks_refuses_referential_files(tiny_run):
    cfg, res, _ = tiny_run
    rec = ensure_corpus(cfg.work, 0.1, 3.0).recordings[0]
    picks = bipolar_picks(rec)
    assert [rec.channels[i] for i in picks][:4] == ["FP1-F7", "F7-T7", "T7-P7", "P7-O1"]
    referential = rec.with_(channels=("FP1", "F7", "T7", "P7", "O1", "F3", "C3", "P3", "FP2", "F4", "C4",
                                      "P4", "O2", "F8", "T8", "P8", "FZ", "CZ", "PZ"))
    with pytest.raises(DatasetError, match="not stored as a bipolar channel"):
        bipolar_picks(referential)


def test_statistics_helpers():
    m = Measurement((3.0, 1.0, 2.0), "s")
    assert m.median == 2.0 and m.to_dict()["min"] == 1.0
    with pytest.raises(ValueError, match="at least one value"):
        Measurement((), "s")
    assert ratio(6.0, 2.0) == 3.0 and ratio(None, 2.0) is None and ratio(1.0, 0.0) is None


def test_config_and_cli_reject_bad_input():
    with pytest.raises(ValueError, match="unknown bench sections"):
        BenchConfig(sections=("cache", "bogus"))
    with pytest.raises(SystemExit):
        parse_args(["--sections", "loader,nope"])
    cfg = parse_args(["--hours", "0.5", "--scale-factors", "1,3", "--no-braindecode", "--sections", "models"])
    assert cfg.hours == 0.5 and cfg.scale_factors == (1, 3) and not cfg.braindecode
    assert cfg.sections == ("models",) and set(SECTIONS) >= set(BenchConfig().sections)


def test_missing_braindecode_is_reported_with_the_install_command(monkeypatch):
    from bench.peer import PeerMissing, require_braindecode

    monkeypatch.setitem(sys.modules, "braindecode", None)  # import now raises ImportError
    with pytest.raises(PeerMissing, match="braindecode==0.8.1"):
        require_braindecode()


def test_build_peak_memory_is_the_childs_own(tiny_run, tmp_path):
    """A parent holding much memory must not show up as the build's peak (``ru_maxrss`` would)."""
    from bench.cache_build import run_build

    cfg, res, _ = tiny_run
    corpus = ensure_corpus(cfg.work, 0.1, 3.0)
    ballast = np.ones(600_000_000 // 8)  # 600 MB resident in this process while the child runs
    r = run_build("ours", corpus.recordings, corpus.root, tmp_path / "cache", tmp_path / "scratch")
    assert ballast.sum() > 0
    assert r["n_windows"] == res["cache_build"]["ours"]["n_windows"]
    assert 0 < r["peak_rss_mb"] < 500, r["peak_rss_mb"]
    with pytest.raises(ValueError, match="implementation must be one of"):
        run_build("mne", corpus.recordings, corpus.root, tmp_path / "x", tmp_path / "scratch")


def test_training_throughput_leaves_the_models_as_they_were():
    from bench.models import ModelSpec, training_throughput
    from lightning_modules.lsn import LightSeizureNet

    torch.manual_seed(0)
    model = LightSeizureNet(18).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    specs = [ModelSpec("LSN dense", "ours", model, model.example_input(), 2.0),
             ModelSpec("LSN dense, reference", "ours", model, model.example_input(), 2.0, reference=True)]
    rows = training_throughput(specs, batch_size=4, repeats=2, steps=1)
    assert [r["model"] for r in rows] == ["LSN dense", "LSN dense, reference"]
    assert all(len(r["windows_per_s"]["values"]) == 2 for r in rows)
    assert not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_main_job_is_timed_from_outside_with_where_its_time_went(tiny_run):
    _, res, base = tiny_run
    mj = res["main_job"]
    assert mj["name"] == "smoke" and mj["folds"] == 1 and mj["corpus_existed"] is False
    stages = mj["stages"]
    assert set(stages) == {"data_s", "fit_s", "predict_s", "scoring_s", "baselines_s", "localization_s",
                           "saving_s", "report_s", "startup_and_other_s"}
    assert stages["fit_s"] > 0 and stages["data_s"] > 0 and stages["report_s"] > 0
    # the stages add up to the wall time measured from outside (the rest is start-up and imports)
    assert sum(stages.values()) == pytest.approx(mj["wall_s"], abs=0.5)
    assert mj["minutes"] == pytest.approx(mj["wall_s"] / 60, abs=0.01)
    assert set(mj["event_f1"]) >= {"lsn", "line_length"}
    target = next(t for t in res["targets"] if t["name"] == "main_job_minutes")
    assert target["value"] == mj["minutes"] and target["met"] is True
    assert (Path(mj["run_dir"]) / "summary.json").is_file() or (Path.cwd() / mj["run_dir"] / "summary.json").is_file()
