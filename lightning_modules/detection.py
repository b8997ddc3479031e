"""Seizure detection LightningModule for any window classifier (LSN, braindecode-style models).

The module never reads files: it receives window batches from the DataModule (the batch
contract: ``x`` (B, C, T) microvolts, ``y``, ``boundary_dist_s``, ``onset_dist_s``, ``soz``,
``has_soz``, ``recording``, ``patient``, ``start_s``) and a model mapping (B, C, T) to logits
(B, 2) or (B, 1). Models that expose ``ecam(x, with_freq)`` (LightSeizureNet) also get the
spatial SOZ loss terms and :meth:`SeizureDetectionModule.activation_maps`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAUROC,
    BinaryAveragePrecision,
    BinaryF1Score,
    BinaryRecall,
    BinarySpecificity,
)

from lightning_modules.activation_maps import ActivationMaps
from lightning_modules.checkpoints import SelfDescribing
from lightning_modules.losses import DetectionLoss, seizure_logit
from lightning_modules.lsn import dominant_frequency, frequency_track
from lightning_modules.schedules import check_optimizer_args, configure_schedule


class SeizureDetectionModule(SelfDescribing, pl.LightningModule):
    """Train, validate, test and predict a window-level seizure detector.

    Parameters
    ----------
    model : nn.Module
        Maps (B, C, T) microvolts to logits (B, 2) or (B, 1).
    model_spec : mapping, optional
        ``{"name": <allow-list name>, "kwargs": {...}}`` of the model, for its checkpoints
        (:mod:`lightning_modules.checkpoints`). Not needed for models of the allow-list that
        report ``init_kwargs`` (LightSeizureNet, SZLoc).
    loss, class_weights, focal_gamma, boundary_band_s, boundary_weight, detection_weight,
    soz_positive_weight, soz_negative_weight, soz_margin_weight, soz_margin
        Loss ensemble, see :class:`~lightning_modules.losses.DetectionLoss`. The spatial terms
        use the time-averaged ECAM of models that have one (ignored, with a warning, otherwise).
    threshold : float
        Probability threshold of the window metrics (sensitivity, specificity, F1).
    lr, weight_decay, betas : float, float, (float, float)
        AdamW.
    scheduler : {"cosine", "onecycle", "none"}
        Per-step learning-rate schedule over ``trainer.estimated_stepping_batches``:
        linear warm-up over ``warmup_frac`` of the steps then cosine decay to
        ``lr * min_lr_ratio``; or OneCycle peaking at ``lr`` after ``pct_start``; or constant.
    activation_rate_hz : float
        Time resolution of :meth:`activation_maps`.
    prior_correction : bool
        Whether the runner corrects the reported probabilities for the balanced sampling
        (prior shift): it then sets ``logit_shift`` from the data.
    logit_shift : float
        Added to the seizure logit of every probability the module reports (metrics,
        predictions, maps; never to the loss): ``logit(p_data) - logit(p_sampled)`` makes a model
        trained on 1:3 balanced windows report probabilities at the data's own seizure
        prevalence. Thresholds and AUROC rankings are unchanged in order, not in value.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        model_spec: Mapping[str, Any] | None = None,
        loss: Literal["ce", "focal"] = "ce",
        class_weights: Sequence[float] | None = None,
        focal_gamma: float = 2.0,
        boundary_band_s: float = 4.0,
        boundary_weight: float = 0.5,
        boundary_at: Literal["onset", "both"] = "onset",
        detection_weight: float = 1.0,
        soz_positive_weight: float = 0.0,
        soz_negative_weight: float = 0.0,
        soz_margin_weight: float = 0.0,
        soz_margin: float = 1.0,
        threshold: float = 0.5,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
        warmup_frac: float = 0.0,
        min_lr_ratio: float = 0.01,
        pct_start: float = 0.3,
        activation_rate_hz: float = 8.0,
        prior_correction: bool = True,
        logit_shift: float = 0.0,
    ):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        check_optimizer_args(lr, weight_decay, scheduler, warmup_frac, min_lr_ratio)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if activation_rate_hz <= 0:
            raise ValueError(f"activation_rate_hz must be > 0, got {activation_rate_hz}")
        self.save_hyperparameters(ignore=["model", "model_spec"])
        self.model = model
        self.model_spec = dict(model_spec) if model_spec is not None else None
        #: What the runner knows about the inputs and the operating point (montage, sampling
        #: rate, preprocessing, post-processing, threshold); saved in every checkpoint.
        self.run_spec: dict = {}
        self.loss_fn = DetectionLoss(
            kind=loss, class_weights=tuple(class_weights) if class_weights is not None else None,
            focal_gamma=focal_gamma, boundary_band_s=boundary_band_s, boundary_weight=boundary_weight,
            boundary_at=boundary_at,
            detection_weight=detection_weight, soz_positive_weight=soz_positive_weight,
            soz_negative_weight=soz_negative_weight, soz_margin_weight=soz_margin_weight,
            soz_margin=soz_margin)
        if self.loss_fn.uses_spatial and not self.has_cam:
            rank_zero_warn(f"{type(model).__name__} has no ecam(): the spatial SOZ loss terms are skipped")
        metrics = MetricCollection({
            "auroc": BinaryAUROC(),
            "ap": BinaryAveragePrecision(),
            "sensitivity": BinaryRecall(threshold=threshold),
            "specificity": BinarySpecificity(threshold=threshold),
            "f1": BinaryF1Score(threshold=threshold),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        n_chans, n_times = getattr(model, "n_chans", None), getattr(model, "n_times", None)
        if n_chans is not None and n_times is not None:
            self.example_input_array = torch.zeros(2, int(n_chans), int(n_times))

    @property
    def has_cam(self) -> bool:
        return callable(getattr(self.model, "ecam", None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def probability(self, logits: torch.Tensor) -> torch.Tensor:
        """Seizure probability of model outputs, prior-corrected by ``logit_shift``."""
        return torch.sigmoid(seizure_logit(logits) + float(self.hparams.logit_shift))

    # -- steps ------------------------------------------------------------------------------
    def _shared_step(self, batch: dict, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["x"]
        channel_logit = None
        if self.loss_fn.uses_spatial and self.has_cam:
            out = self.model.ecam(x, with_freq=False)
            logits = out.logits
            cam = getattr(out, "cam_features", None)
            channel_logit = (cam if cam is not None else out.cam).mean(-1)
        else:
            logits = self.model(x)
        terms = self.loss_fn(logits, batch, channel_logit)
        bs = x.shape[0]
        on_step = stage == "train"
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value.detach(), on_step=on_step, on_epoch=True,
                     prog_bar=name == "loss", batch_size=bs)
        return terms["loss"], self.probability(logits.detach())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, prob = self._shared_step(batch, "val")
        self.val_metrics.update(prob, batch["y"].long())
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, batch_size=prob.shape[0])
        return loss

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, prob = self._shared_step(batch, "test")
        self.test_metrics.update(prob, batch["y"].long())
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True, batch_size=prob.shape[0])
        return loss

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Per-window seizure probability with the window's identity.

        Returns a dict: ``prob`` (B,) float tensor, ``recording`` and ``patient`` (lists of str),
        ``start_s`` (B,) tensor, and ``y`` (B,) when the batch has labels.
        """
        prob = self.probability(self.model(batch["x"])).float().cpu()
        out: dict[str, Any] = {
            "prob": prob,
            "recording": list(batch["recording"]),
            "patient": list(batch["patient"]),
            "start_s": torch.as_tensor(batch["start_s"]).float().cpu(),
        }
        if "y" in batch:
            out["y"] = torch.as_tensor(batch["y"]).cpu()
        return out

    # -- optimization -----------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                betas=tuple(hp.betas))
        return configure_schedule(opt, hp.scheduler, self.trainer.estimated_stepping_batches, lr=hp.lr,
                                  warmup_frac=hp.warmup_frac, min_lr_ratio=hp.min_lr_ratio,
                                  pct_start=hp.pct_start)

    # -- activation maps (ECAM panels) ------------------------------------------------------
    @torch.no_grad()
    def activation_maps(self, signal: np.ndarray, sfreq: float,
                        channels: Sequence[str]) -> ActivationMaps | None:
        """ECAM over a whole EEG segment, for the ECAM panels; None if the model has no ``ecam``.

        Parameters
        ----------
        signal : np.ndarray, shape (C, T_long)
            Segment in microvolts (e.g. 90 s around an onset), same montage as training.
        sfreq : float
            Its sampling frequency; must equal the model's.
        channels : sequence of str
            Channel names, C of them.

        Returns
        -------
        ActivationMaps or None
            The segment is cut into consecutive non-overlapping windows of the model's
            ``n_times`` (a last, partial window is replaced by the window ending at the segment
            end, whose CAM fills only the samples not yet covered) and run in eval mode. The
            per-sample ECAMs are concatenated along time and average-pooled into steps of
            ``round(sfreq / activation_rate_hz)`` samples -> ``activity`` (C, n_steps) in logit
            units; ``times_s`` are the step centres; ``probability`` is the seizure
            probability of the window each sample belongs to, pooled the same way;
            ``freq_hz`` is :func:`~lightning_modules.lsn.dominant_frequency` of the whole
            segment weighted by the positive ECAM (a Welch spectrum whose 1 s segments count
            as much as they are activated; NaN for a channel whose mean positive ECAM is under
            a tenth of the segment's most activated channel's); ``freq_track_hz`` is
            :func:`~lightning_modules.lsn.frequency_track`, one value per second where the
            channel's ECAM exceeds a tenth of the segment's maximum.
        """
        if not self.has_cam:
            return None
        sig = np.asarray(signal, dtype=np.float32)
        channels = tuple(channels)
        n_chans = getattr(self.model, "n_chans", sig.shape[0] if sig.ndim == 2 else None)
        if sig.ndim != 2 or sig.shape[0] != len(channels) or sig.shape[0] != n_chans:
            raise ValueError(f"activation_maps needs a (channels, time) signal with {n_chans} "
                             f"channels matching {len(channels)} names, got shape {sig.shape}")
        model_sfreq = getattr(self.model, "sfreq", None)
        if model_sfreq is not None and abs(float(model_sfreq) - float(sfreq)) > 1e-6:
            raise ValueError(f"signal sampled at {sfreq} Hz, model trained at {model_sfreq} Hz")
        n_times = getattr(self.model, "n_times", None)
        if n_times is None:
            raise ValueError(f"{type(self.model).__name__} has no n_times: window length unknown")
        n_total = sig.shape[1]
        if n_total < n_times:
            raise ValueError(f"segment of {n_total} samples is shorter than one window ({n_times})")

        starts = list(range(0, n_total - n_times + 1, n_times))
        if starts[-1] + n_times < n_total:
            starts.append(n_total - n_times)
        x = torch.from_numpy(sig).to(self.device)
        windows = torch.stack([x[:, s:s + n_times] for s in starts])
        was_training = self.model.training
        self.model.eval()
        try:
            cams, probs = [], []
            for chunk in torch.split(windows, 64):
                out = self.model.ecam(chunk, with_freq=False)
                cams.append(out.cam)
                probs.append(self.probability(out.logits))
        finally:
            self.model.train(was_training)
        cam_w, prob_w = torch.cat(cams), torch.cat(probs)
        cam = torch.empty(sig.shape[0], n_total, device=x.device)
        prob = torch.empty(n_total, device=x.device)
        covered = 0
        for k, s in enumerate(starts):
            cam[:, covered:s + n_times] = cam_w[k, :, covered - s:]
            prob[covered:s + n_times] = prob_w[k]
            covered = s + n_times

        step = max(1, int(round(sfreq / float(self.hparams.activation_rate_hz))))
        edges = list(range(0, n_total, step)) + [n_total]
        activity = torch.stack([cam[:, a:b].mean(1) for a, b in zip(edges[:-1], edges[1:])], 1)
        probability = torch.stack([prob[a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
        times_s = np.array([(a + b) / 2 / sfreq for a, b in zip(edges[:-1], edges[1:])])
        band = getattr(self.model, "freq_band", (1.0, 30.0))
        # "activated" is relative to the segment: a channel (or second) whose positive ECAM stays
        # under a tenth of the segment's strongest gets no frequency, rather than the 1/f edge of
        # its background spectrum
        positive = cam.clamp(min=0)
        floor = 0.1 * float(positive.max())
        freq = dominant_frequency(x, positive, float(sfreq), *band)
        mass = positive.mean(1)
        freq = torch.where(mass >= 0.1 * mass.max().clamp(min=1e-12), freq, torch.full_like(freq, float("nan")))
        track, track_t = (frequency_track(x, positive, float(sfreq), fmin=band[0], fmax=band[1], min_weight=floor)
                          if n_total >= 2 * sfreq else (None, None))
        return ActivationMaps(activity=activity.cpu().numpy().astype(np.float32), times_s=times_s,
                              channels=channels, freq_hz=freq.cpu().numpy().astype(np.float32),
                              freq_track_hz=None if track is None else track.cpu().numpy().astype(np.float32),
                              freq_times_s=None if track_t is None else track_t.numpy(),
                              attention=None,
                              probability=probability.cpu().numpy().astype(np.float32),
                              kind="ecam")
