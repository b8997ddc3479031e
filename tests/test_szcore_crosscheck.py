"""The hypothesis TSVs this project writes, scored the way the official SzCORE evaluator does
(tests/support/szcore_reference.py), give exactly the in-process scores."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.events import Event, write_events_tsv
from experiments.scoring import aggregate, per_patient, score_recording
from tests.support.szcore_reference import evaluate


def test_written_tsvs_score_as_in_process(tmp_path):
    g = np.random.default_rng(3)
    scores = []
    for s in range(4):
        sub = f"sub-{s:02d}"
        for r in range(3):
            duration = float(g.uniform(600, 3600)) + g.uniform(0, 1)  # fractional seconds on purpose
            ref = []
            t = g.uniform(30, 200)
            while t < duration - 200 and len(ref) < 3 and s != 3:  # sub-03 has no seizure at all
                d = g.choice([6.37, 14.5, 45.25, 170.0])
                ref.append((t, t + d))
                t += d + g.uniform(60, 900)
            hyp = []
            for a, b in ref:
                if g.random() < 0.7:  # detected, with a sloppy onset
                    hyp.append((max(0.0, a + g.uniform(-40, 20)), b + g.uniform(-5, 70)))
            for _ in range(g.integers(0, 3)):  # false alarms, some 0.5 s from a sample edge
                a = float(g.integers(0, int(duration) - 40)) + 0.995
                hyp.append((a, a + g.uniform(3, 30)))
            rid = f"{sub}_ses-01_task-szMonitoring_run-{r:02d}"
            folder = f"{sub}/ses-01/eeg"
            write_events_tsv(tmp_path / "ref" / folder / f"{rid}_events.tsv",
                             [Event(a, b, 1.0) for a, b in ref], duration)
            if r != 2 or s != 1:  # one hypothesis file missing: the evaluator scores it as no detection
                write_events_tsv(tmp_path / "hyp" / folder / f"{rid}_events.tsv",
                                 [Event(a, b, 0.9) for a, b in sorted(hyp)], duration)
            else:
                hyp = []
            scores.append(score_recording(rid, sub, ref, sorted(hyp), duration))
    official = evaluate(tmp_path / "ref", tmp_path / "hyp")
    ours = per_patient(scores)
    agg = aggregate(ours, scores)
    for sub, levels in official["subjects"].items():
        for level in ("event", "sample"):
            for k in ("tp", "fp", "ref"):
                assert ours[sub][level][k] == levels[level][k], (sub, level, k)
            for m in ("sensitivity", "precision", "f1", "fp_per_24h"):
                assert ours[sub][level][m] == pytest.approx(levels[level][m], nan_ok=True, rel=1e-9), (sub, level, m)
    for level in ("event", "sample"):
        for m in ("sensitivity", "precision", "f1", "fp_per_24h"):
            assert agg[level]["mean_over_patients"][m]["mean"] == pytest.approx(official[level][m], rel=1e-9)
