"""The scale series' straight line: build seconds against EEG hours, and what it predicts.

A least-squares fit ``seconds = intercept + slope * hours`` per implementation row label, from
the medians of the scale series. The predictions for whole datasets are that line extended, and
say so: CHB-MIT is 983 h (PhysioNet); TUSZ v2 is "more than 1,000 h", so 1,000 h gives a lower
bound. On a node with ``c`` cores the one-process slope divides by ``c`` (the parallel build's
efficiency on this machine is reported beside it); on a SLURM array with one task per patient
the wall time is the longest patient's build.
"""
from __future__ import annotations

import numpy as np

#: Dataset sizes the estimates are given for (hours of EEG).
DATASETS = {"CHB-MIT (983 h)": 983.0, "TUSZ (at least 1,000 h)": 1000.0}


def scale_fit(rows: list[dict]) -> dict:
    """Per implementation label: slope (s per EEG hour), intercept (s), peak memory range, and
    the estimates for :data:`DATASETS` (one node at this machine's rate and per core)."""
    out: dict = {}
    for label in dict.fromkeys(r["implementation"] for r in rows):
        pts = [(r["hours"], r["seconds"]["median"], r["peak_rss_mb"]["median"]) for r in rows
               if r["implementation"] == label]
        if len(pts) < 2:
            continue
        hours, secs, peaks = (np.array(v, dtype=float) for v in zip(*pts))
        slope, intercept = np.polyfit(hours, secs, 1)
        jobs = next((r.get("n_jobs") for r in rows if r["implementation"] == label), None)
        out[label] = {
            "slope_s_per_hour": float(slope), "intercept_s": float(intercept), "n_jobs": jobs,
            "hours": [float(h) for h in hours], "peak_rss_mb": [float(p) for p in peaks],
            "peak_growth": float(peaks[-1] / peaks[0]),
            "estimates_s": {name: float(intercept + slope * h) for name, h in DATASETS.items()},
        }
    one, every = out.get("ours, 1 process"), out.get("ours")
    if one and every:
        out["parallel_efficiency"] = float(one["slope_s_per_hour"] / (every["slope_s_per_hour"] * (every["n_jobs"]
                                                                                                  or 1)))
    return out
