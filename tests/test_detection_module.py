"""SeizureDetectionModule and its losses, through the real Lightning loop on synthetic windows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from eeg.montage import DOUBLE_BANANA
from lightning_modules.activation_maps import ActivationMaps
from lightning_modules.detection import SeizureDetectionModule
from lightning_modules.losses import DetectionLoss, boundary_weights, detection_loss, seizure_logit, spatial_losses
from lightning_modules.lsn import LightSeizureNet

torch.set_num_threads(1)
SFREQ, T, C = 256.0, 512, 18
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _background(g: np.random.Generator, n_times: int) -> np.ndarray:
    t = np.arange(n_times) / SFREQ
    x = g.normal(0, 10, (C, n_times))
    for f in g.uniform(1, 20, 6):  # a few random rhythms of 5-15 uV on every channel
        x += g.uniform(5, 15) * np.sin(2 * np.pi * f * t + g.uniform(0, 2 * np.pi, (C, 1)))
    return x


def _rhythm(g: np.random.Generator, n_times: int, freq: float = 5.0, amp: float = 120.0) -> np.ndarray:
    t = np.arange(n_times) / SFREQ
    return amp * np.sin(2 * np.pi * freq * t + g.uniform(0, 2 * np.pi))


class ToyWindows(Dataset):
    """Batch-contract windows: seizure = a 5 Hz, 120 uV rhythm on 3 random channels (the SOZ)."""

    def __init__(self, n: int, seed: int):
        g = np.random.default_rng(seed)
        self.y = g.integers(0, 2, n)
        self.x = np.empty((n, C, T), np.float32)
        self.soz = np.zeros((n, C), np.float32)
        for i in range(n):
            x = _background(g, T)
            if self.y[i]:
                ch = g.choice(C, 3, replace=False)
                self.soz[i, ch] = 1
                x[ch] += _rhythm(g, T)
            self.x[i] = x
        self.boundary = g.uniform(0, 20, n).astype(np.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.from_numpy(self.x[i]), "y": torch.tensor(int(self.y[i])),
                "boundary_dist_s": torch.tensor(self.boundary[i]),
                "onset_dist_s": torch.tensor(float(self.boundary[i])),
                "soz": torch.from_numpy(self.soz[i]), "has_soz": torch.tensor(bool(self.y[i])),
                "recording": f"rec{i // 8:02d}", "patient": f"pat{i // 32}",
                "start_s": torch.tensor(2.0 * (i % 8))}


def _trainer(**kw) -> pl.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
    defaults.update(kw)
    return pl.Trainer(**defaults)


@pytest.fixture(scope="module")
def data():
    return ToyWindows(256, seed=0), ToyWindows(96, seed=1)


@pytest.fixture(scope="module")
def trained(data):
    """LSN trained 4 epochs on the toy problem (shared by the tests that need a trained model)."""
    pl.seed_everything(0)
    train, val = data
    module = SeizureDetectionModule(LightSeizureNet(C), lr=3e-3)
    trainer = _trainer(max_epochs=4)
    trainer.fit(module, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=48))
    return module, {k: float(v) for k, v in trainer.callback_metrics.items()}


# -- learnability and ECAM -----------------------------------------------------------------
def test_lsn_learns_toy_seizures_and_ecam_finds_rhythmic_channels(trained, data):
    module, metrics = trained
    assert metrics["val/auroc"] > 0.9, metrics
    for key in ("val/ap", "val/sensitivity", "val/specificity", "val/f1", "train/loss_epoch"):
        assert key in metrics
    _, val = data
    model = module.model.eval()
    seiz = np.flatnonzero(val.y == 1)
    with torch.no_grad():
        out = model.ecam(torch.from_numpy(val.x[seiz]))
    score = out.cam.mean(-1).numpy()
    top3 = np.argsort(-score, axis=1)[:, :3]
    hit = np.mean([set(top3[k]) == set(np.flatnonzero(val.soz[i])) for k, i in enumerate(seiz)])
    assert hit > 0.8, hit
    freq_soz = out.freq.numpy()[val.soz[seiz] > 0]
    assert np.median(freq_soz) == pytest.approx(5.0, abs=0.5)


def test_predict_step_returns_window_identity(trained, data):
    module, _ = trained
    _, val = data
    preds = _trainer().predict(module, DataLoader(val, batch_size=40))
    prob = torch.cat([p["prob"] for p in preds])
    assert prob.shape == (len(val),) and bool(((prob >= 0) & (prob <= 1)).all())
    assert sum((p["recording"] for p in preds), []) == [val[i]["recording"] for i in range(len(val))]
    assert sum((p["patient"] for p in preds), []) == [val[i]["patient"] for i in range(len(val))]
    torch.testing.assert_close(torch.cat([p["start_s"] for p in preds]),
                               torch.tensor([2.0 * (i % 8) for i in range(len(val))]))
    assert torch.equal(torch.cat([p["y"] for p in preds]), torch.from_numpy(val.y))
    module.model.eval()
    with torch.no_grad():
        logits = module.model(torch.from_numpy(val.x[:5]))
    torch.testing.assert_close(prob[:5], torch.softmax(logits, 1)[:, 1], atol=1e-5, rtol=1e-5)


def test_activation_maps_over_a_segment(trained):
    module, _ = trained
    g = np.random.default_rng(5)
    n_total = 20 * int(SFREQ) + 100  # 20 s plus a partial window at the end
    sig = _background(g, n_total)
    onset = 10 * int(SFREQ)
    rhythmic = [2, 9, 15]
    sig[rhythmic, onset:] += _rhythm(g, n_total - onset)
    maps = module.activation_maps(sig.astype(np.float32), SFREQ, DOUBLE_BANANA)
    assert isinstance(maps, ActivationMaps) and maps.kind == "ecam"
    step = 32  # 8 Hz at 256 Hz
    n_steps = math.ceil(n_total / step)
    assert maps.activity.shape == (C, n_steps) and maps.probability.shape == (n_steps,)
    assert maps.times_s[0] == pytest.approx(step / 2 / SFREQ)
    assert maps.times_s[-1] == pytest.approx(((n_steps - 1) * step + n_total) / 2 / SFREQ)  # partial step
    assert np.all(np.diff(maps.times_s) > 0)
    assert maps.channels == DOUBLE_BANANA
    # The localization: after the onset, the rhythmic channels score highest; before, low probability.
    top = set(np.argsort(-maps.channel_scores(11.0, 20.0))[:3])
    assert top == set(rhythmic)
    assert maps.probability[maps.times_s < 9.5].mean() < 0.5 < maps.probability[maps.times_s > 10.5].mean()
    assert np.all(np.abs(maps.freq_hz[rhythmic] - 5.0) < 0.5)
    # Probability of the first step is the first window's probability (eval mode).
    module.model.eval()
    with torch.no_grad():
        p0 = torch.softmax(module.model(torch.from_numpy(sig[None, :, :T].astype(np.float32))), 1)[0, 1]
    assert maps.probability[0] == pytest.approx(float(p0), abs=1e-5)
    # The module's training mode is left as it was.
    module.train()
    module.activation_maps(sig[:, :T].astype(np.float32), SFREQ, DOUBLE_BANANA)
    assert module.model.training


def test_activation_maps_bad_input(trained):
    module, _ = trained
    sig = np.zeros((C, 4 * T), np.float32)
    with pytest.raises(ValueError, match="18 channels"):
        module.activation_maps(sig[:17], SFREQ, DOUBLE_BANANA[:17])
    with pytest.raises(ValueError, match="200.0 Hz, model trained at 256.0 Hz"):
        module.activation_maps(sig, 200.0, DOUBLE_BANANA)
    with pytest.raises(ValueError, match="shorter than one window"):
        module.activation_maps(sig[:, :100], SFREQ, DOUBLE_BANANA)


# -- a braindecode-style model -------------------------------------------------------------
class TinyNet(nn.Module):
    """(B, C, T) -> (B, n_outputs), braindecode signature; no ecam."""

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 512, sfreq: float = 256.0):
        super().__init__()
        self.n_chans, self.n_times = n_chans, n_times
        self.conv = nn.Conv1d(n_chans, 8, 15, stride=4)
        self.head = nn.Linear(8, n_outputs)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x / 100.0)).mean(-1))


def test_generic_model_trains_validates_tests_predicts(data, tmp_path):
    train, val = data
    with pytest.warns(UserWarning, match="no ecam"):
        module = SeizureDetectionModule(TinyNet(C, n_outputs=1), soz_margin_weight=1.0,
                                        loss="focal", class_weights=(1.0, 2.0), scheduler="onecycle")
    trainer = _trainer(max_epochs=1, logger=CSVLogger(tmp_path), limit_train_batches=3)
    trainer.fit(module, DataLoader(train, batch_size=32), DataLoader(val, batch_size=48))
    assert "train/soz_margin" not in trainer.callback_metrics
    res = trainer.test(module, DataLoader(val, batch_size=48), verbose=False)[0]
    assert set(res) >= {"test/auroc", "test/ap", "test/sensitivity", "test/specificity", "test/f1",
                        "test/loss"}
    preds = trainer.predict(module, DataLoader(val, batch_size=48))
    assert torch.cat([p["prob"] for p in preds]).shape == (len(val),)
    assert module.activation_maps(np.zeros((C, 2 * T), np.float32), SFREQ, DOUBLE_BANANA) is None
    assert "model_class" not in module.hparams and "model" not in module.hparams  # no import path stored


def test_spatial_terms_logged_with_lsn(data):
    train, _ = data
    module = SeizureDetectionModule(LightSeizureNet(C), soz_positive_weight=0.5,
                                    soz_negative_weight=0.5, soz_margin_weight=1.0,
                                    boundary_band_s=5.0, boundary_weight=0.0)
    trainer = _trainer(fast_dev_run=2)
    trainer.fit(module, DataLoader(train, batch_size=32))
    for term in ("detection", "soz_positive", "soz_negative", "soz_margin", "loss"):
        assert f"train/{term}" in trainer.callback_metrics, term
    # Ablation: weight 0 means the term is not computed at all.
    module = SeizureDetectionModule(LightSeizureNet(C), soz_positive_weight=1.0)
    trainer = _trainer(fast_dev_run=1)
    trainer.fit(module, DataLoader(train, batch_size=32))
    assert "train/soz_positive" in trainer.callback_metrics
    assert "train/soz_negative" not in trainer.callback_metrics
    assert "train/soz_margin" not in trainer.callback_metrics


def test_checkpoint_reload_rebuilds_lsn(data, tmp_path):
    train, val = data
    pl.seed_everything(1)
    module = SeizureDetectionModule(LightSeizureNet(C, n_filters=(4, 8, 8, 8, 8, 8, 8)),
                                    scheduler="none", lr=1e-3)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = _trainer(max_epochs=1, enable_checkpointing=True, callbacks=[ckpt], limit_train_batches=2,
                       limit_val_batches=1)
    trainer.fit(module, DataLoader(train, batch_size=32), DataLoader(val, batch_size=48))
    reloaded = SeizureDetectionModule.load_from_checkpoint(ckpt.last_model_path)
    assert isinstance(reloaded.model, LightSeizureNet)
    assert reloaded.model.n_filters == (4, 8, 8, 8, 8, 8, 8)
    x = torch.from_numpy(val.x[:4])
    module.eval()
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), module(x))


@pytest.mark.parametrize("scheduler, final", [("cosine", 0.01), ("none", 1.0)])
def test_lr_schedules(data, scheduler, final):
    train, _ = data
    module = SeizureDetectionModule(TinyNet(C), scheduler=scheduler, lr=1e-2, min_lr_ratio=0.01,
                                    warmup_frac=0.25)
    trainer = _trainer(max_epochs=2, limit_train_batches=4)
    trainer.fit(module, DataLoader(train, batch_size=16))
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * final, rel=0.05)


def test_module_config_errors():
    with pytest.raises(ValueError, match="scheduler"):
        SeizureDetectionModule(TinyNet(C), scheduler="step")
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        SeizureDetectionModule("lightning_modules.lsn.LightSeizureNet")
    with pytest.raises(ValueError, match="lr must be a positive learning rate"):
        SeizureDetectionModule(TinyNet(C), lr=0.0)
    with pytest.raises(ValueError, match="unknown detection loss"):
        SeizureDetectionModule(TinyNet(C), loss="hinge")


# -- losses --------------------------------------------------------------------------------
def test_two_class_ce_equals_bce_on_logit_difference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 2, generator=g)
    y = torch.randint(0, 2, (16,), generator=g)
    w = (0.3, 2.0)
    ours = detection_loss(seizure_logit(logits), y, class_weights=w)
    ref = F.cross_entropy(logits, y, weight=torch.tensor(w))
    torch.testing.assert_close(ours, ref)
    # Focal with gamma 0 is cross-entropy; with gamma > 0 easy windows weigh less.
    torch.testing.assert_close(detection_loss(seizure_logit(logits), y, kind="focal", focal_gamma=0.0),
                               F.cross_entropy(logits, y))
    assert detection_loss(seizure_logit(logits), y, kind="focal") < F.cross_entropy(logits, y)
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        seizure_logit(torch.zeros(4, 3))


def test_boundary_band_ignores_or_downweights_windows():
    logit = torch.tensor([2.0, -1.0, 0.5, 3.0])
    y = torch.tensor([1, 0, 1, 0])
    dist = torch.tensor([0.0, 1.5, 10.0, 1e9])
    w = boundary_weights(dist, band_s=2.0, weight=0.0)
    assert w.tolist() == [0.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(detection_loss(logit, y, w), detection_loss(logit[2:], y[2:]))
    w_half = boundary_weights(dist, band_s=2.0, weight=0.5)
    assert w_half.tolist() == [0.5, 0.5, 1.0, 1.0]
    assert boundary_weights(dist, band_s=0.0, weight=0.0).tolist() == [1.0] * 4
    loss = DetectionLoss(boundary_band_s=2.0, boundary_weight=0.0, boundary_at="both")
    logits2 = torch.stack([torch.zeros(4), logit], 1)
    out = loss(logits2, {"y": y, "boundary_dist_s": dist})
    torch.testing.assert_close(out["detection"], detection_loss(logit[2:], y[2:]))
    with pytest.raises(KeyError, match="boundary_dist_s"):
        loss(logits2, {"y": y})
    # the default band is around the annotated onset only, on either side (signed distances)
    onset = DetectionLoss(boundary_band_s=2.0, boundary_weight=0.5)
    signed = torch.tensor([-1.5, 0.5, -10.0, 1e9])
    out = onset(logits2, {"y": y, "onset_dist_s": signed, "boundary_dist_s": torch.zeros(4)})
    torch.testing.assert_close(out["detection"], detection_loss(logit, y, torch.tensor([0.5, 0.5, 1.0, 1.0])))


def test_short_seizures_keep_training_windows_under_the_default_band():
    """A 6 s seizure: with the old band (4 s around onset and offset, weight 0) none of its
    windows trained; the default (onset only, weight 0.5) keeps all of them."""
    from datamodules.windows import _annotate

    t0 = np.arange(90.0, 110.0, 0.5)
    label, bdist, odist = _annotate(t0, t0 + 2.0, [(100.0, 106.0)], 0.5)
    seizure = label == 1
    old = boundary_weights(torch.from_numpy(bdist[seizure]), 4.0, 0.0)
    new = DetectionLoss(boundary_band_s=4.0, boundary_weight=0.5)
    w = boundary_weights(torch.from_numpy(odist[seizure]), new.boundary_band_s, new.boundary_weight)
    assert seizure.sum() >= 8 and old.sum() == 0 and (w > 0).all()


def test_spatial_loss_values():
    cl = torch.tensor([[3.0, -1.0, 0.0, 2.0],   # SOZ {0, 1}: best SOZ 3 vs best other 2
                       [0.0, 0.0, 0.0, 0.0],    # not selected (background)
                       [1.0, 4.0, 0.0, 0.0]], requires_grad=True)  # SOZ {0}: 1 vs 4
    soz = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0, 0, 0], [1.0, 0, 0, 0]])
    select = torch.tensor([True, False, True])
    sp = spatial_losses(cl, soz, select, margin=2.0)
    bce = lambda v, t: F.binary_cross_entropy_with_logits(torch.tensor(v), torch.tensor(t))
    assert float(sp.positive) == pytest.approx(float(bce([3.0, -1.0, 1.0], [1.0, 1.0, 1.0])), rel=1e-5)
    assert float(sp.negative) == pytest.approx(float(bce([0.0, 2.0, 4.0, 0.0, 0.0], [0.0] * 5)), rel=1e-5)
    assert float(sp.margin) == pytest.approx((max(0, 2 - (3 - 2)) + max(0, 2 - (1 - 4))) / 2)
    assert sp.n_windows == 2
    (sp.positive + sp.negative + sp.margin).backward()
    assert cl.grad[1].abs().sum() == 0 and cl.grad[0].abs().sum() > 0
    # Nothing selected: zeros that still backpropagate.
    none = spatial_losses(cl, soz, torch.zeros(3, dtype=torch.bool))
    assert none.n_windows == 0 and float(none.positive) == 0.0 and none.margin.requires_grad


def test_detection_loss_config_errors():
    with pytest.raises(ValueError, match="boundary_weight"):
        DetectionLoss(boundary_weight=2.0)
    with pytest.raises(ValueError, match="class_weights"):
        DetectionLoss(class_weights=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="soz_margin_weight must be >= 0"):
        DetectionLoss(soz_margin_weight=-1.0)
