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


#: Untrained baselines a study can report beside its model: detectors score windows, localizers
#: score channels at a seizure's onset (lightning_modules.baselines).
DETECTION_BASELINES: dict[str, str] = {"line_length": "lightning_modules.baselines.LineLengthDetector"}
LOCALIZATION_BASELINES: dict[str, str] = {"largest_amplitude": "lightning_modules.baselines.largest_amplitude_scores",
                                          "earliest_rise": "lightning_modules.baselines.earliest_rise_scores"}


@dataclass(frozen=True)
class EvaluationSettings:
    """What a study reports beside its model, and how sure it is.

    baselines : untrained methods run through the same folds, windows, post-processing,
        threshold choice and scoring (``[]``: none)
    onset_window_s : where localization is scored, around the annotated (or detected) onset
    fa_per_24h : false-alarm rates at which the threshold-free curve's sensitivity is reported
    chance_permutations : random placements of a method's detections for its chance level
    bootstrap : resamples of the patients for the 95 % intervals
    """

    baselines: tuple[str, ...] = ("line_length", "largest_amplitude", "earliest_rise")
    onset_window_s: tuple[float, float] = (-5.0, 10.0)
    fa_per_24h: tuple[float, ...] = (1.0, 5.0)
    chance_permutations: int = 100
    bootstrap: int = 2000

    def __post_init__(self):
        known = {**DETECTION_BASELINES, **LOCALIZATION_BASELINES}
        unknown = [b for b in self.baselines if b not in known]
        if unknown:
            raise ValueError(f"baselines: unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        a, b = self.onset_window_s
        if not a < b:
            raise ValueError(f"onset_window_s must be (start, stop) with start < stop, got {self.onset_window_s}")
        if any(x <= 0 for x in self.fa_per_24h):
            raise ValueError(f"fa_per_24h must be positive rates, got {self.fa_per_24h}")
        if self.chance_permutations < 1 or self.bootstrap < 100:
            raise ValueError("chance_permutations must be >= 1 and bootstrap >= 100")
