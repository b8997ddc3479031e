"""Losses for seizure detection from inexact labels (pure torch, no Lightning).

Seizure annotations are inexact in time (onset and offset marks disagree between readers by
seconds) and in space (the seizure onset zone, SOZ, is known coarsely and for some patients
only). The ensemble below, after SZLoc (Craley et al., MIDL 2022), uses what is reliable:

* detection: class-weighted binary cross-entropy or focal loss per window, with windows in a
  band around annotated onsets and offsets ignored or down-weighted;
* spatial (only on seizure windows of patients with a known SOZ, only for models with a
  channel-resolved activation map): SOZ channels high (positive), other channels low
  (negative), best SOZ channel above best other channel by a margin (margin).

Every term has a weight; a weight of 0 means the term is not computed (ablations).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def seizure_logit(logits: torch.Tensor) -> torch.Tensor:
    """Log-odds of the seizure class, (B,), from (B, 2) softmax logits or (B,)/(B, 1) sigmoid logits.

    For two outputs the softmax probability of class 1 is ``sigmoid(l1 - l0)``, so binary
    cross-entropy on ``l1 - l0`` is exactly the two-class cross-entropy.
    """
    if logits.ndim == 2 and logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.ndim == 1:
        return logits
    raise ValueError(f"expected logits of shape (B, 2), (B, 1) or (B,), got {tuple(logits.shape)}")


def boundary_weights(distance_s: torch.Tensor, band_s: float, weight: float) -> torch.Tensor:
    """Per-window weight: ``weight`` for windows within ``band_s`` seconds of an annotated mark
    (``|distance_s| < band_s``), else 1.

    ``band_s <= 0`` disables the band (all ones); ``weight = 0`` ignores those windows.
    """
    ones = torch.ones_like(distance_s, dtype=torch.float32)
    if band_s <= 0:
        return ones
    return torch.where(distance_s.abs() < band_s, torch.full_like(ones, float(weight)), ones)


def detection_loss(logit: torch.Tensor, y: torch.Tensor, sample_weight: torch.Tensor | None = None,
                   kind: str = "ce", class_weights: tuple[float, float] | None = None,
                   focal_gamma: float = 2.0) -> torch.Tensor:
    """Weighted binary cross-entropy (``kind="ce"``) or focal loss (``"focal"``, Lin et al. 2017).

    The per-window weight is ``class_weights[y] * sample_weight``; the loss is the weighted mean
    (as ``F.cross_entropy`` does with class weights), 0 when every weight is 0.
    """
    target = y.to(logit.dtype)
    bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    if kind == "focal":
        p_true = torch.exp(-bce)  # probability given to the true class
        per = (1 - p_true).pow(focal_gamma) * bce
    elif kind == "ce":
        per = bce
    else:
        raise ValueError(f"unknown detection loss {kind!r}: use 'ce' or 'focal'")
    w = torch.ones_like(per)
    if class_weights is not None:
        cw = torch.as_tensor(class_weights, dtype=per.dtype, device=per.device)
        w = w * cw[y.long()]
    if sample_weight is not None:
        w = w * sample_weight.to(per.dtype)
    return (w * per).sum() / w.sum().clamp(min=1e-12)


@dataclass(frozen=True)
class SpatialLosses:
    """Spatial terms on per-channel seizure logits (each a scalar tensor, 0 if no window qualifies)."""

    positive: torch.Tensor
    negative: torch.Tensor
    margin: torch.Tensor
    n_windows: int


def spatial_losses(channel_logit: torch.Tensor, soz: torch.Tensor, select: torch.Tensor,
                   margin: float = 1.0) -> SpatialLosses:
    """SOZ terms on windows ``select`` (seizure windows of patients with a known SOZ).

    Parameters
    ----------
    channel_logit : torch.Tensor, shape (B, C)
        Seizure logit per channel (e.g. the time-averaged ECAM).
    soz : torch.Tensor, shape (B, C)
        1 for channels in the seizure onset zone.
    select : torch.Tensor of bool, shape (B,)
        Windows the terms apply to; windows whose mask is all zeros or all ones are skipped
        for the terms that need both kinds of channel.
    margin : float
        Required gap (logit units) between the best SOZ channel and the best other channel.

    Returns
    -------
    SpatialLosses
        ``positive``: BCE of SOZ channels toward 1; ``negative``: BCE of the other channels
        toward 0; ``margin``: ``relu(margin - (max_soz - max_other))``; each a mean over the
        selected channels / windows.
    """
    soz = soz.to(channel_logit.dtype)
    is_soz = soz > 0.5
    n_soz = is_soz.sum(1)
    sel = select.bool() & (n_soz > 0)
    zero = channel_logit.sum() * 0.0  # keeps the graph and the device when nothing qualifies
    if not bool(sel.any()):
        return SpatialLosses(zero, zero, zero, 0)
    cl, pos_mask = channel_logit[sel], is_soz[sel]
    bce_pos = F.binary_cross_entropy_with_logits(cl, torch.ones_like(cl), reduction="none")
    bce_neg = F.binary_cross_entropy_with_logits(cl, torch.zeros_like(cl), reduction="none")
    positive = bce_pos[pos_mask].mean()
    neg_mask = ~pos_mask
    negative = bce_neg[neg_mask].mean() if bool(neg_mask.any()) else zero
    both = neg_mask.any(1)
    if bool(both.any()):
        neg_inf = torch.finfo(cl.dtype).min
        best_soz = cl.masked_fill(~pos_mask, neg_inf).amax(1)
        best_other = cl.masked_fill(pos_mask, neg_inf).amax(1)
        gap = F.relu(margin - (best_soz - best_other))
        margin_loss = gap[both].mean()
    else:
        margin_loss = zero
    return SpatialLosses(positive, negative, margin_loss, int(sel.sum()))


class DetectionLoss(nn.Module):
    """The loss ensemble of :class:`~lightning_modules.detection.SeizureDetectionModule`.

    Parameters
    ----------
    kind : {"ce", "focal"}
        Detection loss.
    class_weights : (float, float) or None
        Weight of background and seizure windows.
    focal_gamma : float
        Focusing exponent of the focal loss.
    boundary_band_s : float
        Windows this close (seconds) to an annotated mark get ``boundary_weight`` in the
        detection term; 0 disables the band.
    boundary_weight : float
        0 ignores those windows, values in (0, 1) down-weight them. Ignoring them removes every
        window of a short seizure (a 6 s seizure has none outside a 4 s band): down-weight.
    boundary_at : {"onset", "both"}
        The marks: the annotated onset only (``onset_dist_s``: human onsets are inexact, often
        late; offsets matter less for detection), or onset and offset (``boundary_dist_s``).
    detection_weight, soz_positive_weight, soz_negative_weight, soz_margin_weight : float
        Term weights; 0 means the term is not computed.
    soz_margin : float
        Margin of the margin term, logit units.
    """

    def __init__(self, kind: str = "ce", class_weights: tuple[float, float] | None = None,
                 focal_gamma: float = 2.0, boundary_band_s: float = 0.0,
                 boundary_weight: float = 0.0, boundary_at: str = "onset", detection_weight: float = 1.0,
                 soz_positive_weight: float = 0.0, soz_negative_weight: float = 0.0,
                 soz_margin_weight: float = 0.0, soz_margin: float = 1.0):
        super().__init__()
        if kind not in ("ce", "focal"):
            raise ValueError(f"unknown detection loss {kind!r}: use 'ce' or 'focal'")
        if class_weights is not None and len(class_weights) != 2:
            raise ValueError(f"class_weights needs (background, seizure), got {class_weights!r}")
        if not 0.0 <= boundary_weight <= 1.0:
            raise ValueError(f"boundary_weight must be in [0, 1], got {boundary_weight}")
        if boundary_at not in ("onset", "both"):
            raise ValueError(f"boundary_at must be 'onset' or 'both', got {boundary_at!r}")
        weights = dict(detection_weight=detection_weight, soz_positive_weight=soz_positive_weight,
                       soz_negative_weight=soz_negative_weight, soz_margin_weight=soz_margin_weight)
        for name, w in weights.items():
            if w < 0:
                raise ValueError(f"{name} must be >= 0, got {w}")
        self.kind = kind
        self.class_weights = tuple(float(c) for c in class_weights) if class_weights is not None else None
        self.focal_gamma = float(focal_gamma)
        self.boundary_band_s = float(boundary_band_s)
        self.boundary_weight = float(boundary_weight)
        self.boundary_at = boundary_at
        self.detection_weight = float(detection_weight)
        self.soz_positive_weight = float(soz_positive_weight)
        self.soz_negative_weight = float(soz_negative_weight)
        self.soz_margin_weight = float(soz_margin_weight)
        self.soz_margin = float(soz_margin)

    @property
    def uses_spatial(self) -> bool:
        """Whether any spatial term is switched on (the module then needs a CAM)."""
        return (self.soz_positive_weight + self.soz_negative_weight + self.soz_margin_weight) > 0

    def forward(self, logits: torch.Tensor, batch: dict,
                channel_logit: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Terms and their weighted sum.

        Parameters
        ----------
        logits : torch.Tensor, shape (B, n_outputs)
        batch : dict
            Window batch (``y``; ``boundary_dist_s`` when the band is on; ``soz`` and
            ``has_soz`` for the spatial terms).
        channel_logit : torch.Tensor or None, shape (B, C)
            Per-channel seizure logit; spatial terms are skipped when None.

        Returns
        -------
        dict
            ``"loss"`` (weighted sum) and each computed term (``"detection"``,
            ``"soz_positive"``, ``"soz_negative"``, ``"soz_margin"``).
        """
        y = batch["y"]
        terms: dict[str, torch.Tensor] = {}
        total = logits.sum() * 0.0
        if self.detection_weight > 0:
            sw = None
            if self.boundary_band_s > 0:
                key = "onset_dist_s" if self.boundary_at == "onset" else "boundary_dist_s"
                if key not in batch:
                    raise KeyError(f"boundary_band_s > 0 needs {key!r} in the batch")
                sw = boundary_weights(batch[key], self.boundary_band_s, self.boundary_weight)
            terms["detection"] = detection_loss(seizure_logit(logits), y, sw, self.kind,
                                                self.class_weights, self.focal_gamma)
            total = total + self.detection_weight * terms["detection"]
        if self.uses_spatial and channel_logit is not None:
            select = batch["has_soz"].bool() & (y == 1)
            sp = spatial_losses(channel_logit, batch["soz"], select, self.soz_margin)
            for name, w, value in (("soz_positive", self.soz_positive_weight, sp.positive),
                                   ("soz_negative", self.soz_negative_weight, sp.negative),
                                   ("soz_margin", self.soz_margin_weight, sp.margin)):
                if w > 0:
                    terms[name] = value
                    total = total + w * value
        terms["loss"] = total
        return terms
