"""Run summary: the model beside its baselines and chance, with intervals (summary.json,
summary.md), plots (per patient, timelines, sensitivity against false alarms, duration
breakdown, localization), a self-contained report.html, and a W&B summary table."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from .events import read_events_tsv
from .run_folder import ERROR_FILE, RunFolder
from .summary import chance_verdict, compare, compare_localization, localization_summary, method_summary

COLUMNS = ("sensitivity", "precision", "f1", "fp_per_24h")
#: The stages of a fold, in order, as each fold's metrics ``timing`` names them (panels are drawn
#: inside training and prediction and reported apart).
FOLD_STAGES = {"fit_s": "training", "predict_s": "prediction", "scoring_s": "thresholds and scoring",
               "baselines_s": "baselines", "localization_s": "localization", "saving_s": "saving"}
FA_POINTS = (1.0, 5.0)


def _fmt(v, digits=2):
    if isinstance(v, (list, tuple)):  # one value per fold of the patient (a patient-specific study)
        return ", ".join(_fmt(x, digits) for x in v)
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ci(d: dict, digits=2) -> str:
    """``0.79 [0.55, 0.95]``."""
    v, lo, hi = d.get("mean", d.get("value")), d.get("lo"), d.get("hi")
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return _fmt(v, digits)
    return f"{_fmt(v, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def read_folds(folder: RunFolder) -> tuple[list[dict], dict]:
    metrics, failed = [], {}
    for fold in folder.folds():
        d = folder.fold_dir(fold)
        m = folder.metrics(fold)
        if m is not None:
            metrics.append(m)
        elif (d / ERROR_FILE).exists():
            lines = (d / ERROR_FILE).read_text().strip().splitlines()
            failed[fold] = lines[-1] if lines else "failed"
        else:
            state = folder.status(fold).get("state")
            failed[fold] = ("interrupted: rerun the same run_id to resume" if state == "interrupted"
                            else "did not finish")
    return metrics, failed


def summarize_folds(metrics: list[dict], n_boot: int = 2000) -> dict:
    """Every method, the comparisons, localization: the body of summary.json."""
    model = next((m.get("model_name") for m in metrics if m.get("model_name")), None)
    names = list(dict.fromkeys(n for m in metrics for n in m.get("methods", {})))
    methods = {n: method_summary(metrics, n, FA_POINTS, n_boot=n_boot) for n in names}
    loc = localization_summary(metrics, n_boot=n_boot)
    clip_loc = [m["localization"] for m in metrics if "localization" in m]
    clip = ({k: float(np.nanmean([c.get(k, math.nan) for c in clip_loc]))
             for k in clip_loc[0] if isinstance(clip_loc[0][k], (int, float))} if clip_loc else {})
    unscored = [dict(u, patient=m["patient"]) for m in metrics for u in m.get("unscored_recordings", [])]
    return {
        "model": model, "methods": methods, "comparison": compare(methods, model, n_boot=n_boot) if model else {},
        "chance_verdict": chance_verdict(methods[model], model) if model in methods else None,
        "localization": loc,
        "localization_comparison": compare_localization(loc, model, n_boot=n_boot) if model else {},
        "clip_localization": clip, "unscored_recordings": unscored,
        "model_cost": next((m.get("model") for m in metrics if m.get("model")), None),
        "pruning": [m["pruning"] for m in metrics if "pruning" in m],
    }


def aggregate_run(run_dir: str | Path, cfg: DictConfig | None = None, wall_seconds: float | None = None,
                  data_seconds: float | None = None) -> dict:
    """Read every fold of ``run_dir`` and write summary.json, summary.md, plots and report.html.

    ``wall_seconds`` (the whole run) and ``data_seconds`` (corpus, index and cache) go into the
    summary's ``timing`` beside the folds' own training and evaluation seconds."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    metrics, failed = read_folds(folder)
    n_boot = int(cfg.evaluation.bootstrap) if cfg is not None and "evaluation" in cfg else 2000
    summary = {"name": run_dir.parent.name, "run_id": run_dir.name, "run_dir": str(run_dir),
               "folds_ok": [m["fold"] for m in metrics], "folds_failed": failed,
               "wall_seconds": round(wall_seconds, 1) if wall_seconds is not None else None,
               "timing": _timing(metrics, wall_seconds, data_seconds),
               **summarize_folds(metrics, n_boot=n_boot)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    text = summary_markdown(summary)
    (run_dir / "summary.md").write_text(text)
    fold_dirs = [folder.fold_dir(m["fold"]) for m in metrics]
    plots = write_plots(run_dir, summary, fold_dirs)
    write_html(run_dir, summary, text, plots, fold_dirs)
    if cfg is not None:
        log_summary_to_wandb(cfg, run_dir, summary)
    summary["text"] = text
    return summary


def _timing(metrics: list[dict], wall_seconds: float | None, data_seconds: float | None) -> dict:
    """Where the time went: data (corpus, index, cache), training (fits), evaluation (prediction,
    thresholds, scoring, baselines, localization, panels), summed over the folds."""
    fit = sum(float(m.get("fit_seconds") or 0.0) for m in metrics)
    total = sum(float(m.get("total_seconds") or 0.0) for m in metrics)
    parts: dict[str, float] = {}
    timed = [m for m in metrics if m.get("timing")]  # folds written before the breakdown existed have none
    for m in timed:  # per-fold breakdown (fit, predict, scoring, baselines, localization, saving, panels)
        for k, v in m["timing"].items():
            parts[k] = round(parts.get(k, 0.0) + float(v), 1)
    return {"data_s": None if data_seconds is None else round(data_seconds, 1), "training_s": round(fit, 1),
            "evaluation_s": round(max(total - fit, 0.0), 1),
            "wall_s": None if wall_seconds is None else round(wall_seconds, 1), "folds": parts,
            "folds_timed": len(timed), "folds_total": len(metrics)}


# -- markdown ------------------------------------------------------------------------------------
def _label(name: str, m: dict, model: str) -> str:
    return f"**{name}** (learned)" if name == model and m.get("kind") == "model" else f"{name} (untrained)"


def summary_markdown(s: dict) -> str:
    lines = [f"# {s['name']} / {s['run_id']}", ""]
    methods, model = s.get("methods", {}), s.get("model")
    head = methods.get(model, {}).get("aggregate", {}).get("event", {}).get("pooled", {})
    if s.get("wall_seconds") is not None:
        t = s.get("timing") or {}
        parts = [f"{k} {t[k + '_s'] / 60:.1f} min" for k in ("data", "training", "evaluation")
                 if t.get(k + "_s") is not None]
        detail = (f" Summed over its folds, earlier invocations of a resumed run included: {', '.join(parts)}."
                  if parts else "")
        w = s["wall_seconds"]
        lines.append(f"Wall time of this invocation: {f'{w / 60:.1f} min' if w >= 60 else f'{w:.0f} s'}.{detail}")
        f = t.get("folds") or {}
        if f:
            names = {**FOLD_STAGES, "panels_s": "panels (drawn inside training and prediction)"}
            n, of = t.get("folds_timed"), t.get("folds_total")
            partial = n is not None and of is not None and n < of
            which = f"the {n} of {of} folds that record stages" if partial else "folds"
            lines.append(f"Summed over {which}: " + ", ".join(f"{label} {f[k]:.0f} s" for k, label in names.items()
                                                              if k in f) + ".")
    if head:
        n_patients = len(methods.get(model, {}).get("per_patient", {})) or len(s["folds_ok"])
        held_out = (f"{n_patients} held-out patients" if n_patients == len(s["folds_ok"])
                    else f"{len(s['folds_ok'])} held-out recordings of {n_patients} patients")
        lines.append(f"{held_out}, {head.get('hours', 0):.2f} h of EEG, "
                     f"{int(head.get('ref', 0))} scored seizure events (SzCORE merges events under 90 s apart).")
    lines.append("")
    if methods:
        lines += ["## Detection: the model beside its baselines and chance", "",
                  "| method | event sensitivity | event precision | event F1 [95% CI] | FA/24h (95% upper) | "
                  + " | ".join(f"sens @{x:g} FA/24h" for x in FA_POINTS) + " | window AUROC |",
                  "|---|---|---|---|---|" + "---|" * len(FA_POINTS) + "---|"]
        for name, m in methods.items():
            agg = m.get("aggregate", {}).get("event")
            if not agg:
                continue
            mo, po = agg["mean_over_patients"], agg["pooled"]
            sens_at = " | ".join(_fmt(m["sens_at_fa"][str(x)]["mean"]) for x in FA_POINTS)
            lines.append(f"| {_label(name, m, model)} | {_fmt(mo['sensitivity']['mean'])} | "
                         f"{_fmt(mo['precision']['mean'])} | {_ci(mo['f1'])} | "
                         f"{_fmt(po['fp_per_24h'], 1)} (≤ {_fmt(po['fp_per_24h_upper'], 1)}) | {sens_at} | "
                         f"{_ci(m['window_auroc'], 3)} |")
        if model in methods and methods[model].get("chance"):
            c = methods[model]["chance"]
            lines.append(f"| chance: {model}'s detections placed at random | {_fmt(c['sensitivity']['mean'])} | "
                         f"{_fmt(c['precision']['mean'])} | {_fmt(c['f1']['mean'])} [{_fmt(c['f1']['lo'])}, "
                         f"{_fmt(c['f1']['hi'])}] | same as {model} | " + " | ".join("" for _ in FA_POINTS)
                         + " | 0.500 |")
        lines += ["", "Event scores are means over held-out patients (SzCORE, NaN skipped) with 95 % bootstrap "
                  "intervals over patients; false alarms are pooled, with the exact Poisson 95 % upper bound; "
                  "sensitivity at a false-alarm rate is read off each patient's threshold-free curve.", ""]
        if s.get("chance_verdict"):
            lines.append(f"- **{s['chance_verdict']}**.")
        for c in s.get("comparison", {}).values():
            d = c["f1_difference"]
            lines.append(f"- **{c['verdict']}**: event F1 difference {_fmt(d['value'], 2)} "
                         f"[{_fmt(d['lo'])}, {_fmt(d['hi'])}] over {d['n']} patients.")
        lines.append("")
        lines += ["## Event sensitivity by seizure duration (detected / annotated)", "",
                  "| method | " + " | ".join(m for m in next(iter(methods.values()))["duration"]) + " |",
                  "|---|" + "---|" * len(next(iter(methods.values()))["duration"])]
        for name, m in methods.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{v['detected']}/{v['total']}" if v["total"] else "-" for v in m["duration"].values()) + " |")
        lines.append("")
    loc = s.get("localization") or {}
    if loc.get("methods"):
        lines += [f"## Localization: {loc['n_seizures']} held-out seizures of {loc['n_patients']} patients, "
                  f"onset window around the onset", "",
                  "| method | top-1 in SOZ [95% CI] | chance | chance-corrected | rank of best SOZ channel | "
                  "channel AUROC | patient-level top-1 |", "|---|---|---|---|---|---|---|"]
        for name, r in loc["methods"].items():
            where = " (onset detected by the model)" if name.endswith("@detected") else ""
            lines.append(f"| {name.split('@')[0]}{where} | {_fmt(r['top1'])} [{_fmt(r['top1_ci']['lo'])}, "
                         f"{_fmt(r['top1_ci']['hi'])}] | {_fmt(r['chance'])} | {_fmt(r['chance_corrected'])} | "
                         f"{_fmt(r['rank'], 1)} | {_fmt(r['auroc'])} | {_fmt(r['patient_top1'])} |")
        lines.append(f"| chance (a channel at random) | {_fmt(loc['chance'])} | {_fmt(loc['chance'])} | 0.00 | "
                     "| 0.50 | |")
        lines.append("")
        for c in s.get("localization_comparison", {}).values():
            d = c["top1_difference"]
            lines.append(f"- **{c['verdict']}** (localization): top-1 difference {_fmt(d['value'])} "
                         f"[{_fmt(d['lo'])}, {_fmt(d['hi'])}] over {d['n']} patients.")
        if s.get("clip_localization"):
            cl = s["clip_localization"]
            lines.append(f"- SZLoc's own clip metric (onset map of a clip with the annotated onset at a fixed "
                         f"window): top-1 {_fmt(cl.get('loc_acc_seizure_attn'))}, patient-level "
                         f"{_fmt(cl.get('loc_acc_patient_attn'))}.")
        lines.append("")
    for name, m in methods.items():
        lines += _per_patient_table(name, m)
    if s.get("unscored_recordings"):
        lines += ["## Recordings scored as files with no detection (not readable or no montage)", ""]
        lines += [f"- {u['recording']} ({u['patient']}): {u['reason']}" for u in s["unscored_recordings"]]
        lines.append("")
    if s["folds_failed"]:
        lines += ["## Failed folds", ""] + [f"- {k}: {v}" for k, v in s["folds_failed"].items()]
    return "\n".join(lines) + "\n"


def _per_patient_table(name: str, m: dict) -> list[str]:
    head = "| patient | ev sens | ev prec | ev F1 | FA/24h | smp sens | smp prec | smp F1 | window AUROC | threshold |"
    lines = [f"## Per patient: {name}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for p, v in sorted(m["per_patient"].items()):
        e, sm = v["event"], v["sample"]
        lines.append(f"| {p} | {_fmt(e['sensitivity'])} | {_fmt(e['precision'])} | {_fmt(e['f1'])} | "
                     f"{_fmt(e['fp_per_24h'], 1)} | {_fmt(sm['sensitivity'])} | {_fmt(sm['precision'])} | "
                     f"{_fmt(sm['f1'])} | {_fmt(v.get('window_auroc'), 3)} | {_fmt(v.get('threshold'))} |")
    agg = m.get("aggregate", {})
    if agg:
        e, sm = agg["event"]["mean_over_patients"], agg["sample"]["mean_over_patients"]
        ms = lambda d, k, n=2: f"{_fmt(d[k]['mean'], n)} ± {_fmt(d[k]['sd'], n)}"
        lines.append(f"| **mean ± sd** | {ms(e, 'sensitivity')} | {ms(e, 'precision')} | {ms(e, 'f1')} | "
                     f"{ms(e, 'fp_per_24h', 1)} | {ms(sm, 'sensitivity')} | {ms(sm, 'precision')} | "
                     f"{ms(sm, 'f1')} | | |")
        pe, ps = agg["event"]["pooled"], agg["sample"]["pooled"]
        lines.append(f"| **pooled** | {_fmt(pe['sensitivity'])} | {_fmt(pe['precision'])} | {_fmt(pe['f1'])} | "
                     f"{_fmt(pe['fp_per_24h'], 1)} | {_fmt(ps['sensitivity'])} | {_fmt(ps['precision'])} | "
                     f"{_fmt(ps['f1'])} | | |")
        lines += ["", f"{int(pe['tp'])}/{int(pe['ref'])} seizure events detected, {int(pe['fp'])} false alarms in "
                      f"{pe['hours']:.2f} h."]
    return lines + [""]


# -- plots ---------------------------------------------------------------------------------------
def write_plots(run_dir: Path, s: dict, fold_dirs: list[Path]) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    methods, model = s.get("methods", {}), s.get("model")
    if methods:
        pats = sorted({p for m in methods.values() for p in m["per_patient"]})
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(pats) + 2), 3.6))
        x, w = np.arange(len(pats)), 0.8 / max(1, len(methods))
        for k, (name, m) in enumerate(methods.items()):
            vals = [m["per_patient"].get(p, {}).get("event", {}).get("f1", np.nan) for p in pats]
            ax.bar(x + (k - (len(methods) - 1) / 2) * w, np.nan_to_num(vals), w, label=name)
        ax.set_xticks(x, pats)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("event F1 (SzCORE)")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Per held-out patient: the model and its baselines")
        out.append(_save(fig, run_dir / "per_patient.png"))

        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for name, m in methods.items():
            c = m.get("curve") or {}
            if c:
                fa, sens = np.asarray(c["fa_per_24h"]), np.asarray(c["sensitivity"])
                order = np.argsort(fa)
                ax.plot(fa[order], sens[order], marker=".", label=f"{name} (pooled)")
        for x in FA_POINTS:
            ax.axvline(x, color="0.8", lw=0.8, ls="--")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=0)  # no negative false-alarm rates on the symlog axis's left arm
        ax.set_xlabel("false alarms per 24 h (pooled over held-out patients)")
        ax.set_ylabel("event sensitivity")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        ax.set_title("Threshold-free: sensitivity against false alarms")
        out.append(_save(fig, run_dir / "sensitivity_vs_false_alarms.png"))

        bins = list(next(iter(methods.values()))["duration"])
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        xb, w = np.arange(len(bins)), 0.8 / max(1, len(methods))
        for k, (name, m) in enumerate(methods.items()):
            d = m["duration"]
            sens = [d[b]["detected"] / d[b]["total"] if d[b]["total"] else np.nan for b in bins]
            bars = ax.bar(xb + (k - (len(methods) - 1) / 2) * w, np.nan_to_num(sens), w, label=name)
            for bar, b in zip(bars, bins):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02,
                        f"{d[b]['detected']}/{d[b]['total']}", ha="center", fontsize=7)
        ax.set_xticks(xb, bins)
        ax.set_ylim(0, 1.15)
        ax.set_xlabel("annotated seizure duration")
        ax.set_ylabel("event sensitivity")
        ax.legend(fontsize=8)
        ax.set_title("Event sensitivity by annotated seizure duration")
        out.append(_save(fig, run_dir / "sensitivity_by_duration.png"))
    loc = s.get("localization") or {}
    if loc.get("methods"):
        names = list(loc["methods"])
        fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(names) + 2), 3.6))
        acc = [loc["methods"][n]["top1"] for n in names]
        lo = [loc["methods"][n]["top1_ci"]["lo"] for n in names]
        hi = [loc["methods"][n]["top1_ci"]["hi"] for n in names]
        err = np.array([[a - (low if np.isfinite(low) else a) for a, low in zip(acc, lo)],
                        [(high if np.isfinite(high) else a) - a for a, high in zip(acc, hi)]])
        ax.bar(range(len(names)), acc, yerr=err, capsize=4, color="tab:blue")
        ax.axhline(loc["chance"], color="tab:red", ls="--", label=f"chance {loc['chance']:.2f}")
        ax.set_xticks(range(len(names)), [n.replace("@", "\n@") for n in names], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("top channel in the SOZ")
        ax.legend(fontsize=8)
        ax.set_title(f"Localization of {loc['n_seizures']} held-out seizures (95 % CI over patients)")
        out.append(_save(fig, run_dir / "localization.png"))
    rows = []
    for d in fold_dirs:
        for ref in sorted((d / "references").glob("*_events.tsv")):
            hyp = d / "hypotheses" / ref.name
            if hyp.exists():
                rows.append((ref.name.replace("_events.tsv", ""), read_events_tsv(ref), read_events_tsv(hyp)))
    if rows:
        fig, ax = plt.subplots(figsize=(12, 0.45 * len(rows) + 1.2))
        for i, (_, (ref, dur), (hyp, _)) in enumerate(rows):
            ax.plot([0, dur / 60], [i, i], color="0.85", lw=6, solid_capstyle="butt")
            for a, b in ref:  # the y axis is inverted: smaller y is drawn above
                ax.plot([a / 60, b / 60], [i - 0.15, i - 0.15], color="tab:red", lw=5, solid_capstyle="butt")
            for a, b in hyp:
                ax.plot([a / 60, b / 60], [i + 0.15, i + 0.15], color="tab:blue", lw=5, solid_capstyle="butt")
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        ax.set_xlabel("time in recording (min)")
        ax.set_title(f"Annotated seizures (red, above) vs {model} detections (blue, below)")
        ax.invert_yaxis()
        out.append(_save(fig, run_dir / "timelines.png"))
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- html ----------------------------------------------------------------------------------------
def _img(path: Path, width="100%") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:{width}" alt="{html.escape(path.name)}">'


def write_html(run_dir: Path, s: dict, md: str, plots: list[Path], fold_dirs: list[Path],
               max_panels_per_fold: int = 2) -> Path:
    """One file with every table and plot and a few panels per fold inlined (open it anywhere, no
    server); the other panels stay in the fold folders."""
    body = [f"<h1>{html.escape(s['name'])} / {html.escape(s['run_id'])}</h1>", _md_html(md)]
    body += [f"<h2>{html.escape(p.stem.replace('_', ' '))}</h2>{_img(p)}" for p in plots]
    for d in fold_dirs:
        panels = sorted((d / "panels").glob("test_*.png")) or sorted((d / "panels").glob("*.png"))[-2:]
        if panels:
            body.append(f"<h2>Held-out {html.escape(d.name)}: activation maps</h2>")
            body += [f"<figure>{_img(p)}<figcaption>{html.escape(p.name)}</figcaption></figure>"
                     for p in panels[:max_panels_per_fold]]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(s["name"]) +
            "</title><style>body{font-family:sans-serif;max-width:1400px;margin:auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
            "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
            "li{margin:0.2em 0}</style></head><body>" + "\n".join(body) + "</body></html>")
    path = run_dir / "report.html"
    path.write_text(page)
    return path


