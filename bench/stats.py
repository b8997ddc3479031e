"""Repeated measurements and the summary statistics the benchmark reports (median first)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """Several repetitions of one figure.

    The median is the reported value: on a machine shared with other work, occasional slow
    repetitions are interference, not the code, and the median ignores them where a mean would not.
    """

    values: tuple[float, ...]
    unit: str

    def __post_init__(self):
        if not self.values:
            raise ValueError(f"a measurement in {self.unit} needs at least one value")

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    def to_dict(self) -> dict:
        return {"median": self.median, "min": float(min(self.values)), "max": float(max(self.values)),
                "values": [float(v) for v in self.values], "unit": self.unit}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Measurement:
    """Wall seconds of ``fn()``, ``warmup`` untimed calls first (caches, lazy init), then ``repeats``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Measurement(tuple(out), "s")
