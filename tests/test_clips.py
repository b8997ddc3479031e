"""SZLoc clips over the HDF5 cache (datamodules/clips.py)."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.cache import CachedRecording, list_recordings
from datamodules.clips import NO_ONSET_S, ClipDataset, SeizureClipIndex, make_clip_dataloaders, window_labels
from datamodules.recording import DatasetError
from eeg.montage import DOUBLE_BANANA, soz_channel_mask

SF = 16.0  # a low rate keeps the files tiny; clips are still 45 windows of 1 s


def write_patient(path, patient, recordings, soz=None, channels=DOUBLE_BANANA, sfreq=SF):
    """A cache file in the layout of datamodules.cache. ``recordings``: {id: (n_samples,
    seizures, annotated)}. Each signal encodes its sample index (channel c: index + 1000 c),
    so tests can tell exactly which samples a clip holds."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema_version": 1, "patient": patient, "channels": json.dumps(list(channels)),
                        "soz": json.dumps(list(soz)) if soz else "null", "soz_region": "",
                        "sfreq": sfreq, "complete": True})
        g = f.create_group("recordings")
        for rid, (n, seizures, annotated) in recordings.items():
            sig = np.arange(n, dtype=np.float32)[None] + 1000.0 * np.arange(len(channels), dtype=np.float32)[:, None]
            ds = g.create_dataset(rid, data=sig)
            ds.attrs.update({"seizures": json.dumps([list(s) for s in seizures]), "annotated": annotated})
    return list_recordings(path)


@pytest.fixture()
def cached(tmp_path):
    a = write_patient(tmp_path / "p1.h5", "p1", {
        "p1_r1": (int(600 * SF), [(100.0, 160.0), (400.0, 420.0)], True),
        "p1_r2": (int(300 * SF), [], True),
        "p1_r3": (int(300 * SF), [(50.0, 70.0)], False),  # not annotated: left out
    }, soz=["left temporal"])
    b = write_patient(tmp_path / "p2.h5", "p2", {
        "p2_r1": (int(200 * SF), [(5.0, 30.0)], True),  # onset too early for window 22
    }, soz=None)
    return a + b


def test_index_counts_and_background(cached):
    ix = SeizureClipIndex(cached, background_ratio=2.0, train=False)
    assert {r.recording_id for r in ix.recordings} == {"p1_r1", "p1_r2", "p2_r1"}
    assert ix.n_seizure_clips == 3
    assert ix.n_background == 6 and len(ix) == 9
    assert ix.window_samples == 16 and ix.n_samples == 45 * 16
    for clip in ix.clips()[3:]:
        rec = ix.recordings[clip.recording]
        a, b = clip.start / SF, clip.start / SF + 45
        assert not clip.is_seizure_clip
        assert 0 <= clip.start and clip.start + ix.n_samples <= rec.n_samples
        for on, off in rec.seizures:  # 10 s guard on both sides
            assert b < on - 10 or a > off + 10
    assert ix.clips() == ix.clips()  # evaluation clips are fixed


def test_eval_clip_puts_onset_in_window_22(cached):
    ix = SeizureClipIndex(cached, background_ratio=0.0, train=False)
    ds = ClipDataset(ix)
    item = ds[0]  # p1_r1, seizure at 100-160 s
    assert item["recording"] == "p1_r1" and item["patient"] == "p1"
    assert item["start_s"].item() == pytest.approx(100.0 - 22)
    assert item["x"].shape == (18, 45 * 16) and item["x"].dtype == torch.float32
    # the clip holds exactly samples start..start+720 of the recording, channels in order
    start = int(78 * SF)
    np.testing.assert_array_equal(item["x"][0].numpy(), np.arange(start, start + 720, dtype=np.float32))
    np.testing.assert_array_equal(item["x"][5, :3].numpy(), 5000.0 + np.arange(start, start + 3))
    dist = item["onset_dist_s"].numpy()
    assert dist[22] == pytest.approx(0.5) and dist[0] == pytest.approx(-21.5)
    assert item["y"].dtype == torch.int64
    assert item["y"].tolist() == [0] * 22 + [1] * 23  # seizure lasts past the clip end
    assert bool(item["is_seizure_clip"]) and bool(item["has_soz"])
    np.testing.assert_array_equal(item["soz"].numpy(), soz_channel_mask(DOUBLE_BANANA, ["left temporal"]))
    assert item["soz"][:4].tolist() == [1, 1, 1, 1] and item["soz"][4:].sum() == 0


