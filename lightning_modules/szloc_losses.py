"""The SZLoc loss ensemble: learning where seizures start from inexact labels.

Craley et al. (MIDL 2022) train SZLoc with several losses at once, because neither label is
exact: the marked onset time is uncertain by seconds (temporal), and the seizure onset zone is a
coarse set of electrodes or a region named by a clinician (spatial).

* **Detection** (temporal): binary cross-entropy per window on the channel-max logit (the most
  active channel must say "seizure" when there is one) and on the global logit, computed only on
  windows farther than ``band_s`` from the marked onset, so the uncertain band around it does not
  teach wrong labels. The band can be switched off for ablation.
* **Spatial** (only on seizure clips with a known SOZ): each onset map is divided by its maximum
  over channels, then

  - positive: SOZ channels high, mean over SOZ channels of ``(1 - m)^2``;
  - negative: other channels low, mean over the other channels of ``m^2``;
  - margin: the best SOZ channel above the best other one, ``relu(margin - (max_soz m - max_other m))``,
    zero once the SOZ leads by ``margin``.

Every term has a weight; a weight of 0 switches the term off (it is not even computed). The
re-implementation weighted detection 1 + 1, positive 2, negative 1, margin 1, on both maps: the
defaults here. Pure torch, no Lightning.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

#: Onset distance given to windows of clips without a seizure onset (always outside the band).
NO_ONSET = 1e9


@dataclass(frozen=True)
class SZLocLossWeights:
    """Weight of every loss term; 0 switches a term off.

    ``det_channel`` / ``det_global``: detection on the channel-max / global logits.
    ``{map}_{term}`` for map in (attn: attention-weighted map, rise: probability-rise map) and term
    in (pos, neg, margin).
    """

    det_channel: float = 1.0
    det_global: float = 1.0
    attn_pos: float = 2.0
    attn_neg: float = 1.0
    attn_margin: float = 1.0
    rise_pos: float = 2.0
    rise_neg: float = 1.0
    rise_margin: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"loss weight {f.name} must be >= 0, got {getattr(self, f.name)}")

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class SZLocLossTerms:
    """The result of :class:`SZLocLoss`: the weighted total and each weighted term (only the terms
    switched on), plus how many windows / clips each kind of term averaged over (tensors, so
    reading them does not force a device synchronization)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    n_detection_windows: torch.Tensor
    n_spatial_clips: torch.Tensor


