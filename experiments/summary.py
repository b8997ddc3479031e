"""A study's numbers from its folds' metrics: every method (the model and its baselines) side by
side, with intervals over patients, Poisson bounds, chance levels, threshold-free operating
points, the breakdown by seizure duration and localization against the onset zone.

Pure functions of the folds' ``metrics.json`` contents, so each number is testable on small
hand-made cases; :mod:`experiments.report` writes them out.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .evaluate import DURATION_BINS, add_curves, sensitivity_at
from .localization import score_seizure, summarize, unit_range
from .scoring import Counts, RecordingScore, aggregate, per_patient
from .uncertainty import bootstrap_mean, bootstrap_statistic, paired_difference, poisson_upper

METRICS = ("sensitivity", "precision", "f1", "fp_per_24h")


def _scores(records: list[dict]) -> list[RecordingScore]:
    return [RecordingScore(r["recording_id"], r["patient"], Counts(**r["event"]), Counts(**r["sample"]))
            for r in records]


def _f1(tp, fp, ref) -> float:
    return 2 * tp / (tp + fp + ref) if (tp + fp + ref) > 0 else math.nan


def method_summary(folds: list[dict], name: str, fa_points=(1.0, 5.0), n_boot: int = 2000, seed: int = 0) -> dict:
    """One method over the folds that report it: one held-out patient per fold, or (a
    patient-specific study) one held-out recording per fold, several per patient. The patient is
    the unit either way: counts and threshold-free curves are summed over a patient's folds, window
    AUROCs averaged, and intervals drawn over patients."""
    results = [(f["patient"], f["methods"][name]) for f in folds if name in f.get("methods", {})]
    scores = [s for _, r in results for s in _scores(r["recordings"])]
    patients = per_patient(scores)
    by_patient: dict[str, list[dict]] = {}
    for p, r in results:
        by_patient.setdefault(p, []).append(r)
    for p, rs in by_patient.items():
        aurocs = [r.get("window_auroc", math.nan) for r in rs]
        patients[p]["window_auroc"] = float(np.nanmean(aurocs)) if np.isfinite(aurocs).any() else math.nan
        thresholds = [r.get("threshold") for r in rs]
        patients[p]["threshold"] = thresholds[0] if len(rs) == 1 else thresholds
        own = add_curves([r["curve"] for r in rs])
        patients[p]["sens_at_fa"] = {str(x): sensitivity_at(own, x) if own else math.nan for x in fa_points}
    agg = aggregate(patients, scores) if scores else {}
    for level in ("event", "sample"):
        if not agg:
            break
        for m in METRICS:
            ci = bootstrap_mean([patients[p][level][m] for p in patients], n_boot=n_boot, seed=seed)
            agg[level]["mean_over_patients"][m].update({"lo": ci.lo, "hi": ci.hi})
        pooled = agg[level]["pooled"]
        pooled["fp_per_24h_upper"] = poisson_upper(pooled["fp"], pooled["hours"])
        counts = [patients[p][level] for p in patients]
        pooled["f1_ci"] = bootstrap_statistic(
            counts, lambda cs: _f1(sum(c["tp"] for c in cs), sum(c["fp"] for c in cs), sum(c["ref"] for c in cs)),
            n_boot=n_boot, seed=seed).as_dict()
    curve = add_curves([r["curve"] for _, r in results])
    sens_at = {}
    for x in fa_points:
        per = [patients[p]["sens_at_fa"][str(x)] for p in patients]
        ci = bootstrap_mean(per, n_boot=n_boot, seed=seed)
        sens_at[str(x)] = {"mean": ci.value, "lo": ci.lo, "hi": ci.hi,
                           "pooled": sensitivity_at(curve, x) if curve else math.nan}
    durations: dict[str, dict] = {label: {"detected": 0, "total": 0} for _, _, label in DURATION_BINS}
    for _, r in results:
        for s in r.get("seizures", []):
            durations[s["bin"]]["total"] += 1
            durations[s["bin"]]["detected"] += int(s["detected"])
    auroc = bootstrap_mean([patients[p]["window_auroc"] for p in patients], n_boot=n_boot, seed=seed)
    return {"kind": results[0][1].get("kind", "model") if results else None, "per_patient": patients,
            "aggregate": agg, "window_auroc": auroc.as_dict(), "sens_at_fa": sens_at, "duration": durations,
            "curve": _curve_rates(curve), "chance": chance_summary([r for _, r in results], seed=seed,
                                                                     patients=[p for p, _ in results])}


def _curve_rates(curve: dict) -> dict:
    if not curve:
        return {}
    ref, hours = float(curve["ref"]), float(curve["hours"])
    return {"thresholds": curve["thresholds"],
            "sensitivity": [tp / ref if ref else math.nan for tp in curve["tp"]],
            "fa_per_24h": [fp / (hours / 24) if hours else math.nan for fp in curve["fp"]],
            "ref": ref, "hours": hours}


def chance_summary(results: list[dict], seed: int = 0, patients: list[str] | None = None) -> dict:
    """The method's detections placed at random, per permutation: mean over patients of event
    sensitivity, precision and F1 (as for the method), its mean and 2.5-97.5 % range. ``patients``
    (one per result) sums the counts of a patient's folds first."""
    owners = patients if patients is not None else list(range(len(results)))
    grouped: dict = {}
    for owner, r in zip(owners, results):
        c = r.get("chance")
        if not c:
            continue
        if owner not in grouped:
            grouped[owner] = {"tp": list(c["tp"]), "fp": list(c["fp"]), "ref": c["ref"]}
        else:
            g = grouped[owner]
            k = min(len(g["tp"]), len(c["tp"]))
            g["tp"] = [a + b for a, b in zip(g["tp"][:k], c["tp"][:k])]
            g["fp"] = [a + b for a, b in zip(g["fp"][:k], c["fp"][:k])]
            g["ref"] += c["ref"]
    chances = list(grouped.values())
    if not chances:
        return {}
    n = min(len(c["tp"]) for c in chances)
    per_perm = {"sensitivity": [], "precision": [], "f1": []}
    for k in range(n):
        sens, prec, f1 = [], [], []
        for c in chances:
            tp, fp, ref = c["tp"][k], c["fp"][k], c["ref"]
            sens.append(tp / ref if ref else math.nan)
            prec.append(tp / (tp + fp) if tp + fp else math.nan)
            f1.append(_f1(tp, fp, ref))
        for key, vals in (("sensitivity", sens), ("precision", prec), ("f1", f1)):
            v = np.asarray(vals, float)
            per_perm[key].append(float(np.nanmean(v)) if np.isfinite(v).any() else math.nan)
    out = {}
    for key, vals in per_perm.items():
        v = np.asarray(vals, float)
        v = v[np.isfinite(v)]
        out[key] = ({"mean": float(v.mean()), "lo": float(np.quantile(v, 0.025)), "hi": float(np.quantile(v, 0.975))}
                    if v.size else {"mean": math.nan, "lo": math.nan, "hi": math.nan})
    return out


