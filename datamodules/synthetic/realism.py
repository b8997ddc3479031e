"""How close the synthetic corpus is to real scalp EEG: ``python -m datamodules.synthetic.realism``.

The yardstick is a real recording with one temporal-lobe seizure (University of Michigan,
Ombao et al. 2001; see ``../shared/real/umich/README.md``): 19 referential channels at 100 Hz,
500 s, seizure from about 350 s. It is research data with an attribution request and no
licence, so it is read where it lies (``--real``, default ``<repository>/../shared/real/umich``)
and never copied.

Both sides go through the same path as the models' inputs: the double banana rebuilt by name
(:func:`eeg.montage.derive`: bipolar from the real file's referential channels) and the default
preprocessing (:class:`~datamodules.preprocessing.PreprocessingConfig`: 0.5-40 Hz, notch, 256 Hz).
Then, on 2 s windows of every channel:

* background (the real file's 10-340 s; synthetic recordings away from seizures): amplitude
  distribution (median |x|, window RMS percentiles, spread across channels), spectrum (relative
  band powers, the 1/f slope fitted over 2-7 and 14-30 Hz, the alpha band left out), line length;
* the ictal rhythm after the annotated onset: its dominant frequency (2-12 Hz) in the first 20 s
  and later, and its build-up (RMS and line length of the most involved channels over their
  background, and the time to reach the peak).

A table (markdown and JSON) and a figure (spectra, distributions, ictal build-up) are written.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.recording import DatasetError

#: Where the real recording lies by default: ``shared/real/umich`` beside the repository.
DEFAULT_REAL = Path(__file__).resolve().parents[3] / "shared" / "real" / "umich"
WINDOW_S = 2.0
BANDS = {"delta": (0.5, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0),
         "gamma": (30.0, 40.0)}
#: Real recording: background before the seizure (s), annotated onset (s), file end.
REAL_BACKGROUND_S = (10.0, 340.0)


@dataclass
class Recording:
    """A preprocessed double-banana recording and what is known about its seizures."""

    name: str
    x: np.ndarray  # (18, n) uV
    sfreq: float
    background: np.ndarray  # bool per sample: usable as background
    onsets: list[tuple[float, float]]  # annotated (onset, offset) of seizures


def _load(rec, preprocessing=None) -> tuple[np.ndarray, float]:
    from datamodules.cache import load_harmonized
    from datamodules.preprocessing import PreprocessingConfig
    from eeg.montage import DOUBLE_BANANA

    return load_harmonized(rec, DOUBLE_BANANA, preprocessing or PreprocessingConfig())


def load_real(real_dir: str | Path) -> Recording:
    """The real recording (its CHB-MIT-layout EDF), preprocessed like the corpus."""
    from datamodules.sources import scan

    layout = Path(real_dir) / "chbmit_layout"
    if not layout.is_dir():
        raise DatasetError(f"{real_dir}: no chbmit_layout/ folder; point --real at shared/real/umich "
                           "(see its README)")
    recs = [r for r in scan(layout).recordings if r.seizures]
    if not recs:
        raise DatasetError(f"{layout}: no annotated seizure found")
    rec = recs[0]
    x, sf = _load(rec)
    bg = np.zeros(x.shape[1], bool)
    bg[int(REAL_BACKGROUND_S[0] * sf):int(REAL_BACKGROUND_S[1] * sf)] = True
    return Recording(f"real {rec.recording_id}", x, sf, bg, [tuple(s) for s in rec.seizures])


def load_synthetic(root: str | Path, max_recordings: int | None = None) -> list[Recording]:
    """Recordings of a synthetic corpus, background = away from true seizures (30 s before,
    120 s after) and from the file edges."""
    from datamodules.sources import discover

    from .truth import load_truth

    truth = load_truth(root)
    out = []
    for rec in discover(root):
        t = truth.recording(rec.recording_id)
        x, sf = _load(rec)
        bg = np.ones(x.shape[1], bool)
        bg[:int(10 * sf)] = bg[-int(10 * sf):] = False
        for s in t.seizure_details:
            bg[max(0, int((s.true_onset_s - 30) * sf)):int((s.true_offset_s + 120) * sf)] = False
        out.append(Recording(rec.recording_id, x, sf, bg, [(float(a), float(b)) for a, b in t.seizures]))
        if max_recordings and len(out) >= max_recordings:
            break
    return out


# --------------------------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------------------------
def _windows(x: np.ndarray, sfreq: float, mask: np.ndarray) -> np.ndarray:
    """(n_windows, n_chans, n_times) whole 2 s windows lying entirely where ``mask`` is True."""
    n = int(WINDOW_S * sfreq)
    k = x.shape[1] // n
    ok = mask[:k * n].reshape(k, n).all(axis=1)
    return x[:, :k * n].reshape(x.shape[0], k, n).transpose(1, 0, 2)[ok]


def psd(x: np.ndarray, sfreq: float, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectral density (uV^2/Hz) over channels and 4 s Hann segments where ``mask`` holds."""
    n = int(4 * sfreq)
    k = x.shape[1] // n
    ok = mask[:k * n].reshape(k, n).all(axis=1)
    seg = x[:, :k * n].reshape(x.shape[0], k, n)[:, ok]
    win = np.hanning(n)
    spec = np.abs(np.fft.rfft(seg * win, axis=-1)) ** 2 / (sfreq * (win ** 2).sum())
    spec[..., 1:-1] *= 2
    return np.fft.rfftfreq(n, 1 / sfreq), spec.mean(axis=(0, 1))


