"""Seizure localization LightningModule: SZLoc trained on clips with the inexact-label losses.

Craley et al., "SZLoc: A Multi-resolution Architecture for Automated Epileptic Seizure
Localization from Scalp EEG", MIDL 2022. The module never reads files: it receives clip batches
(:class:`datamodules.clips.ClipDataset`): ``x`` (B, C, N*W) microvolts, ``y`` (B, N),
``onset_dist_s`` (B, N), ``soz`` (B, C), ``has_soz``, ``is_seizure_clip``, ``recording``,
``patient``, ``start_s``.

Metrics (validation and test):

* ``loc_acc_seizure``: seizure-level localization accuracy, the share of seizure clips (with a
  known SOZ) whose onset map's top channel is in the SOZ;
* ``loc_acc_seizure_tol``: the same with a neighbour tolerance (the top channel shares an
  electrode with an SOZ channel, or lies within ``neighbour_radius_m`` of one);
* ``loc_acc_patient`` (mean onset map over the patient's seizures, top channel in the SOZ) and
  ``loc_acc_patient_majority`` (more than half of the patient's seizures localized);
* ``auroc``: detection AUROC of the global per-window probabilities.

Each for both onset maps (suffix ``_attn``: attention-weighted; ``_rise``: weighted by the rises
of the seizure probability). Every loss term is logged.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric, SumMetric
from torchmetrics.classification import BinaryAUROC
from torchmetrics.utilities import dim_zero_cat

from eeg.head import electrode_positions
from eeg.montage import DOUBLE_BANANA, channel_electrodes
from lightning_modules.activation_maps import ActivationMaps
from lightning_modules.checkpoints import SelfDescribing
from lightning_modules.schedules import check_optimizer_args, configure_schedule
from lightning_modules.szloc_losses import SZLocLoss, SZLocLossWeights

MAPS = ("attn", "rise")


def neighbour_matrix(channels: Sequence[str], radius_m: float | None = None) -> np.ndarray:
    """(C, C) boolean: channel i is a neighbour of channel j (itself included) when they share an
    electrode (``FP1-F7`` and ``F7-T7``), or, with ``radius_m``, when some electrode of one lies
    within ``radius_m`` metres of some electrode of the other on MNE's standard head (adjacent
    10-20 electrodes are 56-77 mm apart there: 0.08 suits referential montages). Channels with
    unparseable names only neighbour themselves."""
    els = [set(channel_electrodes(c)) for c in channels]
    n = len(channels)
    adj = np.eye(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if els[i] & els[j]:
                adj[i, j] = True
    if radius_m is not None:
        pos = electrode_positions()
        for i in range(n):
            for j in range(n):
                pi = [pos[e] for e in els[i] if e in pos]
                pj = [pos[e] for e in els[j] if e in pos]
                if pi and pj and min(np.linalg.norm(a - b) for a in pi for b in pj) <= radius_m:
                    adj[i, j] = True
    return adj


def tolerance_zone(soz: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """(B, C) mask of channels in the SOZ or neighbouring an SOZ channel."""
    return (soz > 0) | ((soz > 0).to(neighbours.dtype) @ neighbours > 0)


def top_in_zone(maps: torch.Tensor, zone: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the channel with the highest map value is in the zone."""
    top = maps.argmax(dim=1, keepdim=True)
    return zone.gather(1, top).squeeze(1) > 0


def patient_key(patient: str) -> int:
    """Stable integer id of a patient (synchronizes across processes, unlike a string)."""
    return zlib.crc32(patient.encode())