def _inline(text: str) -> str:
    out = html.escape(text)
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _md_html(md: str) -> str:
    """The summary's markdown (headings, tables, bullets, paragraphs) as HTML."""
    out, in_table, in_list = [], False, False
    for line in md.splitlines():
        is_row = line.startswith("|")
        if in_table and not is_row:
            out.append("</table>")
            in_table = False
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if is_row:
            if set(line) <= set("|-"):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            tag = "td" if in_table else "th"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.startswith("# "):
            continue
        elif line.startswith("## "):
            out.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def log_summary_to_wandb(cfg: DictConfig, run_dir: Path, s: dict) -> None:
    """The methods table (model, baselines) as one W&B run in the experiment's group."""
    if cfg.wandb is None or cfg.wandb.mode == "disabled":
        return
    import wandb

    cols = ["method", "kind", "patient"] + [f"event_{m}" for m in COLUMNS] + [f"sample_{m}" for m in COLUMNS] \
        + ["window_auroc"]
    table = wandb.Table(columns=cols)
    for name, m in s.get("methods", {}).items():
        for p, v in sorted(m["per_patient"].items()):
            table.add_data(name, m.get("kind"), p, *[v["event"][k] for k in COLUMNS],
                           *[v["sample"][k] for k in COLUMNS], v.get("window_auroc"))
    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, group=f"{cfg.name}/{cfg.run_id}",
                     name="summary", job_type="summary", dir=str(run_dir), mode=cfg.wandb.mode, reinit=True)
    run.log({"summary/per_patient": table})
    for name, m in s.get("methods", {}).items():
        agg = m.get("aggregate") or {}
        if agg:
            run.summary.update({f"{name}/event/{k}": agg["event"]["mean_over_patients"][k]["mean"] for k in COLUMNS})
    for name, r in (s.get("localization") or {}).get("methods", {}).items():
        run.summary.update({f"{name}/localization/top1": r["top1"]})
    run.finish()


