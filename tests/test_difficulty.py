"""``python -m experiments.difficulty``: the baselines and the oracle through the real pipeline."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from datamodules import synthetic as S
from experiments.difficulty import DifficultyReport, ThresholdScore, band_power_scores, difficulty, main


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("difficulty")
    root = tmp / "corpus"
    S.generate_corpus(root, preset="easy", n_patients=2, n_recordings=2, minutes=5.0, seed=3)
    return root, tmp / "cache"


def test_easy_corpus_gives_the_answers_away(easy):
    """On the easy preset (the corpus of earlier versions) the rules work: that is its point."""
    root, cache = easy
    r = difficulty(root, cache, progress=False)
    assert r.n_patients == 2 and r.n_seizures == S.load_truth(root).n_seizures
    best = r.best(r.line_length)
    assert best.f1 > 0.6 and best.sensitivity > 0.6
    loc = r.localization_summary()
    assert loc["seizures"] == r.n_seizures and loc["largest_amplitude"] >= 0.75
    assert 0.1 < loc["chance"] < 0.35
    oracle = r.best(r.oracle)
    assert oracle.sensitivity == 1.0 and oracle.f1 > 0.8
    # thresholds are scored in order, with counts that add up
    assert [s.threshold for s in r.line_length] == sorted(s.threshold for s in r.line_length)
    assert all(s.ref == r.n_seizures for s in r.line_length)
    assert r.line_length[-1].tp <= r.line_length[0].tp


def test_band_power_scores_by_hand():
    sf, n = 100.0, 200
    t = np.arange(10 * n) / sf
    x = np.zeros((2, t.size))
    x[0] = np.sin(2 * np.pi * 5 * t) * np.where((t >= 6) & (t < 8), 3.0, 1.0)  # louder in window 3
    x[1] = np.sin(2 * np.pi * 20 * t)  # outside the band
    s = band_power_scores(x, sf, n, (4.0, 6.0), np.array([True, True]))
    # (9 + 0) / 2 over the median (1 + 0) / 2: the 20 Hz channel adds nothing in the band
    assert s.shape == (10,) and np.argmax(s) == 3 and s[3] == pytest.approx(9.0, rel=0.05)
    assert np.median(s) == pytest.approx(1.0)
    assert band_power_scores(x, sf, n, (4.0, 6.0), np.array([False, False])).tolist() == [0.0] * 10


def test_best_threshold_prefers_mean_f1_then_pooled():
    a = ThresholdScore(1.0, 0.5, 1, 0.3, 0.4, 10, 3, 7, 3)
    b = ThresholdScore(2.0, 0.6, 1, 0.5, 0.3, 5, 3, 3, 3)
    c = ThresholdScore(3.0, float("nan"), 0, float("nan"), float("nan"), 0, 0, 0, 3)
    assert DifficultyReport.best((a, b, c)) is b
    assert DifficultyReport.best(()) is None


def test_command_line_and_json(easy, tmp_path, capsys):
    root, cache = easy
    out = tmp_path / "d.json"
    assert main([str(root), "--cache", str(cache), "--json", str(out), "--brief"]) == 0
    text = capsys.readouterr().out
    assert "(a) line-length detector" in text and "largest amplitude" in text and "(c) oracle" in text
    d = json.loads(out.read_text())
    assert d["best_line_length"]["threshold"] > 0 and d["localization_summary"]["seizures"] > 0
    assert d["best_oracle"]["sensitivity"] == 1.0


def test_bad_input_is_one_sentence(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_runs_as_a_module(tmp_path):
    p = subprocess.run([sys.executable, "-m", "experiments.difficulty", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--onset-window" in p.stdout