def localization_summary(folds: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Each localization method over every held-out seizure with a known onset zone, at seizure
    level (with a bootstrap interval over patients) and at patient level (mean unit-range map)."""
    from eeg.montage import soz_channel_mask

    seizures = [s for f in folds for s in f.get("localization_seizures", [])]
    if not seizures:
        return {}
    channels = None
    for f in folds:
        ch = (f.get("channels") or [])
        channels = channels or ch
    names = list(dict.fromkeys(n for s in seizures for n in s["methods"]))
    out = {"n_seizures": len(seizures), "n_patients": len({s["patient"] for s in seizures}),
           "chance": float(np.mean([s["chance"] for s in seizures])), "methods": {}}
    for name in names:
        recs = [{**s["methods"][name], "chance": s["chance"], "patient": s["patient"], "soz": s["soz"]}
                for s in seizures if name in s["methods"] and not s["methods"][name].get("skipped")]
        if not recs:
            continue
        res = summarize(recs)
        by_patient = defaultdict(list)
        for r in recs:
            by_patient[r["patient"]].append(r)
        ci = bootstrap_statistic(list(by_patient.values()),
                                 lambda groups: float(np.mean([bool(r.get("top1")) for g in groups for r in g])),
                                 n_boot=n_boot, seed=seed)
        res["top1_ci"] = {"lo": ci.lo, "hi": ci.hi}
        res["per_patient_top1"] = {p: float(np.mean([bool(r.get("top1")) for r in g])) for p, g in by_patient.items()}
        patient_hits = []
        for group in by_patient.values():
            maps = [unit_range(np.asarray(r["scores"])) for r in group if r.get("scores")]
            if maps and channels:
                mask = soz_channel_mask(tuple(channels), group[0]["soz"])
                patient_hits.append(score_seizure(np.mean(maps, axis=0), mask, tuple(channels)).top1)
        res["patient_top1"] = float(np.mean(patient_hits)) if patient_hits else math.nan
        res["n_patients"] = len(by_patient)
        out["methods"][name] = res
    return out


def compare(methods: dict, model: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """The model against each baseline: paired per-patient difference in event F1 with its
    interval, and the verdict it supports."""
    out = {}
    if model not in methods:
        return out
    mine = methods[model]["per_patient"]
    for name, other in methods.items():
        if name == model:
            continue
        pats = sorted(set(mine) & set(other["per_patient"]))
        d = paired_difference([mine[p]["event"]["f1"] for p in pats],
                              [other["per_patient"][p]["event"]["f1"] for p in pats], n_boot=n_boot, seed=seed)
        out[name] = {"f1_difference": d.as_dict(), "verdict": verdict(d.lo, d.hi, model, name)}
    return out


def chance_verdict(method: dict, name: str) -> str | None:
    """Whether the method's mean event F1 rises above the 97.5 % point of its own detections placed
    at random: a detector that flags most of every recording finds seizures by coverage alone, and
    beating a baseline then shows nothing."""
    f1 = method.get("aggregate", {}).get("event", {}).get("mean_over_patients", {}).get("f1", {}).get("mean")
    hi = (method.get("chance") or {}).get("f1", {}).get("hi")
    if f1 is None or hi is None or not (np.isfinite(f1) and np.isfinite(hi)):
        return None
    if f1 > hi:
        return (f"{name} is above its chance level (event F1 {f1:.2f} > {hi:.2f}, the 97.5 % point of its "
                f"detections placed at random)")
    return (f"{name} is NOT above its chance level (event F1 {f1:.2f} <= {hi:.2f}, the 97.5 % point of its "
            f"detections placed at random): its detections find seizures no more often than chance placement "
            f"would, so no comparison below shows anything")


def verdict(lo: float, hi: float, a: str, b: str) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{a} vs {b}: too few patients to tell"
    if lo > 0:
        return f"{a} beats {b}"
    if hi < 0:
        return f"{b} beats {a}"
    return f"{a} has not shown it beats {b} (the interval includes 0)"


def compare_localization(loc: dict, model: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """The model's map against each localization baseline: paired per-patient difference in
    seizure-level top-1 accuracy, with its interval and verdict."""
    methods = loc.get("methods", {})
    if model not in methods:
        return {}
    mine = methods[model]["per_patient_top1"]
    out = {}
    for name, other in methods.items():
        if name == model or name.startswith(model + "@"):
            continue
        pats = sorted(set(mine) & set(other["per_patient_top1"]))
        d = paired_difference([mine[p] for p in pats], [other["per_patient_top1"][p] for p in pats],
                              n_boot=n_boot, seed=seed)
        out[name] = {"top1_difference": d.as_dict(), "verdict": verdict(d.lo, d.hi, model, name)}
    return out