def _seed_averaged(per_seed: dict[int, dict]) -> tuple[dict, dict]:
    """Each method's per-patient event F1 and localization top-1, averaged over the seeds (NaN
    skipped), in the shapes :func:`compare` and :func:`compare_localization` read: a patient stays
    the unit of the bootstrap, and seeds only steady each patient's value."""
    runs = list(per_seed.values())

    def mean(values):
        v = [x for x in values if x is not None and np.isfinite(x)]
        return float(np.mean(v)) if v else float("nan")

    methods = {}
    for name in set.intersection(*(set(r.get("methods", {})) for r in runs)):
        pats = set.intersection(*(set(r["methods"][name].get("per_patient", {})) for r in runs))
        methods[name] = {"per_patient": {p: {"event": {"f1": mean(
            [r["methods"][name]["per_patient"][p]["event"]["f1"] for r in runs])}} for p in sorted(pats)}}
    locs = [(r.get("localization") or {}).get("methods", {}) for r in runs]
    loc = {"methods": {}}
    for name in set.intersection(*(set(m) for m in locs)):
        pats = set.intersection(*(set(m[name].get("per_patient_top1", {})) for m in locs))
        loc["methods"][name] = {"per_patient_top1": {p: mean([m[name]["per_patient_top1"][p] for m in locs])
                                                     for p in sorted(pats)}}
    return methods, loc


