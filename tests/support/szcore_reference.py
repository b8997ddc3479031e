"""An independent re-statement of how the official SzCORE evaluator (esl-epfl/szcore-evaluation
with epilepsy2bids' TSV reader) scores a dataset, used to cross-check our in-process scoring.

Its rules: per events TSV, a 1 Hz mask of ``int(recordingDuration * fs)`` samples with each
seizure event set on ``[int(onset * fs), int((onset + duration) * fs))``; a missing hypothesis file
is an all-zero mask; timescoring's default EventScoring and SampleScoring per file; tp, fp,
refTrue and duration summed per subject (``sub-*`` folder); scores per subject; the dataset score
is the mean over subjects with NaN skipped.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from timescoring import scoring
from timescoring.annotations import Annotation

FS = 1
SEIZURE_PREFIX = "sz"


def load_mask(tsv: Path) -> np.ndarray:
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    mask = np.zeros(int(float(rows[0]["recordingDuration"]) * FS))
    for r in rows:
        if r["eventType"].startswith(SEIZURE_PREFIX):
            on, dur = float(r["onset"]), float(r["duration"])
            mask[int(on * FS):int((on + dur) * FS)] = 1
    return mask


def evaluate(reference: Path, hypothesis: Path) -> dict:
    """``{"subjects": {sub: {"event": {...}, "sample": {...}}}, "event": {...}, "sample": {...}}``."""
    per_subject = {}
    for subject in sorted(Path(reference).glob("sub-*")):
        totals = {"event": [0.0, 0.0, 0.0, 0.0], "sample": [0.0, 0.0, 0.0, 0.0]}  # tp, fp, ref, seconds
        for ref_tsv in sorted(subject.glob("**/*.tsv")):
            ref = Annotation(load_mask(ref_tsv).astype(bool), FS)
            hyp_tsv = Path(hypothesis) / ref_tsv.relative_to(reference)
            hyp_mask = load_mask(hyp_tsv).astype(bool) if hyp_tsv.exists() else np.zeros_like(ref.mask)
            hyp = Annotation(hyp_mask, FS)
            for level, sc in (("sample", scoring.SampleScoring(ref, hyp)), ("event", scoring.EventScoring(ref, hyp))):
                t = totals[level]
                t[0] += sc.tp
                t[1] += sc.fp
                t[2] += sc.refTrue
                t[3] += sc.numSamples / sc.fs
        per_subject[subject.name] = {level: _scores(*t) for level, t in totals.items()}
    out = {"subjects": per_subject}
    for level in ("event", "sample"):
        out[level] = {m: float(np.nanmean([s[level][m] for s in per_subject.values()]))
                      for m in ("sensitivity", "precision", "f1", "fp_per_24h")}
    return out


def _scores(tp, fp, ref, seconds) -> dict:
    sens = tp / ref if ref > 0 else np.nan
    prec = tp / (tp + fp) if tp + fp > 0 else np.nan
    f1 = 2 * tp / (2 * tp + fp + (ref - tp)) if ref + fp > 0 else np.nan
    return {"sensitivity": sens, "precision": prec, "f1": f1, "fp_per_24h": fp / (seconds / 3600 / 24),
            "tp": tp, "fp": fp, "ref": ref}