def test_clip_near_recording_start_is_moved_inside(cached):
    ix = SeizureClipIndex(cached, background_ratio=0.0, train=False)
    ds = ClipDataset(ix)
    item = ds[2]  # p2_r1: onset at 5 s cannot sit in window 22
    assert item["recording"] == "p2_r1" and item["start_s"].item() == 0.0
    assert item["onset_dist_s"][5].item() == pytest.approx(0.5)
    assert item["y"].tolist() == [0] * 5 + [1] * 25 + [0] * 15
    assert not bool(item["has_soz"]) and item["soz"].sum() == 0  # p2 has no SOZ


def test_training_draws_onset_in_16_to_29_and_changes(cached):
    ix = SeizureClipIndex(cached, background_ratio=1.0, train=True)
    torch.manual_seed(0)
    windows, backgrounds = [], set()
    for _ in range(200):
        c = ix.clip(0)
        windows.append(int((c.onset_s * SF - c.start) // ix.window_samples))
        backgrounds.add(ix.clip(ix.n_seizure_clips).start)
    assert min(windows) == 16 and max(windows) == 29  # the whole range, nothing outside
    assert len(set(windows)) == 14
    assert len(backgrounds) > 100  # background clips are redrawn too
    torch.manual_seed(0)
    first = [ix.clip(0) for _ in range(5)]
    torch.manual_seed(0)
    assert [ix.clip(0) for _ in range(5)] == first  # reproducible under a seed


def test_window_labels_rule():
    t0 = np.arange(5.0)
    assert window_labels(t0, 1.0, [(1.5, 3.2)]).tolist() == [0, 1, 1, 0, 0]
    # a seizure shorter than a window labels the window it mostly falls in
    assert window_labels(t0, 1.0, [(2.1, 2.5)]).tolist() == [0, 0, 1, 0, 0]
    assert window_labels(t0, 1.0, []).tolist() == [0] * 5


def test_background_items(cached):
    ix = SeizureClipIndex(cached, background_ratio=1.0, train=False)
    ds = ClipDataset(ix)
    for i in range(ix.n_seizure_clips, len(ix)):
        item = ds[i]
        assert not bool(item["is_seizure_clip"])
        assert item["y"].sum() == 0
        assert bool((item["onset_dist_s"] == NO_ONSET_S).all())


def test_channel_selection_by_name(cached):
    ix = SeizureClipIndex(cached, background_ratio=0.0, train=False)
    chans = ("T7-P7", "FP2-F4", "FP1-F7")
    item = ClipDataset(ix, channels=chans)[0]
    assert item["x"].shape == (3, 720)
    start = int(78 * SF)
    assert item["x"][:, 0].tolist() == [2000.0 + start, 8000.0 + start, 0.0 + start]
    assert item["soz"].tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(DatasetError, match=r"p1\.h5.*lack T3-T5"):
        ClipDataset(ix, channels=("FP1-F7", "T3-T5"))


def test_short_recording_warns_and_bad_input_errors(tmp_path):
    short = write_patient(tmp_path / "s.h5", "s", {"s_r1": (int(30 * SF), [(10.0, 20.0)], True),
                                                   "s_r2": (int(200 * SF), [(80.0, 90.0)], True)})
    ix = SeizureClipIndex(short, background_ratio=0.0)
    assert ix.n_seizure_clips == 1
    assert len(ix.warnings) == 1 and "s_r1" in ix.warnings[0] and "s.h5" in ix.warnings[0]

    bad = write_patient(tmp_path / "b.h5", "b", {"b_r1": (int(100 * SF), [(150.0, 160.0)], True)})
    with pytest.raises(DatasetError, match=r"b\.h5.*b_r1"):
        SeizureClipIndex(bad)
    other_rate = write_patient(tmp_path / "o.h5", "o", {"o_r1": (int(100 * 32), [], True)}, sfreq=32.0)
    with pytest.raises(DatasetError, match=r"o\.h5.*32.0 Hz"):
        SeizureClipIndex(short + other_rate)
    unannotated = [CachedRecording("u", "u_r1", 1000, SF, DOUBLE_BANANA, (), None, "u.h5", annotated=False)]
    with pytest.raises(DatasetError, match="no annotated"):
        SeizureClipIndex(unannotated)
    with pytest.raises(ValueError, match="onset_windows"):
        SeizureClipIndex(short, onset_windows=(16, 45))


def test_dataloader_with_workers_collates_float32(cached):
    train, val = make_clip_dataloaders(cached, cached, batch_size=4, num_workers=2, background_ratio=1.0)
    batch = next(iter(train))
    assert batch["x"].shape == (4, 18, 720) and batch["x"].dtype == torch.float32
    assert batch["y"].shape == (4, 45) and batch["onset_dist_s"].dtype == torch.float32
    assert batch["soz"].dtype == torch.float32 and batch["start_s"].dtype == torch.float32
    assert batch["has_soz"].dtype == torch.bool and batch["is_seizure_clip"].dtype == torch.bool
    assert isinstance(batch["recording"], list) and isinstance(batch["patient"][0], str)
    for b in val:
        for v in b.values():
            assert not (isinstance(v, torch.Tensor) and v.dtype == torch.float64)
    assert len(val.dataset) == 6
    single = DataLoader(ClipDataset(SeizureClipIndex(cached, background_ratio=0.0, train=False)), batch_size=2)
    assert next(iter(single))["x"].shape == (2, 18, 720)


def test_clips_drawn_anywhere_in_the_recordings(cached):
    ix = SeizureClipIndex(cached, background_ratio=1.0, recording_share=0.25, train=True)
    assert ix.n_anywhere == round(0.25 / 0.75 * 6) == 2 and len(ix) == 8
    assert SeizureClipIndex(cached, background_ratio=1.0, recording_share=0.25, train=False).n_anywhere == 0
    ds = ClipDataset(ix)
    torch.manual_seed(0)
    overlapping, starts_inside, uniform_recs = 0, 0, set()
    n = 400
    for _ in range(n):
        clip = ix.clip(len(ix) - 1)
        rec = ix.recordings[clip.recording]
        assert clip.anywhere and not clip.is_seizure_clip
        assert 0 <= clip.start and clip.start + ix.n_samples <= rec.n_samples
        a, b = clip.start / SF, clip.start / SF + 45
        hit = [(on, off) for on, off in rec.seizures if a < off and b > on]
        overlapping += bool(hit)
        starts_inside += any(on + 5 < a < off for on, off in hit)  # deep inside a seizure
        if not hit:
            uniform_recs.add(rec.recording_id)
    # half overlap a seizure by construction; uniform draws sometimes do too
    assert 0.45 * n < overlapping < 0.65 * n
    assert starts_inside > 0.05 * n
    assert uniform_recs == {"p1_r1", "p1_r2", "p2_r1"}
    # items: labels per window, onset distances to the nearest marked onset
    torch.manual_seed(3)
    for _ in range(30):
        item = ds[len(ix) - 1]
        rec = next(r for r in ix.recordings if r.recording_id == item["recording"])
        t0 = item["start_s"].item() + np.arange(45)
        assert item["y"].tolist() == window_labels(t0, 1.0, rec.seizures).tolist()
        assert not bool(item["is_seizure_clip"])
        if rec.seizures:
            onsets = np.array([on for on, _ in rec.seizures])
            expect = [(t + 0.5 - onsets)[np.abs(t + 0.5 - onsets).argmin()] for t in t0]
            np.testing.assert_allclose(item["onset_dist_s"].numpy(), expect, atol=1e-3)
        else:
            assert bool((item["onset_dist_s"] == NO_ONSET_S).all())
    with pytest.raises(ValueError, match="recording_share"):
        SeizureClipIndex(cached, recording_share=1.0)
