"""``python -m experiments.difficulty ROOT``: how far rules that need no training get on a corpus.

A corpus on which a ten-line rule detects and localizes seizures cannot tell a good model from a
trivial one. On the preprocessed cached signals (the 18-channel double banana the models see)
this reports:

(a) the line-length detector (:class:`lightning_modules.baselines.LineLengthDetector`, 2 s
    windows) through the runner's post-processing (:func:`experiments.events.probabilities_to_events`,
    default smoothing, minimum duration and merge gap) and SzCORE event scoring, for every
    threshold of a grid and with its best one: an upper bound for the rule, since no held-out
    data chose it;
(b) largest-amplitude and earliest-rise localization (top channel in the onset zone, per
    seizure) in the onset window around the ANNOTATED onset, beside the chance level;
(c) for a synthetic corpus, an oracle detector that knows the truth: band power in each
    patient's true ictal band on its true onset-zone channels (relative to the recording's
    median), scored the same way. It shows the seizures are there to be learned.

Exit codes: 0 success, 2 bad input (one sentence on stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eeg.montage import soz_channel_mask
from experiments.events import PostprocessConfig
from experiments.scoring import Counts
from lightning_modules.baselines import (
    DEFAULT_ONSET_WINDOW_S,
    LineLengthDetector,
    earliest_rise_scores,
    largest_amplitude_scores,
    localization_chance,
    onset_window,
)

LINE_LENGTH_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(1.0, 8.01, 0.25), 2))
ORACLE_THRESHOLDS = tuple(float(t) for t in np.round(np.geomspace(1.5, 60.0, 33), 2))


@dataclass(frozen=True)
class ThresholdScore:
    """Event scores of a detector at one threshold: mean over patients and pooled."""

    threshold: float
    f1: float  # mean over patients (NaN skipped), the project's headline
    sensitivity: float
    precision: float
    f1_pooled: float
    fp_per_24h: float  # pooled
    tp: float
    fp: float
    ref: float


@dataclass(frozen=True)
class SeizureLocalization:
    recording_id: str
    onset_s: float
    amplitude_hit: bool
    earliest_hit: bool
    chance: float


@dataclass(frozen=True)
class DifficultyReport:
    root: str
    hours: float
    n_patients: int
    n_seizures: int
    line_length: tuple[ThresholdScore, ...]
    localization: tuple[SeizureLocalization, ...]
    oracle: tuple[ThresholdScore, ...]  # empty when the corpus has no truth file
    onset_window_s: tuple[float, float]
    seconds: float

    @staticmethod
    def best(curve) -> ThresholdScore | None:
        """The threshold with the highest mean-over-patients F1 (ties: pooled F1, then higher threshold)."""
        if not curve:
            return None
        key = lambda s: (-1.0 if math.isnan(s.f1) else s.f1, -1.0 if math.isnan(s.f1_pooled) else s.f1_pooled,  # noqa: E731
                         s.threshold)
        return max(curve, key=key)

    def localization_summary(self) -> dict:
        loc = self.localization
        n = len(loc)
        mean = lambda v: float(np.mean(v)) if n else math.nan  # noqa: E731
        return {"seizures": n, "largest_amplitude": mean([s.amplitude_hit for s in loc]),
                "earliest_rise": mean([s.earliest_hit for s in loc]), "chance": mean([s.chance for s in loc])}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["best_line_length"] = asdict(self.best(self.line_length)) if self.line_length else None
        d["best_oracle"] = asdict(self.best(self.oracle)) if self.oracle else None
        d["localization_summary"] = self.localization_summary()
        return d


def _curve(items, scores: dict[str, tuple[np.ndarray, np.ndarray]], thresholds, window_s: float,
           post: PostprocessConfig) -> tuple[ThresholdScore, ...]:
    """Event scores at each threshold, through the runner's own evaluation
    (:func:`experiments.evaluate.threshold_curve`, per patient): scores are mapped to [0, 1) as
    for every baseline (:func:`experiments.baselines.to_probability`), thresholds alike; the
    reported threshold stays in the rule's own unit. ``items`` are cached recordings, ``scores``
    maps their id to (window start times, window scores)."""
    from experiments.baselines import to_probability
    from experiments.evaluate import add_curves, threshold_curve
    from experiments.scoring import ScoringParams

    probs = [float(t / (1.0 + t)) for t in thresholds]
    windows = {rid: (start, to_probability(score)) for rid, (start, score) in scores.items()}
    by_patient: dict[str, list] = {}
    for rec in items:
        by_patient.setdefault(rec.patient, []).append(rec)
    curves = {p: threshold_curve(recs, windows, window_s, post, ScoringParams(), probs)
              for p, recs in by_patient.items()}
    pooled = add_curves(list(curves.values()))
    out = []
    for k, t in enumerate(thresholds):
        per = [Counts(c["tp"][k], c["fp"][k], c["ref"], c["hours"]).metrics() for c in curves.values()]
        mean = {m: float(np.nanmean([x[m] for x in per])) if any(np.isfinite(x[m]) for x in per) else math.nan
                for m in ("f1", "sensitivity", "precision")}
        total = Counts(pooled["tp"][k], pooled["fp"][k], pooled["ref"], pooled["hours"])
        pm = total.metrics()
        out.append(ThresholdScore(float(t), mean["f1"], mean["sensitivity"], mean["precision"], pm["f1"],
                                  pm["fp_per_24h"], total.tp, total.fp, total.ref))
    return tuple(out)


def band_power_scores(signal: np.ndarray, sfreq: float, n_times: int, band: tuple[float, float],
                      channels: np.ndarray) -> np.ndarray:
    """Per adjacent window of ``n_times`` samples: mean over ``channels`` of the power in
    ``band`` (Hz), divided by its median over the recording."""
    n_win = signal.shape[1] // n_times
    if n_win == 0 or not channels.any():
        return np.zeros(n_win)
    x = signal[channels, :n_win * n_times].reshape(int(channels.sum()), n_win, n_times)
    spec = np.abs(np.fft.rfft(x * np.hanning(n_times), axis=-1)) ** 2
    f = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    power = spec[..., (f >= band[0]) & (f <= band[1])].sum(-1).mean(0)
    median = np.median(power)
    return power / median if median > 0 else np.zeros(n_win)


def difficulty(root: str | Path, cache_dir: str | Path, window_s: float = 2.0,
               onset_window_s: tuple[float, float] = DEFAULT_ONSET_WINDOW_S,
               line_length_thresholds=LINE_LENGTH_THRESHOLDS, oracle_thresholds=ORACLE_THRESHOLDS,
               post: PostprocessConfig = PostprocessConfig(threshold=0.5), progress: bool = True) -> DifficultyReport:
    """Measure the baselines (and the oracle, for a synthetic corpus) on ``root``; see the module doc."""
    from datamodules.cache import build_cache, list_recordings, read_signal
    from datamodules.recording import DatasetError
    from datamodules.sources import discover

    t0 = time.perf_counter()
    root = Path(root)
    recordings = [r for r in discover(root) if r.annotated]
    if not recordings:
        raise DatasetError(f"{root}: no annotated recordings to measure")
    report = build_cache(recordings, cache_dir, root, progress=progress)
    items = [c for p in sorted(report.files) for c in list_recordings(report.files[p])]
    truth = None
    try:
        from datamodules.synthetic import load_truth
        truth = load_truth(root)
    except DatasetError:
        pass  # a real dataset: no oracle

    ll_scores, oracle_scores, loc = {}, {}, []
    detector = None
    for rec in items:
        x = read_signal(rec.h5_path, rec.recording_id)
        sf = rec.sfreq
        n_times = int(round(window_s * sf))
        if detector is None or detector.n_chans != x.shape[0]:
            detector = LineLengthDetector(x.shape[0], n_times, sf, top_k=2)
        starts = detector.window_starts(x.shape[1])
        ll_scores[rec.recording_id] = (starts / sf, detector.score_recording(x))
        if truth is not None:
            p = truth.patient(rec.patient)
            bands = [s.band_hz for s in p.seizure_details]
            band = (min(b[0] for b in bands), max(b[1] for b in bands))
            mask = soz_channel_mask(rec.channels, p.soz).astype(bool)
            oracle_scores[rec.recording_id] = (starts / sf, band_power_scores(x, sf, n_times, band, mask))
        if rec.soz:
            mask = soz_channel_mask(rec.channels, rec.soz)
            for on, _ in rec.seizures:
                idx = int(round(on * sf))
                try:
                    a, b = onset_window(idx, sf, x.shape[1], onset_window_s)
                    amp = largest_amplitude_scores(x[:, a:b])
                    early = earliest_rise_scores(x, sf, idx, window_s=onset_window_s)
                except ValueError:
                    continue  # an onset too close to the file start for a baseline
                loc.append(SeizureLocalization(rec.recording_id, float(on), bool(mask[np.argmax(amp)] > 0),
                                               bool(mask[np.argmax(early)] > 0), localization_chance(mask)))
    ll_curve = _curve(items, ll_scores, line_length_thresholds, window_s, post)
    oracle_curve = _curve(items, oracle_scores, oracle_thresholds, window_s, post) if truth is not None else ()
    return DifficultyReport(str(root), sum(r.duration_s for r in items) / 3600.0, len(report.files),
                            sum(len(r.seizures) for r in items), ll_curve, tuple(loc), oracle_curve,
                            tuple(onset_window_s), round(time.perf_counter() - t0, 1))


def _row(s: ThresholdScore) -> str:
    return (f"{s.threshold:9.2f}  {s.f1:6.3f}  {s.sensitivity:6.3f}  {s.precision:6.3f}  {s.f1_pooled:6.3f}  "
            f"{s.fp_per_24h:8.1f}  {int(s.tp):3d}/{int(s.ref):<3d}  {int(s.fp):5d}")


def format_report(r: DifficultyReport, per_threshold: bool = True) -> str:
    head = "threshold  F1(mean) sens    prec    F1(pool) FP/24h    TP/ref    FP"
    lines = [f"{r.root}: {r.n_patients} patients, {r.hours:.2f} h, {r.n_seizures} annotated seizures",
             "", "(a) line-length detector (2 s windows, top-2 channels / recording median; default post-processing; "
             "SzCORE event scoring)"]
    best = r.best(r.line_length)
    if per_threshold:
        lines += [head] + [_row(s) for s in r.line_length]
    lines += [f"best threshold {best.threshold:g}: event F1 {best.f1:.3f} (mean over patients), "
              f"sensitivity {best.sensitivity:.3f}, precision {best.precision:.3f}, pooled F1 {best.f1_pooled:.3f}, "
              f"{best.fp_per_24h:.1f} false alarms / 24 h"]
    loc = r.localization_summary()
    lo, hi = r.onset_window_s
    lines += ["", f"(b) localization, top channel in the onset zone, {loc['seizures']} seizures, "
              f"{lo:+g}..{hi:+g} s around the annotated onset",
              f"largest amplitude {loc['largest_amplitude']:.3f}   earliest rise {loc['earliest_rise']:.3f}   "
              f"chance {loc['chance']:.3f}"]
    if r.oracle:
        ob = r.best(r.oracle)
        lines += ["", "(c) oracle: band power in the true ictal band on the true onset-zone channels"]
        if per_threshold:
            lines += [head] + [_row(s) for s in r.oracle]
        lines += [f"best threshold {ob.threshold:g}: event F1 {ob.f1:.3f}, sensitivity {ob.sensitivity:.3f} "
                  f"({int(ob.tp)}/{int(ob.ref)} seizures), precision {ob.precision:.3f}, "
                  f"{ob.fp_per_24h:.1f} false alarms / 24 h"]
    else:
        lines += ["", "(c) oracle: skipped (no synthetic truth file at the root)"]
    lines += ["", f"measured in {r.seconds:.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.difficulty", description=__doc__.split("\n")[0])
    parser.add_argument("root", help="dataset root (a synthetic corpus, or CHB-MIT / SzCORE BIDS without the oracle)")
    parser.add_argument("--cache", default="cache", help="HDF5 cache folder (default: cache, as the experiments)")
    parser.add_argument("--window-s", type=float, default=2.0, help="detector window, s (default 2)")
    parser.add_argument("--onset-window", type=float, nargs=2, default=DEFAULT_ONSET_WINDOW_S, metavar=("FROM", "TO"),
                        help="localization window around the annotated onset, s (default -5 10)")
    parser.add_argument("--json", metavar="PATH", help="also write the full report as JSON")
    parser.add_argument("--brief", action="store_true", help="best thresholds only, no per-threshold tables")
    args = parser.parse_args(argv)
    from datamodules.recording import DatasetError

    if not Path(args.root).is_dir():
        print(f"error: {args.root}: no such dataset folder", file=sys.stderr)
        return 2
    if args.window_s <= 0 or args.onset_window[0] >= args.onset_window[1]:
        print("error: --window-s must be > 0 and --onset-window FROM must be below TO", file=sys.stderr)
        return 2
    try:
        report = difficulty(args.root, args.cache, args.window_s, tuple(args.onset_window))
    except (DatasetError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_report(report, per_threshold=not args.brief))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