def detection_mask(onset_dist_s: torch.Tensor, band_s: float | None) -> torch.Tensor:
    """Windows whose label is trusted: ``|onset_dist_s| > band_s`` (all windows if ``band_s`` is
    None). ``onset_dist_s`` is window centre minus marked onset, in seconds (``NO_ONSET`` for
    clips without an onset)."""
    if band_s is None:
        return torch.ones_like(onset_dist_s, dtype=torch.bool)
    return onset_dist_s.abs() > band_s


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the masked elements (0, still in the graph, if none)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def normalize_map(onset_map: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Divide each clip's map by its maximum over channels (maps are >= 0), in float32."""
    m = onset_map.float()
    return m / (m.amax(dim=1, keepdim=True) + eps)


def spatial_terms(onset_map: torch.Tensor, soz: torch.Tensor, clip_mask: torch.Tensor,
                  margin: float = 0.2) -> dict[str, torch.Tensor]:
    """Positive, negative and margin terms of one onset map.

    Parameters
    ----------
    onset_map : Tensor, shape (B, C), values >= 0
    soz : Tensor, shape (B, C)
        1 for channels in the seizure onset zone, 0 elsewhere.
    clip_mask : Tensor, shape (B,), bool
        Clips the spatial terms apply to (seizure clips with a known SOZ).
    margin : float
        How far (in units of the map's maximum) the best SOZ channel must lead.

    Returns
    -------
    dict with ``pos``, ``neg``, ``margin``: each the mean over the clips where it is defined
    (pos: at least one SOZ channel; neg: at least one other channel; margin: both), 0 when none.
    """
    m = normalize_map(onset_map)
    soz = soz.to(m.dtype)
    other = 1.0 - soz
    n_soz, n_other = soz.sum(dim=1), other.sum(dim=1)
    keep = clip_mask.to(torch.bool)
    has_pos, has_neg = keep & (n_soz > 0), keep & (n_other > 0)

    pos = ((1.0 - m) ** 2 * soz).sum(dim=1) / n_soz.clamp_min(1.0)
    neg = (m ** 2 * other).sum(dim=1) / n_other.clamp_min(1.0)
    # masked max: channels outside a set get -1, below any normalized value
    best_soz = torch.where(soz > 0, m, torch.full_like(m, -1.0)).amax(dim=1)
    best_other = torch.where(other > 0, m, torch.full_like(m, -1.0)).amax(dim=1)
    mar = F.relu(margin - (best_soz - best_other))

    def mean_over(values: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        w = sel.to(values.dtype)
        return (values * w).sum() / w.sum().clamp_min(1.0)

    return {"pos": mean_over(pos, has_pos), "neg": mean_over(neg, has_neg),
            "margin": mean_over(mar, has_pos & has_neg)}


class SZLocLoss(torch.nn.Module):
    """Multi-task loss of SZLoc (Craley et al., MIDL 2022) on an :class:`SZLocOutput`.

    Parameters
    ----------
    weights : SZLocLossWeights
        Weight per term (0 switches it off).
    band_s : float
        Half-width in seconds of the uncertainty band around the marked onset, excluded from the
        detection terms (windows with ``|centre - onset| <= band_s``).
    use_band : bool
        False for the ablation that trains detection on every window.
    margin : float
        Lead required of the best SOZ channel over the best other channel (normalized map).
    """

    def __init__(self, weights: SZLocLossWeights | None = None, band_s: float = 5.0,
                 use_band: bool = True, margin: float = 0.2):
        super().__init__()
        if band_s < 0:
            raise ValueError(f"band_s must be >= 0, got {band_s}")
        self.weights = weights or SZLocLossWeights()
        self.band_s = float(band_s)
        self.use_band = use_band
        self.margin = float(margin)

    def forward(self, output, y: torch.Tensor, onset_dist_s: torch.Tensor, soz: torch.Tensor,
                has_soz: torch.Tensor, is_seizure_clip: torch.Tensor) -> SZLocLossTerms:
        """
        Parameters
        ----------
        output : SZLocOutput
            Model output for B clips of N windows and C channels.
        y : Tensor, shape (B, N)
            Seizure label per window (0/1).
        onset_dist_s : Tensor, shape (B, N)
            Window centre minus marked onset, seconds (``NO_ONSET`` on clips without onset).
        soz : Tensor, shape (B, C)
            Seizure-onset-zone channel mask.
        has_soz, is_seizure_clip : Tensor, shape (B,), bool
        """
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        mask = detection_mask(onset_dist_s, self.band_s if self.use_band else None)
        if w.det_channel > 0:
            channel_max = output.channel_logits.amax(dim=1)  # most active channel per window
            terms["det_channel"] = w.det_channel * masked_bce(channel_max, y, mask)
        if w.det_global > 0:
            terms["det_global"] = w.det_global * masked_bce(output.global_logits, y, mask)

        clip_mask = has_soz.to(torch.bool) & is_seizure_clip.to(torch.bool)
        for name, onset_map in (("attn", output.attention_map), ("rise", output.rise_map)):
            wanted = {t: getattr(w, f"{name}_{t}") for t in ("pos", "neg", "margin")}
            if not any(v > 0 for v in wanted.values()):
                continue
            values = spatial_terms(onset_map, soz, clip_mask, self.margin)
            for t, wt in wanted.items():
                if wt > 0:
                    terms[f"{name}_{t}"] = wt * values[t]

        if terms:
            total = torch.stack(list(terms.values())).sum()
        else:  # every term switched off: a zero that still reaches the parameters
            total = output.global_logits.float().sum() * 0.0
        return SZLocLossTerms(total, terms, mask.sum(), clip_mask.sum())