def aggregate_seeds(out_dir: Path, runs: list[Path], seeds: list[int]) -> str:
    """Spread across seeds of each method's headline numbers, and the model beside its baselines
    at each seed and averaged over seeds (paired over patients): ``seeds_summary.json`` and
    ``seeds_summary.md`` in ``out_dir``."""
    per_seed = {}
    for seed, run in zip(seeds, runs):
        f = Path(run) / "summary.json"
        if f.exists():
            per_seed[seed] = json.loads(f.read_text())
    rows: dict[str, dict[str, list]] = {}
    for s in per_seed.values():
        for name, m in s.get("methods", {}).items():
            agg = m.get("aggregate", {}).get("event")
            if not agg:
                continue
            r = rows.setdefault(name, {"event F1 (mean over patients)": [], "event F1 (pooled)": [],
                                       "FA/24h (pooled)": [], "window AUROC": []})
            r["event F1 (mean over patients)"].append(agg["mean_over_patients"]["f1"]["mean"])
            r["event F1 (pooled)"].append(agg["pooled"]["f1"])
            r["FA/24h (pooled)"].append(agg["pooled"]["fp_per_24h"])
            r["window AUROC"].append(m["window_auroc"]["value"])
        for name, r in (s.get("localization") or {}).get("methods", {}).items():
            rows.setdefault(name, {}).setdefault("localization top-1", []).append(r["top1"])
    spread = {name: {k: {"values": v, "mean": float(np.nanmean(v)), "sd": float(np.nanstd(v)),
                         "min": float(np.nanmin(v)), "max": float(np.nanmax(v))} for k, v in r.items() if v}
              for name, r in rows.items()}
    model = next((s.get("model") for s in per_seed.values() if s.get("model")), None)
    averaged: dict = {}
    if model and per_seed:
        methods, loc = _seed_averaged(per_seed)
        averaged = {"comparison": compare(methods, model), "localization_comparison": compare_localization(loc, model)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "seeds_summary.json").write_text(json.dumps({"seeds": list(per_seed), "runs": [str(r) for r in runs],
                                                            "methods": spread, "model": model,
                                                            "seed_averaged": averaged}, indent=1))
    lines = [f"# {out_dir.parent.name} / {out_dir.name}: {len(per_seed)} seeds ({', '.join(map(str, per_seed))})",
             "", "Mean ± sd across seeds [min, max]; each seed's run folder holds its full summary. A seed sets the "
             "network's initialization, the training windows drawn each epoch and the validation patients of each "
             "fold (so the baselines' thresholds move too).", "",
             "| method | measure | mean ± sd | range |", "|---|---|---|---|"]
    for name, r in spread.items():
        for k, v in r.items():
            lines.append(f"| {name} | {k} | {_fmt(v['mean'], 3)} ± {_fmt(v['sd'], 3)} | "
                         f"[{_fmt(v['min'], 3)}, {_fmt(v['max'], 3)}] |")
    if averaged:
        lines += ["", f"## {model} beside its baselines at each seed and averaged over seeds", "",
                  "Paired differences over patients, 95 % bootstrap intervals; the average takes each patient's "
                  "mean over seeds, so the patient stays the unit.", "",
                  "| against | measure | " + " | ".join(f"seed {k}" for k in per_seed) + " | seed-averaged |",
                  "|---|---|" + "---|" * (len(per_seed) + 1)]
        for key, label, measure in (("comparison", "f1_difference", "event F1"),
                                    ("localization_comparison", "top1_difference", "top-1 in SOZ")):
            for other, c in averaged[key].items():
                cells = []
                for s in per_seed.values():
                    d = (s.get(key) or {}).get(other, {}).get(label)
                    cells.append(_ci(d) if d else "n/a")
                lines.append(f"| {other} | {measure} minus | " + " | ".join(cells) + f" | {_ci(c[label])} |")
        lines += ["", *(f"- {c['verdict']} ({measure}, averaged over seeds)"
                        for key, measure in (("comparison", "detection"), ("localization_comparison", "localization"))
                        for c in averaged[key].values())]
        verdicts = [f"seed {k}: {s['chance_verdict']}" for k, s in per_seed.items() if s.get("chance_verdict")]
        if verdicts:
            lines += ["", "Chance level at each seed:", "", *(f"- {v}" for v in verdicts)]
    text = "\n".join(lines) + "\n"
    (out_dir / "seeds_summary.md").write_text(text)
    return text
