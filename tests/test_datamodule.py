"""The LOSO DataModule on a synthetic corpus: shapes, labels against the generator's truth,
splits, determinism, and a loader with worker processes."""
from __future__ import annotations

import numpy as np
import torch

from datamodules.datamodule import LOSODataModule
from datamodules.sources import discover


def _dm(root, tmp_path, **kw):
    recs = discover(root)
    test = sorted({r.patient for r in recs})[0]
    kw.setdefault("val_patients", 1)  # 3 patients: one each for test, validation, training
    return LOSODataModule(str(root), test, cache_dir=str(tmp_path), batch_size=32, progress=False, **kw), recs


def test_batches_have_the_contract_shape(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    dm, recs = _dm(root, tmp_path)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (32, 18, 512) and batch["x"].dtype == torch.float32
    assert batch["y"].dtype == torch.int64 and batch["soz"].shape == (32, 18)
    assert len(batch["recording"]) == 32 and batch["start_s"].shape == (32,)
    assert torch.isfinite(batch["x"]).all()
    # balanced: every seizure window, and 3 background windows per seizure window (as many as
    # this tiny training patient has)
    labels = dm.windows("train").label
    n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
    ys = torch.cat([b["y"] for b in dm.train_dataloader()])
    assert int(ys.sum()) == n_pos
    assert len(ys) - n_pos == min(n_neg, 3 * n_pos)


def test_eval_windows_cover_every_second_in_order_and_match_truth(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    dm, recs = _dm(root, tmp_path)
    dm.setup("test")
    by_id = {r.recording_id: r for r in recs}
    batches = list(dm.test_dataloader())
    rec_ids = sum((b["recording"] for b in batches), [])
    starts = torch.cat([b["start_s"] for b in batches]).numpy()
    ys = torch.cat([b["y"] for b in batches]).numpy()
    for rid in dict.fromkeys(rec_ids):
        sel = np.array([r == rid for r in rec_ids])
        s = starts[sel]
        assert (np.diff(s) == 2.0).all() and s[0] == 0.0
        assert s[-1] + 2.0 > by_id[rid].duration_s - 2.0  # to the end
        far = np.ones(s.shape, bool)  # windows well inside a seizure are labelled, far from all not
        for on, off in by_id[rid].seizures:
            inside = (s >= on + 1) & (s + 2 <= off - 1)
            assert ys[sel][inside].all()
            far &= (s + 2 < on - 5) | (s > off + 5)
        assert not ys[sel][far].any()
    assert all(by_id[r].patient == dm.test_patient for r in rec_ids)


def test_soz_mask_marks_channels_touching_the_true_zone(tiny_corpus, tmp_path):
    root, truth = tiny_corpus
    dm, recs = _dm(root, tmp_path)
    dm.setup("test")
    b = next(iter(dm.test_dataloader()))
    soz = next(r.soz for r in recs if r.patient == dm.test_patient)
    mask = b["soz"][0].numpy().astype(bool)
    for ch, m in zip(dm.channels, mask):
        assert m == any(e in soz for e in ch.split("-"))
    assert b["has_soz"].all()


def test_split_and_sampling_deterministic_per_seed(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    a, _ = _dm(root, tmp_path, seed=1)
    b, _ = _dm(root, tmp_path, seed=1)
    a.setup("fit"), b.setup("fit")
    assert a.split == b.split
    xa = next(iter(a.train_dataloader()))["x"]
    xb = next(iter(b.train_dataloader()))["x"]
    torch.testing.assert_close(xa, xb)


def test_worker_processes_read_the_same_windows(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    dm0, _ = _dm(root, tmp_path)
    dm2, _ = _dm(root, tmp_path, num_workers=2)
    dm0.setup("test"), dm2.setup("test")
    x0 = torch.cat([b["x"] for b in dm0.test_dataloader()])
    x2 = torch.cat([b["x"] for b in dm2.test_dataloader()])
    torch.testing.assert_close(x0, x2)


def test_events_and_segments_for_the_callbacks(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    dm, recs = _dm(root, tmp_path)
    dm.setup("test")
    events = dm.seizure_events("test")
    truth = [(r.recording_id, s) for r in recs if r.patient == dm.test_patient for s in r.seizures]
    assert [(e.recording_id, (e.onset_s, e.offset_s)) for e in events] == truth
    ev = events[0]
    seg, start = dm.read_segment(ev.recording_id, ev.onset_s - 30, ev.onset_s + 60)
    assert seg.shape[0] == 18 and start == max(0.0, round((ev.onset_s - 30) * 256) / 256)
