"""Small settings records of an experiment config that are not a library's own class."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Monitor:
    """The validation metric that picks the best checkpoint and stops training early.

    metric : a logged metric (``val/auroc`` for detectors, ``val/loss`` for SZLoc)
    mode : ``max`` for AUROC or accuracy, ``min`` for a loss
    """

    metric: str = "val/auroc"
    mode: Literal["max", "min"] = "max"

    def __post_init__(self):
        if not self.metric.startswith("val/"):
            raise ValueError(f"metric must be a validation metric (val/...), got {self.metric!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")


@dataclass(frozen=True)
class WandbSettings:
    """Weights & Biases: one run per fold, grouped by the experiment run. ``offline`` needs no
    account and keeps the runs (panels included) in the run folder for a later ``wandb sync``."""

    project: str = "seizure-lightning"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"

    def __post_init__(self):
        if self.mode not in ("offline", "online", "disabled"):
            raise ValueError(f"mode must be offline, online or disabled, got {self.mode!r}")
