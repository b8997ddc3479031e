"""The SZLoc loss ensemble: learning where seizures start from inexact labels.

Craley et al. (MIDL 2022) train SZLoc with several losses at once, because neither label is
exact: the marked onset time is uncertain by seconds (temporal), and the seizure onset zone is a
coarse set of electrodes or a region named by a clinician (spatial).

* **Detection** (temporal): binary cross-entropy per window on the channel-max logit (the most
  active channel must say "seizure" when there is one) and on the global logit, computed only on
  windows whose label is trusted, so the uncertain time around the marked onset does not teach
  wrong labels: ``detection_exclude="band"`` (default) leaves out windows within ``band_s`` of a
  marked onset; ``"windows"`` (the re-implementation) leaves out the fixed windows
  ``exclude_windows`` (15-29 of 45: detection on windows 0-14 and 30-44) of every clip built
  around an onset, and the band around any onset in other clips. ``use_band=False`` trains on
  every window (the ablation).
* **Spatial** (only on seizure clips with a known SOZ): each onset map is divided by its maximum
  over channels, then

  - positive: SOZ channels high, mean over SOZ channels of ``(1 - m)^2``;
  - negative: other channels low, mean over the other channels of ``m^2``;
  - margin: the best SOZ channel above the best other one. ``margin_kind="hinge"`` (default):
    ``relu(margin - (max_soz m - max_other m))``, zero once the SOZ leads by ``margin``;
    ``"reference"`` (the re-implementation's ``MapLossMargin``):
    ``(1 - max_soz m^2 + max_other m^2) / 2``, which keeps pushing the best other channel down
    however far the SOZ leads (0.245 where the hinge gives 0 for a lead of 0.3: 1 vs 0.7).

Every term has a weight; a weight of 0 switches the term off (it is not even computed). The
re-implementation weighted detection 1 + 1, positive 2, negative 1, margin 1, on both maps: the
defaults here. Pure torch, no Lightning.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

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
                  margin: float = 0.2, margin_kind: str = "hinge") -> dict[str, torch.Tensor]:
    """Positive, negative and margin terms of one onset map.

    Parameters
    ----------
    onset_map : Tensor, shape (B, C), values >= 0
    soz : Tensor, shape (B, C)
        1 for channels in the seizure onset zone, 0 elsewhere.
    clip_mask : Tensor, shape (B,), bool
        Clips the spatial terms apply to (seizure clips with a known SOZ).
    margin : float
        How far (in units of the map's maximum) the best SOZ channel must lead (hinge only).
    margin_kind : {"hinge", "reference"}
        ``relu(margin - (best_soz - best_other))`` or the re-implementation's
        ``(1 - best_soz^2 + best_other^2) / 2``.

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
    if margin_kind == "reference":
        mar = (1.0 - best_soz ** 2 + best_other ** 2) / 2
    else:
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
        False for the ablation that trains detection on every window (no exclusion at all).
    margin : float
        Lead required of the best SOZ channel over the best other channel (normalized map) by
        the hinge margin.
    margin_kind : {"hinge", "reference"}
        The margin term, see :func:`spatial_terms`.
    detection_exclude : {"band", "windows"}
        Which windows the detection terms leave out (see the module docstring).
    exclude_windows : (int, int)
        Inclusive window range left out of clips built around an onset with
        ``detection_exclude="windows"`` ((15, 29): the re-implementation's 45-window clips, the
        onset placed in windows 16-29).
    """

    def __init__(self, weights: SZLocLossWeights | None = None, band_s: float = 5.0,
                 use_band: bool = True, margin: float = 0.2,
                 margin_kind: Literal["hinge", "reference"] = "hinge",
                 detection_exclude: Literal["band", "windows"] = "band",
                 exclude_windows: tuple[int, int] = (15, 29)):
        super().__init__()
        if band_s < 0:
            raise ValueError(f"band_s must be >= 0, got {band_s}")
        if margin_kind not in ("hinge", "reference"):
            raise ValueError(f"margin_kind must be 'hinge' or 'reference', got {margin_kind!r}")
        if detection_exclude not in ("band", "windows"):
            raise ValueError(f"detection_exclude must be 'band' or 'windows', got {detection_exclude!r}")
        lo, hi = (int(v) for v in exclude_windows)
        if not 0 <= lo <= hi:
            raise ValueError(f"exclude_windows must be (first, last) with 0 <= first <= last, got {exclude_windows}")
        self.weights = weights or SZLocLossWeights()
        self.band_s = float(band_s)
        self.use_band = use_band
        self.margin = float(margin)
        self.margin_kind = str(margin_kind)
        self.detection_exclude = str(detection_exclude)
        self.exclude_windows = (lo, hi)

    def detection_windows(self, onset_dist_s: torch.Tensor, is_seizure_clip: torch.Tensor) -> torch.Tensor:
        """(B, N) bool: the windows the detection terms are computed on."""
        if not self.use_band:
            return detection_mask(onset_dist_s, None)
        mask = detection_mask(onset_dist_s, self.band_s)
        if self.detection_exclude == "windows":
            n = onset_dist_s.shape[1]
            lo, hi = self.exclude_windows
            if hi >= n:
                raise ValueError(f"exclude_windows {self.exclude_windows} lie outside clips of {n} windows")
            idx = torch.arange(n, device=onset_dist_s.device)
            fixed = (idx < lo) | (idx > hi)
            mask = torch.where(is_seizure_clip.to(torch.bool)[:, None], fixed[None].expand_as(mask), mask)
        return mask

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
        mask = self.detection_windows(onset_dist_s, is_seizure_clip)
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
            values = spatial_terms(onset_map, soz, clip_mask, self.margin, self.margin_kind)
            for t, wt in wanted.items():
                if wt > 0:
                    terms[f"{name}_{t}"] = wt * values[t]

        if terms:
            total = torch.stack(list(terms.values())).sum()
        else:  # every term switched off: a zero that still reaches the parameters
            total = output.global_logits.float().sum() * 0.0
        return SZLocLossTerms(total, terms, mask.sum(), clip_mask.sum())