def slope(f: np.ndarray, p: np.ndarray) -> float:
    """1/f exponent: slope of log10 power against log10 frequency over 2-7 and 14-30 Hz."""
    keep = ((f >= 2) & (f <= 7)) | ((f >= 14) & (f <= 30))
    return float(np.polyfit(np.log10(f[keep]), np.log10(p[keep]), 1)[0])


def background_measures(recs: list[Recording]) -> dict:
    """Background statistics pooled over ``recs`` (see the module doc)."""
    rms, ll, med_abs, ch_cv = [], [], [], []
    spectra = []
    for r in recs:
        w = _windows(r.x, r.sfreq, r.background)
        if not len(w):
            continue
        rms.append(np.sqrt((w ** 2).mean(-1)).ravel())
        ll.append((np.abs(np.diff(w, axis=-1)).sum(-1) / WINDOW_S).ravel())
        med_abs.append(float(np.median(np.abs(w))))
        per_ch = np.median(np.sqrt((w ** 2).mean(-1)), axis=0)
        ch_cv.append(float(per_ch.std() / per_ch.mean()))
        spectra.append(psd(r.x, r.sfreq, r.background))
    if not rms:
        raise DatasetError("no background windows to measure")
    rms, ll = np.concatenate(rms), np.concatenate(ll)
    f = spectra[0][0]
    p = np.mean([s[1] for s in spectra], axis=0)
    total = p[(f >= 0.5) & (f < 40)].sum()
    out = {
        "median_abs_uV": float(np.median(med_abs)),
        "rms_p5_uV": float(np.percentile(rms, 5)), "rms_p50_uV": float(np.percentile(rms, 50)),
        "rms_p95_uV": float(np.percentile(rms, 95)), "rms_p99_over_p50": float(np.percentile(rms, 99) / np.median(rms)),
        "channel_rms_cv": float(np.median(ch_cv)),
        "line_length_p50_uV_s": float(np.median(ll)), "line_length_p95_uV_s": float(np.percentile(ll, 95)),
        "slope": slope(f, p),
    }
    for band, (lo, hi) in BANDS.items():
        out[f"rel_{band}"] = float(p[(f >= lo) & (f < hi)].sum() / total)
    out["_psd"] = (f, p)
    out["_rms"] = rms
    out["_ll"] = ll
    return out


def _peak_frequency(seg: np.ndarray, sfreq: float) -> float:
    """Frequency (2-12 Hz) of the largest peak of the mean spectrum of ``seg`` (channels, n)."""
    n = seg.shape[1]
    spec = (np.abs(np.fft.rfft(seg * np.hanning(n), axis=-1)) ** 2).mean(0)
    f = np.fft.rfftfreq(n, 1 / sfreq)
    keep = (f >= 2) & (f <= 12)
    return float(f[keep][np.argmax(spec[keep])])


