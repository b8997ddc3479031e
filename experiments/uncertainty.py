"""How sure a study's numbers are: bootstrap intervals over patients and exact Poisson bounds.

A LOSO study has a handful of held-out patients: the mean over patients moves a lot with which
patients there are, so every headline number gets a 95 % percentile-bootstrap interval that
resamples patients (the unit of generalization). A false-alarm rate from a few hours of EEG
gets the exact (Garwood) Poisson upper bound: 0 false alarms in 2.5 h is "at most 28.8 per 24 h
(95 %)", not "0 per day".
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval (``lo``/``hi`` NaN when it cannot be computed)."""

    value: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n}


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean over patients (NaN skipped, as SzCORE averages) with a percentile-bootstrap
    interval from resampling the patients with replacement."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    if x.size == 1:
        return Interval(float(x[0]), float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return Interval(float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a)), int(x.size))


def bootstrap_statistic(groups: Sequence, statistic: Callable[[list], float], *, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0) -> Interval:
    """Any statistic of a list of per-patient items (e.g. pooled F1 from per-patient counts),
    with a percentile-bootstrap interval over patients."""
    groups = list(groups)
    if not groups:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    value = float(statistic(groups))
    if len(groups) == 1:
        return Interval(value, float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    boots = np.array([statistic([groups[i] for i in rng.integers(0, len(groups), len(groups))])
                      for _ in range(n_boot)], dtype=float)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Interval(value, float("nan"), float("nan"), len(groups))
    a = (1 - level) / 2
    return Interval(value, float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)), len(groups))


def paired_difference(a: Sequence[float], b: Sequence[float], **kw) -> Interval:
    """Mean per-patient difference ``a - b`` (patients where both are finite) with its
    bootstrap interval: a method beats another only when the whole interval is above 0."""
    pairs = [(x, y) for x, y in zip(a, b) if np.isfinite(x) and np.isfinite(y)]
    return bootstrap_mean([x - y for x, y in pairs], **kw)


def poisson_upper(count: float, hours: float, level: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of an event rate, per 24 h (Garwood):
    ``chi2.ppf(level, 2k + 2) / 2`` events over ``hours``. 0 events in 24 h -> 3.0 per 24 h."""
    if hours <= 0:
        return float("nan")
    k = int(round(count))
    return float(stats.chi2.ppf(level, 2 * k + 2) / 2 / (hours / 24.0))
