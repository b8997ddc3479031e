"""ActivationMapLogger in real Trainer runs: PNGs, W&B offline media, localization records."""
from __future__ import annotations

import logging
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")

from callbacks.activation_maps import ActivationMapLogger, EventLocalization, _round_robin  # noqa: E402
from eeg.montage import DOUBLE_BANANA, soz_channel_mask  # noqa: E402
from lightning_modules.activation_maps import ActivationMaps  # noqa: E402

SF = 32.0
DURATION_S = 120.0


@dataclass(frozen=True)
class Event:
    patient: str
    recording_id: str
    onset_s: float
    offset_s: float | None
    soz: tuple[str, ...] | None


class FakeData(pl.LightningDataModule):
    """Recordings of noise with a 5 Hz rhythm on the channels of each event's onset zone
    (``rhythm_on`` overrides the zone, to make the model localize elsewhere)."""

    def __init__(self, events, rhythm_on=None):
        super().__init__()
        self.events = {"val": events, "test": events}
        self.sfreq = SF
        self.channels = DOUBLE_BANANA
        self.reads: list[tuple[str, float, float]] = []
        rng = np.random.default_rng(0)
        t = np.arange(int(DURATION_S * SF)) / SF
        self.signals = {}
        for ev in events:
            sig = self.signals.setdefault(
                ev.recording_id, rng.normal(0, 20, (18, t.size)).astype(np.float32))
            where = soz_channel_mask(DOUBLE_BANANA, rhythm_on or ev.soz or ()).astype(bool)
            ictal = (t >= ev.onset_s) & (t < (ev.offset_s or ev.onset_s + 20))
            sig[where] += (200 * ictal * np.sin(2 * np.pi * 5 * t)).astype(np.float32)

    def seizure_events(self, split):
        return self.events[split]

    def read_segment(self, recording_id, start_s, stop_s):
        self.reads.append((recording_id, start_s, stop_s))
        start = max(0.0, start_s)
        stop = min(DURATION_S, stop_s)
        a, b = int(round(start * SF)), int(round(stop * SF))
        return self.signals[recording_id][:, a:b], a / SF

    def _loader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 18, 32, generator=g)
        y = (torch.rand(16, generator=g) > 0.5).long()
        return DataLoader(TensorDataset(x, y), batch_size=8)

    def train_dataloader(self):
        return self._loader()

    def val_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()