def ictal_measures(r: Recording, onset_s: float, offset_s: float) -> dict:
    """Rhythm and build-up of one seizure, from its annotated onset, on its 3 most involved channels."""
    sf = r.sfreq
    n = int(WINDOW_S * sf)
    bg = _windows(r.x, sf, r.background)
    bg_rms = np.median(np.sqrt((bg ** 2).mean(-1)), axis=0)
    bg_ll = np.median(np.abs(np.diff(bg, axis=-1)).sum(-1), axis=0)
    end = min(offset_s, onset_s + 60.0, r.x.shape[1] / sf)
    a, b = int(onset_s * sf), int(end * sf)
    k = (b - a) // n
    if k < 2:
        return {}
    w = r.x[:, a:a + k * n].reshape(r.x.shape[0], k, n).transpose(1, 0, 2)
    ratio = np.sqrt((w ** 2).mean(-1)) / bg_rms  # (k, chans)
    top = np.argsort(ratio.mean(0))[::-1][:3]  # the most involved channels over the seizure's first minute
    rms_curve = ratio[:, top].mean(1)
    ll_curve = (np.abs(np.diff(w, axis=-1)).sum(-1) / bg_ll)[:, top].mean(1)
    early = r.x[top, a:a + int(min(20.0, end - onset_s) * sf)]
    late_a = a + int(max(20.0, 0.5 * (end - onset_s)) * sf)
    late = r.x[top, late_a:b] if b - late_a >= n else r.x[top, b - n:b]
    return {
        "freq_early_hz": _peak_frequency(early, sf), "freq_late_hz": _peak_frequency(late, sf),
        "rms_ratio_peak": float(rms_curve.max()), "ll_ratio_peak": float(ll_curve.max()),
        "time_to_peak_s": float(np.argmax(rms_curve) * WINDOW_S),
        "_curve": rms_curve,
    }


def measure(recs: list[Recording]) -> dict:
    """Background and ictal measures of a set of recordings; ictal ones as the median over seizures."""
    out = background_measures(recs)
    ictal = [ictal_measures(r, on, off) for r in recs for on, off in r.onsets]
    ictal = [m for m in ictal if m]
    out["n_seizures"] = len(ictal)
    for key in ("freq_early_hz", "freq_late_hz", "rms_ratio_peak", "ll_ratio_peak", "time_to_peak_s"):
        vals = [m[key] for m in ictal]
        out[key] = float(np.median(vals)) if vals else math.nan
        out[f"_{key}_range"] = (float(np.min(vals)), float(np.max(vals))) if vals else (math.nan, math.nan)
    out["_curves"] = [m["_curve"] for m in ictal]
    out["hours"] = float(sum(r.x.shape[1] / r.sfreq for r in recs) / 3600)
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
ROWS = (
    ("median |x| (uV)", "median_abs_uV", "{:.1f}"),
    ("window RMS 5th percentile (uV)", "rms_p5_uV", "{:.1f}"),
    ("window RMS median (uV)", "rms_p50_uV", "{:.1f}"),
    ("window RMS 95th percentile (uV)", "rms_p95_uV", "{:.1f}"),
    ("window RMS 99th pct / median", "rms_p99_over_p50", "{:.2f}"),
    ("spread of channel RMS (CV)", "channel_rms_cv", "{:.2f}"),
    ("relative power delta 0.5-4 Hz", "rel_delta", "{:.3f}"),
    ("relative power theta 4-8 Hz", "rel_theta", "{:.3f}"),
    ("relative power alpha 8-13 Hz", "rel_alpha", "{:.3f}"),
    ("relative power beta 13-30 Hz", "rel_beta", "{:.3f}"),
    ("relative power 30-40 Hz", "rel_gamma", "{:.4f}"),
    ("1/f slope (2-7, 14-30 Hz)", "slope", "{:.2f}"),
    ("line length median (uV/s)", "line_length_p50_uV_s", "{:.0f}"),
    ("line length 95th percentile (uV/s)", "line_length_p95_uV_s", "{:.0f}"),
    ("ictal dominant frequency, first 20 s (Hz)", "freq_early_hz", "{:.1f}"),
    ("ictal dominant frequency, later (Hz)", "freq_late_hz", "{:.1f}"),
    ("ictal RMS / background, peak in first 60 s", "rms_ratio_peak", "{:.2f}"),
    ("ictal line length / background, peak", "ll_ratio_peak", "{:.2f}"),
    ("time from annotated onset to RMS peak (s)", "time_to_peak_s", "{:.0f}"),
)