class LocalizationAccuracy(Metric):
    """Seizure- and patient-level localization accuracy of onset maps.

    ``update(maps, soz, tolerance, patients)`` with maps (B, C), SOZ mask (B, C), tolerance zone
    (B, C) and patient ids (B,) int64, for seizure clips with a known SOZ only (B may be 0).
    ``compute()`` returns a dict (empty when no clip was seen): ``seizure``, ``seizure_tol``, ``patient``
    (mean map per patient), ``patient_majority`` (more than half of its seizures hit),
    ``n_seizures``, ``n_patients``.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("maps", "soz", "tolerance", "patients"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, maps: torch.Tensor, soz: torch.Tensor, tolerance: torch.Tensor,
               patients: torch.Tensor) -> None:
        self.maps.append(maps.detach().float())
        self.soz.append(soz.detach().float())
        self.tolerance.append(tolerance.detach().float())
        self.patients.append(patients.detach())

    def compute(self) -> dict[str, torch.Tensor]:
        if isinstance(self.maps, list) and not self.maps:
            return {}
        maps, soz = dim_zero_cat(self.maps), dim_zero_cat(self.soz)
        tol, patients = dim_zero_cat(self.tolerance), dim_zero_cat(self.patients)
        if maps.shape[0] == 0:
            return {}
        hits = top_in_zone(maps, soz).float()
        hits_tol = top_in_zone(maps, tol).float()
        mean_hits, majority = [], []
        for p in torch.unique(patients):
            sel = patients == p
            mean_map = maps[sel].mean(dim=0, keepdim=True)
            mean_hits.append(top_in_zone(mean_map, soz[sel][:1]).float())
            majority.append((hits[sel].mean() > 0.5).float().reshape(1))
        return {
            "seizure": hits.mean(), "seizure_tol": hits_tol.mean(),
            "patient": torch.cat(mean_hits).mean(), "patient_majority": torch.cat(majority).mean(),
            "n_seizures": torch.tensor(float(maps.shape[0]), device=maps.device),
            "n_patients": torch.tensor(float(len(mean_hits)), device=maps.device),
        }


class SeizureLocalizationModule(SelfDescribing, pl.LightningModule):
    """Train, validate, test and predict SZLoc (or any model with its output contract).

    Parameters
    ----------
    model : nn.Module
        Maps a clip (B, C, N*W) to an :class:`~lightning_modules.szloc.SZLocOutput`.
    model_spec : mapping, optional
        ``{"name", "kwargs"}`` of the model for its checkpoints (not needed for SZLoc, which
        reports ``init_kwargs``).
    channels : sequence of str
        Channel names of the model's input rows (the montage), for the neighbour tolerance and
        :meth:`activation_maps`.
    loss_weights : mapping or SZLocLossWeights
        Weights of the loss terms (keys of :class:`~lightning_modules.szloc_losses.SZLocLossWeights`;
        0 switches a term off). Defaults: detection 1 + 1, positive 2, negative 1, margin 1.
    band_s, use_band, margin, margin_kind, detection_exclude, exclude_windows
        Uncertainty band around the marked onset excluded from detection (and the ablation
        switch that trains detection on every window), the margin term (``hinge`` with lead
        ``margin``, or the re-implementation's ``reference`` form), and which windows detection
        leaves out (``band`` around onsets, or the re-implementation's fixed ``windows``
        ``exclude_windows`` of onset clips); see :class:`SZLocLoss`.
    neighbour_radius_m : float or None
        Extra neighbour tolerance by distance (see :func:`neighbour_matrix`).
    lr, weight_decay : float
        AdamW.
    scheduler : {"cosine", "onecycle", "none"}
        Per-step learning-rate schedule (:func:`lightning_modules.schedules.configure_schedule`).
    """

    def __init__(self, model: nn.Module, *, model_spec: Mapping[str, Any] | None = None,
                 channels: Sequence[str] = DOUBLE_BANANA,
                 loss_weights: Mapping[str, float] | SZLocLossWeights | None = None,
                 band_s: float = 5.0, use_band: bool = True, margin: float = 0.2,
                 margin_kind: Literal["hinge", "reference"] = "hinge",
                 detection_exclude: Literal["band", "windows"] = "band",
                 exclude_windows: tuple[int, int] = (15, 29),
                 neighbour_radius_m: float | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-2, scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
                 warmup_frac: float = 0.0, min_lr_ratio: float = 0.01):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        check_optimizer_args(lr, weight_decay, scheduler, warmup_frac, min_lr_ratio)
        if band_s < 0:
            raise ValueError(f"band_s must be >= 0 seconds, got {band_s}")
        if neighbour_radius_m is not None and neighbour_radius_m <= 0:
            raise ValueError(f"neighbour_radius_m must be > 0 or null, got {neighbour_radius_m}")
        channels = tuple(channels)
        n_chans = getattr(model, "n_chans", None)
        if n_chans is not None and n_chans != len(channels):
            raise ValueError(f"{type(model).__name__} has {n_chans} input channels but {len(channels)} "
                             f"channel names were given")
        if isinstance(loss_weights, SZLocLossWeights):
            weights = loss_weights
        else:
            unknown = set(loss_weights or {}) - set(SZLocLossWeights().as_dict())
            if unknown:
                raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: "
                                 f"{sorted(SZLocLossWeights().as_dict())}")
            weights = SZLocLossWeights(**{k: float(v) for k, v in (loss_weights or {}).items()})
        self.save_hyperparameters(ignore=["model", "model_spec", "loss_weights"])
        self.hparams["loss_weights"] = weights.as_dict()
        self.hparams["channels"] = list(channels)
        self.model = model
        self.model_spec = dict(model_spec) if model_spec is not None else None
        #: What the runner knows about the inputs and the operating point; saved in checkpoints.
        self.run_spec: dict = {}
        self.channels = channels
        self.loss_fn = SZLocLoss(weights, band_s=band_s, use_band=use_band, margin=margin,
                                 margin_kind=margin_kind, detection_exclude=detection_exclude,
                                 exclude_windows=tuple(exclude_windows))
        self.register_buffer("neighbours", torch.from_numpy(
            neighbour_matrix(channels, neighbour_radius_m).astype(np.float32)), persistent=False)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_auroc", BinaryAUROC())
            setattr(self, f"{stage}_n_pos", SumMetric())
            setattr(self, f"{stage}_n_windows", SumMetric())
            for m in MAPS:
                setattr(self, f"{stage}_loc_{m}", LocalizationAccuracy())
        n_times = getattr(model, "n_times", None)
        if n_chans is not None and n_times is not None:
            self.example_input_array = torch.zeros(1, int(n_chans), int(n_times))

    def forward(self, x: torch.Tensor):
        return self.model(x)

    # -- steps ------------------------------------------------------------------------------
    def _shared_step(self, batch: dict, stage: str):
        x = batch["x"]
        out = self.model(x)
        terms = self.loss_fn(out, batch["y"], batch["onset_dist_s"], batch["soz"],
                             batch["has_soz"], batch["is_seizure_clip"])
        bs = x.shape[0]
        on_step = stage == "train"
        self.log(f"{stage}/loss", terms.total.detach(), on_step=on_step, on_epoch=True,
                 prog_bar=True, batch_size=bs)
        for name, value in terms.terms.items():
            self.log(f"{stage}/loss_{name}", value.detach(), on_step=on_step, on_epoch=True,
                     batch_size=bs)
        return terms.total, out

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, "train")
        return loss

    def _eval_step(self, batch: dict, stage: str) -> torch.Tensor:
        loss, out = self._shared_step(batch, stage)
        prob = torch.sigmoid(out.global_logits.detach().float()).flatten()
        y = batch["y"].long().flatten()
        getattr(self, f"{stage}_auroc").update(prob, y)
        getattr(self, f"{stage}_n_pos").update(y.sum())
        getattr(self, f"{stage}_n_windows").update(torch.tensor(float(y.numel()), device=y.device))
        # updated on every step, even with no seizure clip in the batch, so that every process
        # takes part in the metric's synchronization
        sel = batch["has_soz"].bool() & batch["is_seizure_clip"].bool()
        soz = batch["soz"][sel]
        tol = tolerance_zone(soz, self.neighbours.to(soz.dtype))
        patients = torch.tensor([patient_key(batch["patient"][i]) for i in sel.nonzero().flatten().tolist()],
                                dtype=torch.long, device=soz.device)
        for m, onset_map in zip(MAPS, (out.attention_map, out.rise_map)):
            getattr(self, f"{stage}_loc_{m}").update(onset_map.detach()[sel], soz, tol, patients)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._eval_step(batch, "test")

    def _log_epoch_metrics(self, stage: str) -> None:
        auroc, n_pos, n_win = (getattr(self, f"{stage}_{k}") for k in ("auroc", "n_pos", "n_windows"))
        if n_win.update_count == 0:  # no evaluation batch ran
            return
        pos, total = float(n_pos.compute()), float(n_win.compute())
        if 0 < pos < total:  # AUROC is undefined with one class only: not logged then
            self.log(f"{stage}/auroc", auroc.compute())
        for metric in (auroc, n_pos, n_win):
            metric.reset()
        for m in MAPS:
            metric = getattr(self, f"{stage}_loc_{m}")
            for key, value in metric.compute().items():
                if not key.startswith("n_"):
                    self.log(f"{stage}/loc_acc_{key}_{m}", value)
                elif m == MAPS[0]:  # counts are the same for both maps
                    self.log(f"{stage}/loc_{key}", value)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Per-window global seizure probability and the onset maps of each clip.

        Returns a dict: ``prob`` (B, N) global probability per window, ``window_start_s`` (B, N)
        start of each window in its recording, ``attention`` (B, N), ``onset_map`` (B, C)
        (attention-weighted) and ``rise_map`` (B, C), ``recording`` and ``patient`` (lists of
        str), ``start_s`` (B,), and ``y`` (B, N) when the batch has labels.
        """
        out = self.model(batch["x"])
        n = out.global_logits.shape[1]
        window_s = self.model.window_samples / self.model.sfreq
        start_s = torch.as_tensor(batch["start_s"]).float().cpu()
        result: dict[str, Any] = {
            "prob": torch.sigmoid(out.global_logits.float()).cpu(),
            "window_start_s": start_s[:, None] + window_s * torch.arange(n, dtype=start_s.dtype),
            "attention": out.attention.float().cpu(),
            "onset_map": out.attention_map.float().cpu(),
            "rise_map": out.rise_map.float().cpu(),
            "recording": list(batch["recording"]),
            "patient": list(batch["patient"]),
            "start_s": start_s,
        }
        if "y" in batch:
            result["y"] = torch.as_tensor(batch["y"]).cpu()
        return result

    # -- optimization -----------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return configure_schedule(opt, hp.scheduler, self.trainer.estimated_stepping_batches, lr=hp.lr,
                                  warmup_frac=hp.warmup_frac, min_lr_ratio=hp.min_lr_ratio)

    # -- onset-map panels -------------------------------------------------------------------
    @torch.no_grad()
    def activation_maps(self, signal: np.ndarray, sfreq: float,
                        channels: Sequence[str]) -> ActivationMaps:
        """Per-channel seizure activity over a segment, for the onset-map panels.

        Parameters
        ----------
        signal : np.ndarray, shape (C, T)
            Segment in microvolts. Rows are matched to the model's channels by name.
        sfreq : float
            Its sampling rate; must equal the model's.
        channels : sequence of str
            Names of the rows of ``signal``.

        Returns
        -------
        ActivationMaps
            The segment's whole windows (a trailing partial window is left out) run as one clip
            in eval mode: the recurrent layers and the attention take any number of windows,
            though the model was trained on ``n_windows``. ``activity`` (C, N) is the
            per-channel seizure probability per window, ``times_s`` the window centres,
            ``attention`` (N,) the temporal attention, ``probability`` (N,) the global seizure
            probability, ``kind="onset_map"``. ``channel_scores()`` of the result (attention
            weighted) over the whole segment is the attention onset map.
        """
        sig = np.asarray(signal)
        channels = tuple(channels)
        if sig.ndim != 2 or sig.shape[0] != len(channels):
            raise ValueError(f"activation_maps needs a (channels, time) signal with {len(channels)} "
                             f"rows matching the channel names, got shape {sig.shape}")
        model_sfreq = float(getattr(self.model, "sfreq", sfreq))
        if abs(model_sfreq - float(sfreq)) > 1e-6:
            raise ValueError(f"signal sampled at {sfreq} Hz, model trained at {model_sfreq} Hz")
        missing = [c for c in self.channels if c not in channels]
        if missing:
            raise ValueError(f"signal lacks the model's channel(s) {', '.join(missing)}")
        w = int(self.model.window_samples)
        n = sig.shape[1] // w
        if n < 1:
            raise ValueError(f"segment of {sig.shape[1]} samples is shorter than one window ({w})")
        rows = [channels.index(c) for c in self.channels]
        param = next(self.model.parameters())
        x = torch.as_tensor(sig[rows, : n * w], dtype=param.dtype, device=param.device)[None]
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model(x)
        finally:
            self.model.train(was_training)
        window_s = w / model_sfreq
        return ActivationMaps(
            activity=torch.sigmoid(out.channel_logits[0].float()).cpu().numpy(),
            times_s=(np.arange(n) + 0.5) * window_s,
            channels=self.channels,
            attention=out.attention[0].float().cpu().numpy(),
            probability=torch.sigmoid(out.global_logits[0].float()).cpu().numpy(),
            kind="onset_map",
        )