class TinyModule(pl.LightningModule):
    """A window classifier whose 'ECAM' is the per-second RMS of each channel: it localizes
    where the signal is strongest, which is what the callback's bookkeeping is tested on."""

    def __init__(self, returns_none=False, kind="ecam"):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(18 * 32, 2))
        self.returns_none = returns_none
        self.kind = kind
        self.calls = 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self(x), y))

    def test_step(self, batch, _):
        x, y = batch
        self.log("test/loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def activation_maps(self, signal, sfreq, channels):
        self.calls += 1
        if self.returns_none:
            return None
        n = signal.shape[1] // int(sfreq)
        sec = signal[:, : n * int(sfreq)].reshape(len(channels), n, int(sfreq))
        rms = np.sqrt((sec ** 2).mean(axis=2))
        spec = np.abs(np.fft.rfft(signal, axis=1))
        freq = np.fft.rfftfreq(signal.shape[1], 1 / sfreq)[spec[:, 1:].argmax(axis=1) + 1]
        extra = {"freq_hz": freq} if self.kind == "ecam" else {
            "attention": np.ones(n) / n, "probability": (rms.max(axis=0) > 100).astype(float)}
        return ActivationMaps(rms, np.arange(n) + 0.5, tuple(channels), kind=self.kind, **extra)


@pytest.fixture(autouse=True)
def _one_thread():
    # The machine is shared: keep torch to one thread here, and give the setting back.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _trainer(tmp_path, callback, logger=False, epochs=1):
    return pl.Trainer(max_epochs=epochs, logger=logger, callbacks=[callback],
                      default_root_dir=tmp_path, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=1, accelerator="cpu", devices=1)


EVENTS = [
    Event("chb01", "chb01_03", 40.0, 60.0, ("F7", "T7")),
    Event("chb01", "chb01_04", 50.0, 70.0, ("right temporal",)),
    Event("chb03", "chb03_01", 5.0, 25.0, ("O2",)),
]


def test_wandb_offline_run_holds_the_panels(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    out = tmp_path / "panels_out"
    cb = ActivationMapLogger(every_n_epochs=1, max_events=2, pre_s=10, post_s=20, out_dir=out)
    wb = WandbLogger(save_dir=str(tmp_path), offline=True, project="szl-test")
    dm, model = FakeData(EVENTS[:2]), TinyModule()
    trainer = _trainer(tmp_path, cb, logger=[wb, CSVLogger(tmp_path)])
    try:
        trainer.fit(model, datamodule=dm)
        results = trainer.test(model, datamodule=dm, verbose=False)
    finally:
        wandb.finish()

    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["test_ep001_chb01_03_40s.png", "test_ep001_chb01_04_50s.png",
                     "val_ep000_chb01_03_40s.png", "val_ep000_chb01_04_50s.png"]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = sorted((runs[0] / "files" / "media" / "images").rglob("*.png"))
    # Both splits, two panels each, under the patient's key (media path mirrors the key).
    assert len(media) == 4
    rel = [str(p.relative_to(runs[0] / "files" / "media" / "images")) for p in media]
    assert sum(r.startswith("val/panels/chb01") for r in rel) == 2
    assert sum(r.startswith("test/panels/chb01") for r in rel) == 2
    # The offline media are the PNGs written to out_dir, byte for byte.
    assert {p.read_bytes() for p in media} == {p.read_bytes() for p in out.glob("*.png")}
    # Localization: both events localized in their onset zone (the rhythm is there).
    assert [r.in_soz for r in cb.localizations] == [True, True, True, True]
    assert results[0]["test/activation_map_top_in_soz"] == 1.0


def test_localization_records_and_fraction(tmp_path):
    # The rhythm is left temporal in every recording: only chb01_03 (SOZ F7, T7) is a hit;
    # chb03_01 (SOZ O2) and chb01_04 (right temporal) are misses.
    dm = FakeData(EVENTS, rhythm_on=("F7", "T7"))
    cb = ActivationMapLogger(every_n_epochs=1, max_events=3, pre_s=10, post_s=20,
                             out_dir=tmp_path / "p")
    trainer = _trainer(tmp_path, cb, logger=False)
    trainer.test(TinyModule(), datamodule=dm, verbose=False)
    recs = cb.localizations
    assert [(r.recording_id, r.in_soz) for r in recs] == [
        ("chb01_03", True), ("chb03_01", False), ("chb01_04", False)]  # round-robin order
    assert recs[0].top_channel in ("FP1-F7", "F7-T7", "T7-P7")
    assert recs[2].top_channel in ("FP1-F7", "F7-T7", "T7-P7")
    assert all(Path(r.png).exists() and r.kind == "ecam" and r.split == "test" for r in recs)
    assert trainer.callback_metrics["test/activation_map_top_in_soz"] == pytest.approx(1 / 3)
    with pytest.raises(FrozenInstanceError):
        recs[0].in_soz = True
    # chb03_01's onset is at 5 s: the segment was asked from -5 s and clipped to 0 s.
    assert ("chb03_01", -5.0, 25.0) in dm.reads


def test_unknown_soz_is_not_counted(tmp_path):
    dm = FakeData([Event("chb02", "chb02_16", 40.0, 60.0, None)])
    cb = ActivationMapLogger(max_events=1, pre_s=5, post_s=10, out_dir=tmp_path / "p")
    trainer = _trainer(tmp_path, cb)
    trainer.test(TinyModule(kind="onset_map"), datamodule=dm, verbose=False)
    assert [r.in_soz for r in cb.localizations] == [None]
    assert cb.localizations[0].kind == "onset_map"
    assert "test/activation_map_top_in_soz" not in trainer.callback_metrics


def test_every_n_epochs_and_default_out_dir(tmp_path):
    cb = ActivationMapLogger(every_n_epochs=2, max_events=1, pre_s=5, post_s=10)
    model = TinyModule()
    trainer = _trainer(tmp_path, cb, epochs=3)
    trainer.fit(model, datamodule=FakeData(EVENTS[:1]))
    # Epochs 0, 1, 2 (+ sanity check): only epoch 1 renders; no logger -> default_root_dir.
    assert sorted(p.name for p in (tmp_path / "panels").glob("*.png")) == [
        "val_ep001_chb01_03_40s.png"]
    assert model.calls == 1


def test_skips_quietly_without_hooks(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="callbacks.activation_maps")
    cb = ActivationMapLogger(max_events=2, out_dir=tmp_path / "p")

    class Plain(pl.LightningDataModule):  # no seizure_events / read_segment
        test_dataloader = FakeData.test_dataloader
        _loader = FakeData._loader

    trainer = _trainer(tmp_path, cb)
    trainer.test(TinyModule(), datamodule=Plain(), verbose=False)
    none_model = TinyModule(returns_none=True)
    trainer = _trainer(tmp_path, cb)
    trainer.test(none_model, datamodule=FakeData(EVENTS[:2]), verbose=False)
    assert none_model.calls == 2
    assert not (tmp_path / "p").exists() and cb.localizations == []
    text = caplog.text
    assert "lacks seizure_events, read_segment, sfreq, channels" in text
    assert "returned no map" in text


def test_bad_map_raises_naming_the_event(tmp_path):
    class WrongChannels(TinyModule):
        def activation_maps(self, signal, sfreq, channels):
            m = super().activation_maps(signal, sfreq, channels)
            return ActivationMaps(m.activity[:17], m.times_s, m.channels[:17], kind="ecam")

    cb = ActivationMapLogger(max_events=1, pre_s=5, post_s=10, out_dir=tmp_path / "p")
    trainer = _trainer(tmp_path, cb)
    with pytest.raises(ValueError, match=r"test event chb01_03 \(onset 40.0 s\).*CZ-PZ"):
        trainer.test(WrongChannels(), datamodule=FakeData(EVENTS[:1]), verbose=False)


def test_round_robin_and_argument_checks():
    evs = [Event(p, f"{p}_{i}", 1.0, None, None) for p, i in
           [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("c", 2)]]
    assert [e.recording_id for e in _round_robin(evs, 4)] == ["a_1", "b_1", "c_1", "a_2"]
    assert len(_round_robin(evs, 10)) == 6 and _round_robin([], 3) == []
    for bad in (dict(every_n_epochs=0), dict(max_events=0), dict(post_s=0), dict(pre_s=-1)):
        with pytest.raises(ValueError):
            ActivationMapLogger(**bad)
    assert EventLocalization.__dataclass_params__.frozen
