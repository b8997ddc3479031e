"""SeizureLocalizationModule: metrics, a real Lightning loop over cached clips, learnability on a
toy where the seizure onset zone is known, onset-map panels (lightning_modules/localization.py)."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.cache import list_recordings
from datamodules.clips import ClipDataset, SeizureClipIndex
from eeg.montage import DOUBLE_BANANA
from lightning_modules.activation_maps import ActivationMaps
from lightning_modules.localization import (
    LocalizationAccuracy,
    SeizureLocalizationModule,
    neighbour_matrix,
    patient_key,
    tolerance_zone,
    top_in_zone,
)
from lightning_modules.szloc import SZLoc

torch.set_num_threads(1)
LOSS_TERMS = ("det_channel", "det_global", "attn_pos", "attn_neg", "attn_margin", "rise_pos",
              "rise_neg", "rise_margin")


def trainer(tmp_path, **kw) -> pl.Trainer:
    args = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                accelerator="cpu", devices=1)
    args.update(kw)
    return pl.Trainer(**args)


# -- metric helpers ---------------------------------------------------------------------------
def test_neighbours_share_an_electrode():
    adj = neighbour_matrix(DOUBLE_BANANA)
    idx = {c: i for i, c in enumerate(DOUBLE_BANANA)}
    near = {DOUBLE_BANANA[j] for j in np.flatnonzero(adj[idx["F7-T7"]])}
    assert near == {"FP1-F7", "F7-T7", "T7-P7"}
    assert adj[idx["FZ-CZ"], idx["CZ-PZ"]] and not adj[idx["FZ-CZ"], idx["F3-C3"]]
    assert (adj == adj.T).all()
    ref = ("T7", "C3", "O2", "P7")
    assert neighbour_matrix(ref).sum() == 4  # referential channels share no electrode
    by_distance = neighbour_matrix(ref, radius_m=0.08)
    assert by_distance[0, 1] and by_distance[0, 3] and not by_distance[0, 2]


def test_top_channel_hits_and_tolerance():
    soz = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    maps = torch.tensor([[0.1, 0.9, 0.2, 0.0], [0.1, 0.2, 0.9, 0.0]])
    assert top_in_zone(maps, soz).tolist() == [True, False]
    chain = torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    tol = tolerance_zone(soz, chain)
    assert tol.tolist() == [[True, True, True, False]] * 2
    assert top_in_zone(maps, tol).tolist() == [True, True]


def test_localization_accuracy_seizure_and_patient_levels():
    metric = LocalizationAccuracy()
    soz = torch.tensor([1.0, 0.0, 0.0])
    tol = torch.tensor([1.0, 1.0, 0.0])
    # patient A: 2 of 3 seizures hit; mean map still on the SOZ channel
    a_maps = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.3, 0.4, 0.0]])
    # patient B: 1 of 2 hit (not a majority); mean map on channel 2 (miss), tolerance misses too
    b_maps = torch.tensor([[0.6, 0.0, 0.5], [0.0, 0.1, 0.9]])
    metric.update(a_maps, soz.expand(3, 3), tol.expand(3, 3), torch.full((3,), patient_key("A")))
    metric.update(b_maps, soz.expand(2, 3), tol.expand(2, 3), torch.full((2,), patient_key("B")))
    out = metric.compute()
    assert out["seizure"].item() == pytest.approx(3 / 5)
    assert out["seizure_tol"].item() == pytest.approx(4 / 5)
    assert out["patient"].item() == pytest.approx(1 / 2)
    assert out["patient_majority"].item() == pytest.approx(1 / 2)
    assert out["n_seizures"].item() == 5 and out["n_patients"].item() == 2
    metric.reset()
    metric.update(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert metric.compute() == {}  # a batch without seizure clips


def test_module_checks_its_arguments():
    model = SZLoc(4, n_windows=4, window_samples=16, sfreq=16.0, d_model=8, n_heads=2)
    with pytest.raises(ValueError, match="4 input channels but 18"):
        SeizureLocalizationModule(model)
    with pytest.raises(ValueError, match="unknown loss weight"):
        SeizureLocalizationModule(model, channels=DOUBLE_BANANA[:4], loss_weights={"pos": 1.0})
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        SeizureLocalizationModule("lightning_modules.szloc.SZLoc", channels=DOUBLE_BANANA[:4])


# -- a real Lightning loop over cached clips --------------------------------------------------
def write_cache(path, patient, soz, seizures, seconds=240, sf=16.0, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema_version": 1, "patient": patient, "channels": json.dumps(list(DOUBLE_BANANA)),
                        "soz": json.dumps(soz), "soz_region": "", "sfreq": sf, "complete": True})
        g = f.create_group("recordings")
        for r in range(2):
            x = rng.normal(0, 30, (18, int(seconds * sf))).astype(np.float32)
            ds = g.create_dataset(f"{patient}_r{r}", data=x)
            ds.attrs.update({"seizures": json.dumps(seizures), "annotated": True})
    return list_recordings(path)


def test_lightning_fit_validate_test_predict_and_checkpoint(tmp_path):
    recs = (write_cache(tmp_path / "a.h5", "a", ["T7"], [[60.0, 90.0], [150.0, 170.0]], seed=1)
            + write_cache(tmp_path / "b.h5", "b", ["right frontal"], [[100.0, 130.0]], seed=2))
    train = ClipDataset(SeizureClipIndex(recs, n_windows=12, onset_windows=(4, 7), eval_onset_window=6,
                                         background_ratio=0.5, train=True))
    val = ClipDataset(SeizureClipIndex(recs, n_windows=12, eval_onset_window=6, onset_windows=(4, 7),
                                       background_ratio=0.5, train=False))
    model = SZLoc(18, n_windows=12, window_samples=16, sfreq=16.0, d_model=16, n_heads=2,
                  dim_feedforward=16)
    module = SeizureLocalizationModule(model, band_s=2.0, lr=1e-3)
    tr = trainer(tmp_path, max_epochs=2, enable_checkpointing=True, log_every_n_steps=1)
    tr.fit(module, DataLoader(train, batch_size=4, shuffle=True), DataLoader(val, batch_size=4))
    logged = tr.callback_metrics
    for stage in ("train", "val"):
        assert f"{stage}/loss" in logged
        for term in LOSS_TERMS:
            assert f"{stage}/loss_{term}" in logged, f"{stage}/loss_{term} not logged"
    for key in ("val/auroc", "val/loc_acc_seizure_attn", "val/loc_acc_seizure_tol_rise",
                "val/loc_acc_patient_attn", "val/loc_acc_patient_majority_rise"):
        assert key in logged, key
    assert logged["val/loc_n_seizures"].item() == 6 and logged["val/loc_n_patients"].item() == 2
    assert all(torch.isfinite(v).all() for v in logged.values())
    assert not module.model.training or module.training  # Lightning restores modes itself

    test_out = tr.test(module, DataLoader(val, batch_size=4), verbose=False)[0]
    assert "test/loc_acc_seizure_attn" in test_out and "test/auroc" in test_out

    preds = tr.predict(module, DataLoader(val, batch_size=4))
    first = preds[0]
    assert first["prob"].shape == (4, 12) and first["onset_map"].shape == (4, 18)
    assert first["rise_map"].shape == (4, 18) and first["attention"].shape == (4, 12)
    assert first["window_start_s"][0, 1] - first["window_start_s"][0, 0] == pytest.approx(1.0)
    assert first["window_start_s"][0, 0] == pytest.approx(first["start_s"][0].item())
    assert len(first["recording"]) == 4 and first["y"].shape == (4, 12)
    assert sum(p["prob"].shape[0] for p in preds) == len(val)

    ckpt = tr.checkpoint_callback.best_model_path or tr.checkpoint_callback.last_model_path
    restored = SeizureLocalizationModule.load_from_checkpoint(ckpt)  # model rebuilt from hparams
    assert isinstance(restored.model, SZLoc) and restored.channels == DOUBLE_BANANA
    x = val[0]["x"][None]
    module.eval()
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(x).attention_map, module(x).attention_map)


def test_bf16_mixed_precision_step(tmp_path):
    recs = write_cache(tmp_path / "a.h5", "a", ["C3"], [[60.0, 90.0], [150.0, 170.0]], seed=3)
    ds = ClipDataset(SeizureClipIndex(recs, n_windows=12, onset_windows=(4, 7), eval_onset_window=6))
    model = SZLoc(18, n_windows=12, window_samples=16, sfreq=16.0, d_model=16, n_heads=2)
    module = SeizureLocalizationModule(model)
    tr = trainer(tmp_path, fast_dev_run=2, precision="bf16-mixed")
    tr.fit(module, DataLoader(ds, batch_size=2))
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    assert all(p.dtype == torch.float32 for p in module.parameters())


# -- learnability on a toy with a known onset zone --------------------------------------------
TOY_CH = DOUBLE_BANANA[:8]
TOY_N, TOY_W, TOY_SF = 12, 64, 64.0


class ToyClips(Dataset):
    """Clips of 12 x 1 s windows, 8 channels of 20 uV noise. In seizure clips the patient's two
    "SOZ" channels (patient p: channels 2p, 2p+1) carry a 4-8 Hz rhythm of 25 uV from the onset
    window (4-7) on. Every clip has a distracting 2 s random-walk artifact on a non-SOZ channel,
    so the loudest channel is not always the answer. Chance level: 2 of 8 channels = 0.25."""

    def __init__(self, n_seizure: int, n_background: int, seed: int, amp: float = 25.0):
        rng = np.random.default_rng(seed)
        t = np.arange(TOY_N * TOY_W) / TOY_SF
        self.items = []
        for i in range(n_seizure + n_background):
            x = rng.normal(0, 20, (len(TOY_CH), TOY_N * TOY_W)).astype(np.float32)
            soz = np.zeros(len(TOY_CH), np.float32)
            y = np.zeros(TOY_N, np.int64)
            dist = np.full(TOY_N, 1e9, np.float32)
            seizure = i < n_seizure
            patient = i % 4
            soz[2 * patient:2 * patient + 2] = 1
            if seizure:
                k = int(rng.integers(4, 8))
                f = rng.uniform(4, 8)
                for c in np.flatnonzero(soz):
                    x[c, k * TOY_W:] += amp * np.sin(2 * np.pi * f * t[k * TOY_W:] + rng.uniform(0, 6.3))
                y[k:] = 1
                dist = (np.arange(TOY_N) + 0.5 - k).astype(np.float32)
            a = int(rng.choice(np.flatnonzero(soz == 0)))
            s0 = int(rng.integers(0, (TOY_N - 2) * TOY_W))
            x[a, s0:s0 + 2 * TOY_W] += np.cumsum(rng.normal(0, 15, 2 * TOY_W)).astype(np.float32)
            self.items.append({
                "x": torch.from_numpy(x), "y": torch.from_numpy(y), "onset_dist_s": torch.from_numpy(dist),
                "soz": torch.from_numpy(soz), "has_soz": torch.tensor(True),
                "is_seizure_clip": torch.tensor(seizure), "recording": f"toy{i}",
                "patient": f"p{patient}", "start_s": torch.tensor(0.0)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_learns_to_localize_a_toy_onset_zone(tmp_path):
    pl.seed_everything(0)
    model = SZLoc(len(TOY_CH), n_windows=TOY_N, window_samples=TOY_W, sfreq=TOY_SF, d_model=16,
                  n_heads=2, dim_feedforward=32)
    module = SeizureLocalizationModule(model, channels=TOY_CH, band_s=1.0, lr=3e-3)
    held_out = DataLoader(ToyClips(48, 16, seed=2), batch_size=32)
    tr = trainer(tmp_path, max_epochs=6)
    before = tr.validate(module, held_out, verbose=False)[0]
    tr.fit(module, DataLoader(ToyClips(96, 32, seed=1), batch_size=16, shuffle=True))
    after = tr.validate(module, held_out, verbose=False)[0]
    print({k: round(v, 3) for k, v in after.items() if "acc" in k or "auroc" in k},
          "untrained:", round(before["val/loc_acc_seizure_attn"], 3))
    # chance is 0.25 (2 of 8 channels); measured after 6 epochs: 1.0 (attention map)
    assert after["val/loc_acc_seizure_attn"] >= 0.75
    assert after["val/loc_acc_seizure_rise"] >= 0.6
    assert after["val/loc_acc_patient_attn"] >= 0.75
    assert after["val/auroc"] >= 0.75
    assert after["val/loc_acc_seizure_attn"] > before["val/loc_acc_seizure_attn"]


# -- onset-map panels -------------------------------------------------------------------------
def test_activation_maps():
    chans = DOUBLE_BANANA[:4]
    model = SZLoc(4, n_windows=6, window_samples=16, sfreq=16.0, d_model=8, n_heads=2,
                  cnn_dropout=0.5)
    module = SeizureLocalizationModule(model, channels=chans)
    module.train()
    sig = np.random.default_rng(0).normal(0, 30, (4, 16 * 9 + 5)).astype(np.float32)
    maps = module.activation_maps(sig, 16.0, chans)
    assert isinstance(maps, ActivationMaps) and maps.kind == "onset_map"
    assert maps.activity.shape == (4, 9) and maps.channels == chans
    np.testing.assert_allclose(maps.times_s, np.arange(9) + 0.5)
    assert maps.attention.shape == (9,) and maps.attention.sum() == pytest.approx(1.0, abs=1e-5)
    assert maps.probability.shape == (9,) and ((maps.probability >= 0) & (maps.probability <= 1)).all()
    assert module.model.training  # mode restored
    # eval mode inside: same answer twice despite dropout; channel_scores = attention onset map
    again = module.activation_maps(sig, 16.0, chans)
    np.testing.assert_allclose(maps.activity, again.activity)
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(sig[:, :144])[None])
    np.testing.assert_allclose(maps.channel_scores(), out.attention_map[0].numpy(), rtol=1e-4, atol=1e-6)
    # rows are matched by name
    order = [2, 0, 3, 1]
    shuffled = module.activation_maps(sig[order], 16.0, [chans[i] for i in order])
    np.testing.assert_allclose(shuffled.activity, maps.activity, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="256.0 Hz"):
        module.activation_maps(sig, 256.0, chans)
    with pytest.raises(ValueError, match="P7-O1"):
        module.activation_maps(sig[:3], 16.0, chans[:3])
    with pytest.raises(ValueError, match="shorter than one window"):
        module.activation_maps(sig[:, :10], 16.0, chans)


def test_reference_options_on_electrode_channels_survive_a_checkpoint(tmp_path):
    """The reference configuration (referential electrodes, reference wiring and losses, clips
    drawn anywhere) trains, and its checkpoint rebuilds the same module."""
    from eeg.montage import REFERENTIAL_19
    from lightning_modules.checkpoints import load_module

    def write_ref(path, patient, soz, seizures, seed):
        rng = np.random.default_rng(seed)
        with h5py.File(path, "w") as f:
            f.attrs.update({"schema_version": 1, "patient": patient, "channels": json.dumps(list(REFERENTIAL_19)),
                            "soz": json.dumps(soz), "soz_region": "", "sfreq": 16.0, "complete": True})
            x = rng.normal(0, 30, (19, 240 * 16)).astype(np.float32)
            ds = f.create_group("recordings").create_dataset(f"{patient}_r0", data=x)
            ds.attrs.update({"seizures": json.dumps(seizures), "annotated": True})
        return list_recordings(path)

    recs = write_ref(tmp_path / "a.h5", "a", ["T8"], [[60.0, 90.0], [150.0, 170.0]], 1)
    kw = dict(n_windows=12, onset_windows=(4, 7), eval_onset_window=6, background_ratio=0.5)
    train = ClipDataset(SeizureClipIndex(recs, recording_share=0.25, train=True, **kw))
    assert train.index.n_anywhere == 1 and train[0]["soz"].sum() == 1  # T8 alone
    model = SZLoc(19, n_windows=12, window_samples=16, sfreq=16.0, d_model=16, n_heads=8, dim_feedforward=16,
                  fusion="reference", rise_from="channels", embed_stride=1)
    module = SeizureLocalizationModule(model, channels=REFERENTIAL_19, margin_kind="reference",
                                       detection_exclude="windows", exclude_windows=(3, 7), neighbour_radius_m=0.08)
    assert module.neighbours[REFERENTIAL_19.index("T8"), REFERENTIAL_19.index("C4")] == 1  # 0.08 m apart or less
    tr = trainer(tmp_path, max_epochs=1, enable_checkpointing=True, log_every_n_steps=1)
    tr.fit(module, DataLoader(train, batch_size=4, shuffle=True))
    assert torch.isfinite(tr.callback_metrics["train/loss"])
    restored = load_module(tr.checkpoint_callback.last_model_path or tr.checkpoint_callback.best_model_path)
    assert restored.loss_fn.margin_kind == "reference" and restored.loss_fn.detection_exclude == "windows"
    assert restored.loss_fn.exclude_windows == (3, 7) and restored.channels == REFERENTIAL_19
    assert restored.model.init_kwargs == model.init_kwargs