def table(columns: dict[str, dict]) -> str:
    """Markdown table: one row per measure, one column per source (the first is the reference)."""
    names = list(columns)
    ref = columns[names[0]]
    head = "| measure | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for label, key, fmt in ROWS:
        cells = []
        for i, name in enumerate(names):
            v = columns[name].get(key, math.nan)
            cell = fmt.format(v) if v == v else "n/a"
            rng = columns[name].get(f"_{key}_range")
            if rng is not None and columns[name].get("n_seizures", 0) > 1:
                cell += " (" + fmt.format(rng[0]) + "-" + fmt.format(rng[1]) + ")"
            if i > 0 and ref.get(key) and ref[key] == ref[key] and v == v and key != "slope":
                cell += f" [x{v / ref[key]:.2f}]"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{n}: {c['hours']:.2f} h, {c['n_seizures']} seizure(s)" for n, c in columns.items())
    return "\n".join(lines) + f"\n\n{counts}. [xN]: ratio to {names[0]}; (a-b): range over seizures.\n"


def figure(columns: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for i, (name, c) in enumerate(columns.items()):
        colour = f"C{i}"
        f, p = c["_psd"]
        keep = (f >= 0.5) & (f <= 45)
        ax[0, 0].loglog(f[keep], p[keep], color=colour, label=f"{name} (slope {c['slope']:.2f})")
        bins = np.geomspace(2, 400, 60)
        ax[0, 1].hist(c["_rms"], bins=bins, density=True, histtype="step", color=colour, label=name)
        bins = np.geomspace(50, 20000, 60)
        ax[1, 0].hist(c["_ll"], bins=bins, density=True, histtype="step", color=colour, label=name)
        for j, curve in enumerate(c["_curves"]):
            t = np.arange(curve.size) * WINDOW_S
            ax[1, 1].plot(t, curve, color=colour, alpha=0.9 if i == 0 else 0.35, lw=2 if i == 0 else 1,
                          label=name if j == 0 else None)
    ax[0, 0].set(xlabel="Hz", ylabel="uV^2/Hz", title="background spectrum (double banana, mean)")
    ax[0, 1].set(xscale="log", xlabel="uV", title="background RMS of 2 s channel windows")
    ax[1, 0].set(xscale="log", xlabel="uV/s", title="background line length of 2 s channel windows")
    ax[1, 1].set(xlabel="s after the annotated onset", ylabel="RMS / background",
                 title="ictal build-up (3 most involved channels)")
    for a in ax.ravel():
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def compare(real_dir: str | Path, corpora: dict[str, str | Path], out: str | Path | None = None) -> dict:
    """Measure the real recording and each synthetic corpus; write ``realism.md``, ``realism.json``
    and ``realism.png`` to ``out`` when given. Returns ``{"table": markdown, "columns": {...}}``."""
    columns = {"real (umich)": measure([load_real(real_dir)])}
    for name, root in corpora.items():
        columns[name] = measure(load_synthetic(root))
    text = table(columns)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "realism.md").write_text(text)
        plain = {n: {k: v for k, v in c.items() if not k.startswith("_")} for n, c in columns.items()}
        (out / "realism.json").write_text(json.dumps(plain, indent=1))
        figure(columns, out / "realism.png")
    return {"table": text, "columns": columns}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datamodules.synthetic.realism",
                                     description="compare synthetic corpora with a real scalp EEG recording")
    parser.add_argument("--real", default=str(DEFAULT_REAL),
                        help=f"folder of the real recording (default {DEFAULT_REAL})")
    parser.add_argument("--corpus", action="append", default=[], metavar="ROOT",
                        help="synthetic corpus to compare (repeatable); default: build the --preset corpus "
                             "in a temporary folder")
    parser.add_argument("--preset", action="append", default=[], choices=("realistic", "easy"),
                        help="preset(s) to build when no --corpus is given (default realistic)")
    parser.add_argument("--out", default="realism", help="folder for realism.md/.json/.png (default ./realism)")
    args = parser.parse_args(argv)
    if not Path(args.real).is_dir():
        print(f"error: {args.real}: the real recording is not there; pass --real DIR "
              "(the folder holding chbmit_layout/, see shared/real/umich/README.md)", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="realism-") as tmp:
            corpora = {Path(c).name: c for c in args.corpus}
            if not corpora:
                from .corpus import generate_corpus
                for preset in args.preset or ["realistic"]:
                    root = Path(tmp) / preset
                    print(f"building the default {preset} corpus in {root} ...", file=sys.stderr, flush=True)
                    generate_corpus(root, preset=preset)
                    corpora[f"synthetic {preset}"] = root
            result = compare(args.real, corpora, args.out)
    except (DatasetError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"written: {Path(args.out) / 'realism.md'}, realism.json, realism.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
