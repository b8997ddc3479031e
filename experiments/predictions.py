"""Per-window predictions: from ``predict_step`` batches to a table, and to ``predictions.csv``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def collect_predictions(batches: list[dict]) -> dict:
    """Concatenate ``predict_step`` outputs into per-window columns (recording, patient,
    start_s, probability). Window models give one probability per item; clip models (SZLoc) one
    per window of each clip (``window_start_s``). A window predicted twice (overlapping last
    clip of a recording) keeps its first prediction."""
    rec, pat, start, prob = [], [], [], []
    for b in batches:
        p = torch.as_tensor(b.get("prob", b.get("probability"))).float()
        per_item = p.shape[1] if p.ndim == 2 else 1
        s = torch.as_tensor(b["window_start_s"] if "window_start_s" in b else b["start_s"]).float()
        rec += [r for r in b["recording"] for _ in range(per_item)]
        pat += [q for q in b["patient"] for _ in range(per_item)]
        start.append(s.reshape(-1).numpy())
        prob.append(p.reshape(-1).numpy())
    start_a = np.concatenate(start) if start else np.zeros(0)
    prob_a = np.concatenate(prob) if prob else np.zeros(0)
    seen, keep = set(), []
    for i, key in enumerate(zip(rec, np.round(start_a, 3))):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    keep = np.asarray(keep, dtype=int)
    return {"recording": [rec[i] for i in keep], "patient": [pat[i] for i in keep],
            "start_s": start_a[keep] if keep.size else start_a, "probability": prob_a[keep] if keep.size else prob_a}


def write_predictions(path: Path, table: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write("recording,patient,start_s,probability\n")
        for r, p, s, q in zip(table["recording"], table["patient"], table["start_s"], table["probability"]):
            fh.write(f"{r},{p},{s:.3f},{q:.6f}\n")
    tmp.replace(path)
