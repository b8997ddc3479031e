"""The real scalp EEG in ../shared/real/umich (100 Hz, 19 referential channels, T3/T4 names, a
temporal-lobe seizure from about 350 s) through the whole ``predict`` path of a model trained
only on the synthetic corpus: resampling to the model's rate, bipolar rebuild, the checkpoint's
preprocessing, events, probabilities and the activation-map panel. Read from ../shared, never
copied into the repository (research data with an attribution request and no licence)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "umich" / "chbmit_layout" / "chb90" / "chb90_01.edf"
pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"the real recording is not at {REAL}")


@pytest.mark.slow
def test_real_recording_through_predict(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    train = subprocess.run([sys.executable, "-m", "experiments", "run", "smoke", "run_id=real", "folds=[chb02]",
                            f"synthetic.root={tmp_path / 'corpus'}", f"cache_dir={tmp_path / 'cache'}",
                            f"runs_dir={tmp_path / 'runs'}", "trainer.max_epochs=2", "activation_maps=null"],
                           capture_output=True, text=True, timeout=900, env=env)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    ckpt = tmp_path / "runs/smoke/real/folds/chb02/model.ckpt"
    out, probs, png = tmp_path / "umich_events.tsv", tmp_path / "umich_probabilities.csv", tmp_path / "umich.png"
    r = subprocess.run([sys.executable, "-m", "experiments", "predict", "--ckpt", str(ckpt), "--edf", str(REAL),
                        "--out", str(out), "--probabilities", str(probs), "--panel", str(png)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "in 8.3 min" in r.stdout  # 500 s read at the EEG's own 100 Hz, resampled to the model's 256 Hz
    with open(probs) as fh:
        rows = [(float(a["start_s"]), float(a["probability"])) for a in csv.DictReader(fh)]
    start = np.array([t for t, _ in rows])
    prob = np.array([p for _, p in rows])
    assert len(rows) == 250 and start[0] == 0.0 and start[-1] == pytest.approx(498.0)  # 2 s windows, all of it
    assert np.isfinite(prob).all() and ((prob >= 0) & (prob <= 1)).all()
    before, during = prob[start + 2 <= 340].mean(), prob[start >= 355].mean()
    print(f"\nreal recording, smoke model: mean seizure probability before 340 s {before:.3f}, "
          f"during 355-500 s {during:.3f}")
    assert out.read_text().startswith("onset\tduration\teventType") and png.stat().st_size > 20_000
