"""Run summary: per-patient SzCORE table, mean +- sd over patients, pooled totals, plots, and a
self-contained report.html for browsing without W&B."""
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
from .scoring import Counts, RecordingScore, aggregate, per_patient

COLUMNS = ("sensitivity", "precision", "f1", "fp_per_24h")


def _load_scores(fold_metrics: list[dict]) -> list[RecordingScore]:
    out = []
    for m in fold_metrics:
        for r in m["recordings"]:
            out.append(RecordingScore(r["recording_id"], r["patient"], Counts(**r["event"]), Counts(**r["sample"])))
    return out


def _fmt(v, digits=2):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def aggregate_run(run_dir: str | Path, cfg: DictConfig | None = None, wall_seconds: float | None = None) -> dict:
    """Read every fold of ``run_dir`` and write summary.json, summary.md, plots and report.html."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    fold_dirs = [folder.fold_dir(f) for f in folder.folds()]
    metrics, failed = [], {}
    for d in fold_dirs:
        m = folder.metrics(d.name)
        if m is not None:
            metrics.append(m)
        elif (d / ERROR_FILE).exists():
            lines = (d / ERROR_FILE).read_text().strip().splitlines()
            failed[d.name] = lines[-1] if lines else "failed"
        else:
            state = folder.status(d.name).get("state")
            failed[d.name] = ("interrupted: rerun the same run_id to resume" if state == "interrupted"
                              else "did not finish")
    scores = _load_scores(metrics)
    patients = per_patient(scores)
    for m in metrics:  # window-level and localization metrics per held-out patient
        p = patients.setdefault(m["patient"], {})
        p["window_auroc"] = m["window"].get("test/auroc", math.nan)
        if "localization" in m:
            p["localization"] = m["localization"]
        p["model"] = m.get("model")
    agg = aggregate({p: v for p, v in patients.items() if "event" in v}, scores) if scores else {}
    aurocs = np.array([v.get("window_auroc", math.nan) for v in patients.values()], dtype=float)
    finite = aurocs[np.isfinite(aurocs)]
    summary = {
        "name": run_dir.parent.name, "run_id": run_dir.name, "run_dir": str(run_dir),
        "folds_ok": [m["fold"] for m in metrics], "folds_failed": failed,
        "per_patient": patients, "aggregate": agg,
        "window_auroc": {"mean": float(finite.mean()) if finite.size else math.nan,
                         "sd": float(finite.std()) if finite.size else math.nan},
        "wall_seconds": round(wall_seconds, 1) if wall_seconds is not None else None,
    }
    loc = [m["localization"] for m in metrics if "localization" in m]
    if loc:
        summary["localization"] = _mean_dicts(loc)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    text = summary_markdown(summary)
    (run_dir / "summary.md").write_text(text)
    plots = write_plots(run_dir, summary, fold_dirs)
    write_html(run_dir, summary, text, plots, fold_dirs)
    if cfg is not None:
        log_summary_to_wandb(cfg, run_dir, summary)
    summary["text"] = text
    return summary


def _mean_dicts(items: list[dict]) -> dict:
    keys = [k for k, v in items[0].items() if isinstance(v, (int, float))]
    return {k: float(np.nanmean([float(i.get(k, math.nan)) for i in items])) for k in keys}


def summary_markdown(s: dict) -> str:
    lines = [f"# {s['name']} / {s['run_id']}", ""]
    if s.get("wall_seconds") is not None:
        lines += [f"Wall time: {s['wall_seconds'] / 60:.1f} min.", ""]
    head = "| patient | ev sens | ev prec | ev F1 | FA/24h | smp sens | smp prec | smp F1 | window AUROC |"
    has_loc = any("localization" in v for v in s["per_patient"].values())
    if has_loc:
        head += " loc acc (seizure, attention map) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for p, v in sorted(s["per_patient"].items()):
        if "event" not in v:
            continue
        e, sm = v["event"], v["sample"]
        row = (f"| {p} | {_fmt(e['sensitivity'])} | {_fmt(e['precision'])} | {_fmt(e['f1'])} | "
               f"{_fmt(e['fp_per_24h'], 1)} | {_fmt(sm['sensitivity'])} | {_fmt(sm['precision'])} | "
               f"{_fmt(sm['f1'])} | {_fmt(v.get('window_auroc'), 3)} |")
        if has_loc:
            row += f" {_fmt(v.get('localization', {}).get('loc_acc_seizure_attn'))} |"
        lines.append(row)
    agg = s.get("aggregate") or {}
    if agg:
        e, sm = agg["event"]["mean_over_patients"], agg["sample"]["mean_over_patients"]
        ms = lambda d, k, n=2: f"{_fmt(d[k]['mean'], n)} ± {_fmt(d[k]['sd'], n)}"
        lines.append(f"| **mean ± sd** | {ms(e, 'sensitivity')} | {ms(e, 'precision')} | {ms(e, 'f1')} | "
                     f"{ms(e, 'fp_per_24h', 1)} | {ms(sm, 'sensitivity')} | {ms(sm, 'precision')} | {ms(sm, 'f1')} | "
                     f"{_fmt(s['window_auroc']['mean'], 3)} ± {_fmt(s['window_auroc']['sd'], 3)} |"
                     + (f" {_fmt(s.get('localization', {}).get('loc_acc_seizure_attn'))} |" if has_loc else ""))
        pe, ps = agg["event"]["pooled"], agg["sample"]["pooled"]
        lines.append(f"| **pooled** | {_fmt(pe['sensitivity'])} | {_fmt(pe['precision'])} | {_fmt(pe['f1'])} | "
                     f"{_fmt(pe['fp_per_24h'], 1)} | {_fmt(ps['sensitivity'])} | {_fmt(ps['precision'])} | "
                     f"{_fmt(ps['f1'])} | |" + (" |" if has_loc else ""))
        lines += ["", f"Event scoring: SzCORE (timescoring 0.0.7); {int(pe['tp'])}/{int(pe['ref'])} seizures "
                      f"detected, {int(pe['fp'])} false alarms in {pe['hours']:.2f} h."]
    if s["folds_failed"]:
        lines += ["", "## Failed folds", ""] + [f"- {k}: {v}" for k, v in s["folds_failed"].items()]
    return "\n".join(lines) + "\n"


def write_plots(run_dir: Path, s: dict, fold_dirs: list[Path]) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    pats = [p for p, v in sorted(s["per_patient"].items()) if "event" in v]
    if pats:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(pats) + 2), 3.6))
        x = np.arange(len(pats))
        for k, (m, label) in enumerate([("sensitivity", "sensitivity"), ("precision", "precision"), ("f1", "F1")]):
            vals = [s["per_patient"][p]["event"][m] for p in pats]
            ax.bar(x + (k - 1) * 0.27, np.nan_to_num(vals), 0.27, label=label)
        ax.set_xticks(x, pats)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("event score (SzCORE)")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Per held-out patient")
        fig.tight_layout()
        out.append(run_dir / "per_patient.png")
        fig.savefig(out[-1], dpi=100)
        plt.close(fig)
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
        ax.set_title("Annotated seizures (red, above) vs detections (blue, below)")
        ax.invert_yaxis()
        fig.tight_layout()
        out.append(run_dir / "timelines.png")
        fig.savefig(out[-1], dpi=100)
        plt.close(fig)
    return out


def _img(path: Path, width="100%") -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" style="max-width:{width}" alt="{html.escape(path.name)}">'


def write_html(run_dir: Path, s: dict, md: str, plots: list[Path], fold_dirs: list[Path]) -> Path:
    """One file with every table, plot and panel inlined (open it anywhere, no server)."""
    body = [f"<h1>{html.escape(s['name'])} / {html.escape(s['run_id'])}</h1>", _md_table_html(md)]
    body += [f"<h2>{html.escape(p.stem.replace('_', ' '))}</h2>{_img(p)}" for p in plots]
    for d in fold_dirs:
        panels = sorted((d / "panels").glob("test_*.png")) or sorted((d / "panels").glob("*.png"))[-2:]
        if panels:
            body.append(f"<h2>Held-out {html.escape(d.name)}: activation maps</h2>")
            body += [f"<figure>{_img(p)}<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in panels]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(s["name"]) +
            "</title><style>body{font-family:sans-serif;max-width:1400px;margin:auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "</style></head><body>" + "\n".join(body) + "</body></html>")
    path = run_dir / "report.html"
    path.write_text(page)
    return path


def _md_table_html(md: str) -> str:
    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|") and not set(line) <= set("|-"):
            cells = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
            tag = "th" if not in_table else "td"
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
        elif line.startswith("|"):
            continue
        else:
            if in_table:
                out.append("</table>")
                in_table = False
            if line.startswith("# "):
                continue
            if line.strip():
                out.append(f"<p>{html.escape(line.lstrip('#- '))}</p>")
    if in_table:
        out.append("</table>")
    return "\n".join(out)


def log_summary_to_wandb(cfg: DictConfig, run_dir: Path, s: dict) -> None:
    """The summary table as one W&B run in the experiment's group (offline by default)."""
    if cfg.wandb is None or cfg.wandb.mode == "disabled":
        return
    import wandb

    cols = ["patient"] + [f"event_{m}" for m in COLUMNS] + [f"sample_{m}" for m in COLUMNS] + ["window_auroc"]
    table = wandb.Table(columns=cols)
    for p, v in sorted(s["per_patient"].items()):
        if "event" in v:
            table.add_data(p, *[v["event"][m] for m in COLUMNS], *[v["sample"][m] for m in COLUMNS],
                           v.get("window_auroc"))
    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, group=f"{cfg.name}/{cfg.run_id}",
                     name="summary", job_type="summary", dir=str(run_dir), mode=cfg.wandb.mode, reinit=True)
    run.log({"summary/per_patient": table})
    agg = s.get("aggregate") or {}
    if agg:
        run.summary.update({f"event/{m}": agg["event"]["mean_over_patients"][m]["mean"] for m in COLUMNS})
    run.finish()
