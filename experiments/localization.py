"""Localization scores of channel rankings against the seizure onset zone.

A localizer gives one score per channel for one seizure (a model's activation map, the loudest
channel, the earliest rise...). Against the SOZ mask of that seizure's patient it is scored by:

* ``top1``: the highest-scoring channel touches the SOZ;
* ``chance``: the top-1 accuracy of a channel drawn at random (share of SOZ channels);
* ``rank``: the rank (1 = best) of the best-ranked SOZ channel;
* ``auroc``: the channel scores as a classifier of SOZ vs other channels (0.5 = chance).

Over seizures, ``chance_corrected`` is ``(top1 - chance) / (1 - chance)``: 0 at chance, 1 perfect
(Cohen's kappa for this task). At patient level the seizures' maps are averaged first (each
scaled to unit range, so a seizure with strong activation does not outweigh the others).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SeizureLocalization:
    """One method's localization of one seizure."""

    top_channel: str
    top1: bool
    chance: float
    rank: int
    auroc: float

    def as_dict(self) -> dict:
        return asdict(self)


def rank_auroc(scores: np.ndarray, mask: np.ndarray) -> float:
    """AUROC of ``scores`` separating ``mask`` channels from the others (ties count half);
    NaN when one class is empty."""
    s, m = np.asarray(scores, dtype=float), np.asarray(mask) > 0
    pos, neg = s[m], s[~m]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def score_seizure(scores: Sequence[float], mask: Sequence[float], channels: Sequence[str]) -> SeizureLocalization:
    """Score one channel ranking against one SOZ mask (non-finite scores rank last)."""
    s = np.asarray(scores, dtype=float)
    s = np.where(np.isfinite(s), s, -np.inf)
    m = np.asarray(mask) > 0
    if s.shape != m.shape or s.size != len(channels):
        raise ValueError(f"scores {s.shape}, mask {m.shape} and {len(channels)} channels do not match")
    if not m.any():
        raise ValueError("the SOZ mask marks no channel: nothing to localize against")
    order = np.argsort(-s, kind="stable")
    top = int(order[0])
    rank = int(np.flatnonzero(m[order])[0]) + 1
    return SeizureLocalization(str(channels[top]), bool(m[top]), float(m.mean()), rank, rank_auroc(s, m))


def unit_range(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    lo, hi = np.nanmin(s), np.nanmax(s)
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


def summarize(seizures: list[dict]) -> dict:
    """Aggregate per-seizure records ``{"top1", "chance", "rank", "auroc"}`` (a missing
    localization, e.g. an undetected seizure in the detected-onset setting, counts as a miss)."""
    if not seizures:
        return {"n": 0}
    top1 = np.array([bool(s.get("top1", False)) for s in seizures], dtype=float)
    chance = np.array([s["chance"] for s in seizures], dtype=float)
    ranks = np.array([s.get("rank", np.nan) for s in seizures], dtype=float)
    aurocs = np.array([s.get("auroc", np.nan) for s in seizures], dtype=float)
    acc, ch = float(top1.mean()), float(chance.mean())
    return {"n": len(seizures), "top1": acc, "chance": ch,
            "chance_corrected": (acc - ch) / (1 - ch) if ch < 1 else float("nan"),
            "rank": float(np.nanmean(ranks)) if np.isfinite(ranks).any() else float("nan"),
            "auroc": float(np.nanmean(aurocs)) if np.isfinite(aurocs).any() else float("nan")}
