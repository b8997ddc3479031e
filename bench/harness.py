"""Runs the benchmark sections in order and assembles ``results.json`` (schema in :mod:`bench`)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datamodules.preprocessing import PreprocessingConfig
from eeg.montage import DOUBLE_BANANA

from .corpus import BenchCorpus, ensure_corpus, replicate, warm_page_cache
from .scale import scale_fit
from .stats import Measurement, ratio

SCHEMA = "seizure-lightning-bench/1"
SECTIONS = ("cache", "scale", "loader", "models", "inference", "training", "main_job")

#: Targets the project sets itself (not timed tests): name -> (description, threshold, direction).
TARGETS = {
    "cache_speedup": ("cache build, braindecode s / ours s (1x corpus)", 3.0, ">="),
    "cache_memory_growth": ("ours peak RSS at the largest / at 1x corpus (flat: <= 1.25)", 1.25, "<="),
    "loader_windows_per_s": ("ours, windows/s from one process (0 workers)", 20000.0, ">="),
    "loader_vs_lazy": ("ours / braindecode lazy windows/s (0 workers)", 5.0, ">="),
    "lsn_realtime_factor": ("LSN dense model-only real-time factor (PyTorch)", 1000.0, ">="),
    "lsn_pruned_macs": ("LSN pruned (whole filters) MACs / dense MACs", 0.5, "<="),
    "lsn_pruned_speed": ("LSN pruned (whole filters) / dense windows/s, PyTorch", 1.0, ">="),
    "lsn_pruned_speed_onnx": ("LSN pruned (whole filters) / dense windows/s, ONNX Runtime", 1.0, ">="),
    "main_job_minutes": ("make experiment NAME=chb_loso wall time, minutes", 10.0, "<="),
}

#: The pruned LightSeizureNet row the pruning targets read (see ``bench.models.our_models``).
PRUNED_ROW_PREFIX = "LSN pruned"
PRUNED_ROW_SUFFIX = "whole filters"
GPU_NOTE = "not measured: no GPU on the benchmark machine (CPU only)"


@dataclass(frozen=True)
class BenchConfig:
    """What ``python -m bench`` measures and how long it spends.

    Attributes
    ----------
    work : str
        Scratch folder (corpus, caches, saved windows); git-ignored.
    out : str
        Folder receiving ``results.json`` and ``results.md``.
    hours, recording_minutes, seed : float, float, int
        Synthetic corpus: about ``hours`` of EEG in recordings of about ``recording_minutes``.
    repeats : int
        Repetitions of every figure (the median is reported).
    scale_factors, braindecode_scale_factors : tuple of int
        Corpus multiples built in the scale section (ours both with every core and with one
        worker process, which gives the per-core rate the estimates scale from).
    scale_repeats : int
        Interleaved rounds of the scale builds (every size, 1x included, once per round).
    window_s, batch_size : float, int
        Window length in seconds and the batch size of loader, inference and training.
    loader_workers : tuple of int
        DataLoader worker counts compared.
    loader_seconds, inference_seconds : float
        Minimum timed span of one loader / inference repetition.
    szloc_batch : int
        Clips per SZLoc inference batch (a 45 s clip costs as much as ~500 LSN windows).
    train_steps : int
        Training steps per timed repetition.
    torch_threads : int or None
        ``torch.set_num_threads`` for models (None keeps torch's default, one per core).
    braindecode : bool
        Run the braindecode side (False: ours only; ratios are then null).
    sections : tuple of str
        Which of :data:`SECTIONS` to run.
    main_job, main_job_args : str, tuple of str
        The study the ``main_job`` section runs as a user would (``make experiment NAME=...``),
        with the project's default corpus and cache folders, into ``<work>/runs``.
    """

    work: str = "bench/work"
    out: str = "bench"
    hours: float = 2.0
    recording_minutes: float = 60.0
    seed: int = 0
    repeats: int = 3
    scale_factors: tuple[int, ...] = (1, 2, 4, 8, 16)
    braindecode_scale_factors: tuple[int, ...] = (1, 2)
    scale_repeats: int = 3
    window_s: float = 2.0
    batch_size: int = 256
    loader_workers: tuple[int, ...] = (0, 2)
    loader_seconds: float = 2.0
    inference_seconds: float = 0.5
    szloc_batch: int = 4
    train_steps: int = 3
    torch_threads: int | None = None
    braindecode: bool = True
    sections: tuple[str, ...] = SECTIONS
    main_job: str = "chb_loso"
    main_job_args: tuple[str, ...] = ()
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)

    def __post_init__(self):
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown bench sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
        if self.repeats < 1 or self.scale_repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats} and {self.scale_repeats}")
        if any(f < 1 for f in (*self.scale_factors, *self.braindecode_scale_factors)):
            raise ValueError("scale factors must be >= 1")


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when inside it (results stay machine-neutral)."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _machine(cfg: BenchConfig) -> dict:
    import numpy
    import scipy
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "numpy": numpy.__version__, "scipy": scipy.__version__, "device": "cpu",
            "load_average_start": list(os.getloadavg()),  # other work on a shared machine
            "gpu": None}  # training/inference figures are CPU: no GPU on the benchmark machine
    try:
        import mne
        info["mne"] = mne.__version__
    except ImportError:
        info["mne"] = None
    info["braindecode"] = None
    if cfg.braindecode:
        from .peer import require_braindecode
        info["braindecode"] = require_braindecode()
    try:
        repo = Path(__file__).resolve().parent.parent
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                            text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def _summarize_builds(builds: list[dict], edf_bytes: int) -> dict:
    keys = ("seconds", "peak_rss_mb", "work_rss_mb", "import_s", "process_s", "output_mb")
    units = {"seconds": "s", "peak_rss_mb": "MB", "work_rss_mb": "MB", "import_s": "s", "process_s": "s",
             "output_mb": "MB"}
    out = {k: Measurement(tuple(b[k] for b in builds), units[k]).to_dict() for k in keys}
    out["edf_mb_per_s"] = Measurement(tuple(edf_bytes / 1e6 / b["seconds"] for b in builds), "MB/s").to_dict()
    out["n_windows"] = builds[-1]["n_windows"]
    return out


class Bench:
    """One benchmark run: holds the corpus, the built artifacts and the results so far."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self.work = Path(cfg.work).resolve()
        self.out = Path(cfg.out).resolve()
        self.results: dict = {}
        self.corpus: BenchCorpus | None = None

    # -- paths ----------------------------------------------------------------------------
    def _build_dir(self, impl: str, factor: int) -> Path:
        return self.work / "builds" / f"{impl}_x{factor}"

    def _ours_cache_dir(self) -> Path:
        """The hashed cache directory ours wrote for the 1x corpus."""
        dirs = [d for d in self._build_dir("ours", 1).iterdir() if d.is_dir()]
        if len(dirs) != 1:
            raise FileNotFoundError(f"{self._build_dir('ours', 1)}: expected one cache directory, found {dirs}")
        return dirs[0]

    def _build(self, impl: str, factor: int, n_jobs: int | None = None) -> dict:
        from .cache_build import run_build

        corpus = replicate(self.corpus, factor)
        return run_build(impl, corpus.recordings, corpus.root, self._build_dir(impl, factor),
                         self.work / "scratch", self.cfg.preprocessing, self.cfg.window_s, n_jobs=n_jobs)

    def _ensure_built(self, impl: str) -> None:
        d = self._build_dir(impl, 1)
        if not d.exists() or not any(d.iterdir()):
            _log(f"building the {impl} 1x artifacts for the loader (untimed)")
            self._build(impl, 1)

    # -- sections -------------------------------------------------------------------------
    def section_cache(self) -> None:
        impls = ["ours"] + (["braindecode"] if self.cfg.braindecode else [])
        builds: dict[str, list[dict]] = {i: [] for i in impls}
        for rep in range(self.cfg.repeats):
            for impl in impls:  # interleaved, so slow phases of a shared machine hit both sides
                b = self._build(impl, 1)
                builds[impl].append(b)
                _log(f"cache build {impl} rep {rep + 1}/{self.cfg.repeats}: {b['seconds']:.2f} s, "
                     f"peak {b['peak_rss_mb']:.0f} MB")
        edf = self.corpus.edf_bytes
        sec = {impl: _summarize_builds(bs, edf) for impl, bs in builds.items()}
        bd = sec.get("braindecode")
        ours = sec["ours"]
        sec["ratio"] = {
            "speedup": ratio(bd and bd["seconds"]["median"], ours["seconds"]["median"]),
            "peak_rss": ratio(ours["peak_rss_mb"]["median"], bd and bd["peak_rss_mb"]["median"]),
            "work_rss": ratio(ours["work_rss_mb"]["median"], bd and bd["work_rss_mb"]["median"]),
        }
        pp = self.cfg.preprocessing
        sec["what"] = (f"EDF -> 18-channel double banana, band-pass {pp.l_freq:g}-{pp.h_freq:g} Hz (Butterworth "
                       f"order {pp.filter_order}, zero phase), resample to {pp.sfreq:g} Hz, "
                       f"{self.cfg.window_s:g} s windows, saved: ours HDF5 cache + window index; braindecode "
                       "MNE read + preprocess + create_fixed_length_windows + save")
        self.results["cache_build"] = sec

    def section_scale(self) -> None:
        # (label, implementation, worker processes): ours with every core and with one process
        kinds = [("ours", "ours", None), ("ours, 1 process", "ours", 1)]
        if self.cfg.braindecode:
            kinds.append(("braindecode", "braindecode", None))
        plan = [(label, impl, jobs, f) for label, impl, jobs in kinds
                for f in sorted(set(self.cfg.braindecode_scale_factors if impl == "braindecode"
                                    else self.cfg.scale_factors))]
        builds: dict[tuple[str, int], list[dict]] = {(label, f): [] for label, _, _, f in plan}
        for rep in range(self.cfg.scale_repeats):
            for label, impl, jobs, factor in plan:  # interleaved rounds: load changes hit every size alike
                b = self._build(impl, factor, jobs)
                builds[(label, factor)].append(b)
                _log(f"scale {label} x{factor} rep {rep + 1}/{self.cfg.scale_repeats}: "
                     f"{b['seconds']:.2f} s ({b['cpu_s']:.2f} s CPU), peak {b['peak_rss_mb']:.0f} MB")
                if factor != 1:
                    shutil.rmtree(self._build_dir(impl, factor), ignore_errors=True)  # disk
        rows = []
        for label, _impl, _, factor in plan:
            bs = builds[(label, factor)]
            corpus = replicate(self.corpus, factor)
            summary = _summarize_builds(bs, corpus.edf_bytes)
            per_hour = Measurement(tuple(b["seconds"] / corpus.hours for b in bs), "s/h")
            rows.append({"implementation": label, "factor": factor, "hours": corpus.hours,
                         "edf_mb": corpus.edf_bytes / 1e6, "n_windows": summary["n_windows"],
                         "n_jobs": bs[-1].get("n_jobs"),
                         "seconds_per_eeg_hour": per_hour.to_dict(),
                         "cpu_s": Measurement(tuple(b["cpu_s"] for b in bs), "s").to_dict(),
                         "worker_peak_rss_mb": Measurement(tuple(b["worker_peak_rss_mb"] for b in bs),
                                                           "MB").to_dict(),
                         **{k: summary[k] for k in ("seconds", "peak_rss_mb", "work_rss_mb", "edf_mb_per_s")}})
        self.results["scale"] = {"note": "larger corpora list the 1x recordings k times under new ids; "
                                         "every size is rebuilt in each interleaved round; ours builds with "
                                         "every core unless the row says 1 process",
                                 "rows": rows, "fit": scale_fit(rows), "precision": self._float32_precision()}

    def _float32_precision(self) -> dict:
        """What float32 filtering changes in the cached signals of the first bench recording."""
        import numpy as np

        from datamodules.cache import load_harmonized
        from datamodules.edf import read_edf_header
        from datamodules.preprocessing import preprocess
        from eeg.montage import derive

        rec = self.corpus.recordings[0]
        cached, sfreq = load_harmonized(rec, tuple(DOUBLE_BANANA), self.cfg.preprocessing)
        raw, _ = load_harmonized(rec, tuple(DOUBLE_BANANA), PreprocessingConfig(
            l_freq=None, h_freq=None, notch_freq=None, sfreq=None))
        reference, _ = preprocess(raw, rec.sfreq, self.cfg.preprocessing)  # float64 filters
        h = read_edf_header(rec.path)
        d = derive(rec.channels, tuple(DOUBLE_BANANA))
        # each montage channel against the quantization step of the file channels it is made of
        steps = np.array([min((h.physical_max[i] - h.physical_min[i]) / (h.digital_max[i] - h.digital_min[i])
                              for i in np.flatnonzero(d.matrix[k])) for k in range(len(DOUBLE_BANANA))])
        err = np.abs(cached.astype("float64") - reference).max(axis=1)
        worst = int(np.argmax(err / steps))
        return {"recording": rec.recording_id, "hours": rec.duration_s / 3600,
                "max_abs_error_uv": float(err.max()), "quantization_step_uv": float(steps[worst]),
                "error_over_step": float(err[worst] / steps[worst]),
                "note": "max |float32 - float64 filtering| over the 18 cached channels; error_over_step is the "
                        "largest ratio of a channel's error to the quantization step of its file channels "
                        "(quantization_step_uv is that channel's); float32 is used only where the predicted "
                        "error is below half a step"}

    def section_loader(self) -> None:
        from datamodules.datamodule import collate_windows

        from .loader import loader_throughput, our_window_dataset

        self._ensure_built("ours")
        datasets = [("ours", our_window_dataset(str(self._ours_cache_dir()), self.cfg.window_s), collate_windows)]
        if self.cfg.braindecode:
            from .peer import load_windows

            self._ensure_built("braindecode")
            path = str(self._build_dir("braindecode", 1))
            datasets.append(("braindecode lazy", load_windows(path, preload=False), None))
            datasets.append(("braindecode preloaded", load_windows(path, preload=True), None))
        rows = []
        for name, ds, collate in datasets:
            for workers in self.cfg.loader_workers:
                r = loader_throughput(ds, self.cfg.batch_size, workers, self.cfg.repeats,
                                      self.cfg.loader_seconds, collate, self.cfg.seed)
                rows.append({"dataset": name, "n_windows": len(ds), **r})
                _log(f"loader {name} workers={workers}: {r['windows_per_s']['median']:,.0f} windows/s")
        for row in rows:
            lazy = next((r for r in rows if r["dataset"] == "braindecode lazy"
                         and r["num_workers"] == row["num_workers"]), None)
            row["vs_braindecode_lazy"] = ratio(row["windows_per_s"]["median"],
                                               lazy and lazy["windows_per_s"]["median"])
        self.results["loader"] = {"rows": rows}

    def _n_chans_times(self) -> tuple[int, int, float]:
        sfreq = float(self.cfg.preprocessing.sfreq or self.corpus.sfreq)
        return 18, int(round(self.cfg.window_s * sfreq)), sfreq

    def _specs(self):
        from .models import braindecode_models, our_models

        c, t, sf = self._n_chans_times()
        specs = our_models(c, t, sf, seed=self.cfg.seed)
        if self.cfg.braindecode:
            specs += braindecode_models(c, t, sf, seed=self.cfg.seed)
        return specs

    def section_models(self) -> None:
        from .models import cost_row

        rows = [cost_row(s) for s in self._specs() if not s.reference]
        dense = next((r for r in rows if r["model"] == "LSN dense"), None)
        for r in rows:
            if dense is not None and r["model"].startswith("LSN"):
                r["macs_vs_dense"] = r["macs"] / dense["macs"]
                r["params_vs_dense"] = r["params"] / dense["params"]
            _log(f"cost {r['model']}: {r['params']:,} params, {r['macs']:,} MACs")
        self.results["model_cost"] = {"counter": "torch.utils.flop_counter (conv, linear, matmul; MACs = FLOPs/2)",
                                      "rows": rows}

    def section_inference(self) -> None:
        from .models import inference_throughput, onnx_inference_throughput
        from .predict import predict_throughput

        specs = self._specs()
        rows = inference_throughput(specs, lambda s: self.cfg.szloc_batch if s.name == "SZLoc" else self.cfg.batch_size,
                                    self.cfg.repeats, self.cfg.inference_seconds)
        lsn = [s for s in specs if s.source == "ours" and s.name.startswith("LSN") and not s.reference]
        rows += onnx_inference_throughput(lsn, self.cfg.batch_size, self.cfg.repeats, self.work / "onnx",
                                          self.cfg.inference_seconds)
        for r in rows:
            _log(f"inference {r['model']} ({r['source']}): {r['realtime_factor']['median']:,.0f}x real time")
        for r in rows:  # each LSN row against the dense network in the same runtime
            dense = next((d for d in rows if d["model"] == "LSN dense" and d["source"] == r["source"]), None)
            if r["model"].startswith("LSN") and dense is not None:
                r["vs_dense"] = ratio(r["windows_per_s"]["median"], dense["windows_per_s"]["median"])
        end_to_end = []
        for s in specs:
            if s.source != "ours" or s.name not in ("LSN dense", self._pruned_name()):
                continue
            r = predict_throughput(s.model, self.corpus.recordings, self.cfg.repeats, self.cfg.preprocessing,
                                   self.cfg.window_s, self.cfg.batch_size)
            end_to_end.append({"model": s.name, **r})
            _log(f"predict from EDF {s.name}: {r['realtime_factor']['median']:,.0f}x real time")
        self.results["inference"] = {"model_only": rows, "from_edf": end_to_end,
                                     "note": f"SZLoc scores batches of {self.cfg.szloc_batch} clips of 45 s, "
                                             f"the others "
                                             f"batches of {self.cfg.batch_size} windows of {self.cfg.window_s:g} s; "
                                             "ONNX Runtime with its default session options and as many "
                                             "threads as torch"}

    @staticmethod
    def _pruned_name() -> str:
        from .models import PRUNED_SPARSITY

        return f"{PRUNED_ROW_PREFIX} {PRUNED_SPARSITY:.0%}, {PRUNED_ROW_SUFFIX}"

    def section_training(self) -> None:
        from .models import training_throughput

        specs = [s for s in self._specs() if s.name in ("LSN dense", "LSN dense, reference")
                 or s.name in ("EEGNetv4", "ShallowFBCSPNet")]
        rows = training_throughput(specs, self.cfg.batch_size, self.cfg.repeats, self.cfg.train_steps,
                                   seed=self.cfg.seed)
        for r in rows:
            _log(f"training {r['model']}: {r['windows_per_s']['median']:,.0f} windows/s")
        lsn = next(r for r in rows if r["model"] == "LSN dense")
        for r in rows:
            r["lsn_vs_this"] = ratio(lsn["windows_per_s"]["median"], r["windows_per_s"]["median"])
        import torch

        self.results["training"] = {"model": "LSN dense", "optimizer": "AdamW", "loss": "cross-entropy",
                                    "device": "cpu", "torch_threads": torch.get_num_threads(),
                                    "cpu": {k: lsn[k] for k in ("batch_size", "steps_per_repeat", "windows_per_s")},
                                    "rows": rows, "gpu": None, "gpu_note": GPU_NOTE}

    def section_main_job(self) -> None:
        from .main_job import run_main_job

        _log(f"main job: python -m experiments run {self.cfg.main_job} (a whole study, minutes)")
        res = run_main_job(self.cfg.main_job, (self.work / "runs").resolve(), tuple(self.cfg.main_job_args))
        res["run_dir"] = _display_path(res["run_dir"])
        _log(f"main job: {res['minutes']:.1f} min")
        self.results["main_job"] = res

    # -- whole run ------------------------------------------------------------------------
    def targets(self) -> list[dict]:
        res = self.results
        values: dict[str, float | None] = {k: None for k in TARGETS}
        if "cache_build" in res:
            values["cache_speedup"] = res["cache_build"]["ratio"]["speedup"]
        ours_scale = [r for r in res.get("scale", {}).get("rows", []) if r["implementation"] == "ours"]
        if len(ours_scale) >= 2:
            lo, hi = min(ours_scale, key=lambda r: r["factor"]), max(ours_scale, key=lambda r: r["factor"])
            values["cache_memory_growth"] = ratio(hi["peak_rss_mb"]["median"], lo["peak_rss_mb"]["median"])
        for row in res.get("loader", {}).get("rows", []):
            if row["dataset"] == "ours" and row["num_workers"] == 0:
                values["loader_windows_per_s"] = row["windows_per_s"]["median"]
                values["loader_vs_lazy"] = row["vs_braindecode_lazy"]
        pruned = self._pruned_name()
        for row in res.get("inference", {}).get("model_only", []):
            if row["model"] == "LSN dense" and row["source"] == "ours":  # PyTorch, not ONNX Runtime
                values["lsn_realtime_factor"] = row["realtime_factor"]["median"]
            if row["model"] == pruned and row["source"] in ("ours", "ours, ONNX Runtime"):  # default session
                key = "lsn_pruned_speed" if row["source"] == "ours" else "lsn_pruned_speed_onnx"
                values[key] = row.get("vs_dense")
        for row in res.get("model_cost", {}).get("rows", []):
            if row["model"] == pruned:
                values["lsn_pruned_macs"] = row.get("macs_vs_dense")
        if "main_job" in res:
            values["main_job_minutes"] = res["main_job"]["minutes"]
        out = []
        for name, (what, threshold, op) in TARGETS.items():
            v = values[name]
            met = None if v is None else (v >= threshold if op == ">=" else v <= threshold)
            out.append({"name": name, "what": what, "target": f"{op} {threshold:g}", "value": v, "met": met})
        return out

    def write(self) -> tuple[Path, Path]:
        from .report import render_markdown

        self.results["targets"] = self.targets()
        self.out.mkdir(parents=True, exist_ok=True)
        js, md = self.out / "results.json", self.out / "results.md"
        js.write_text(json.dumps(self.results, indent=2) + "\n")
        md.write_text(render_markdown(self.results))
        return js, md

    def run(self) -> dict:
        cfg = self.cfg
        import torch

        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        t0 = time.perf_counter()
        self.work.mkdir(parents=True, exist_ok=True)
        _log(f"corpus: about {cfg.hours:g} h under {self.work}")
        self.corpus = ensure_corpus(self.work, cfg.hours, cfg.recording_minutes, cfg.seed)
        warm_page_cache(self.corpus)
        self.results = {
            "schema": SCHEMA,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
            "machine": _machine(cfg),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
            "corpus": {**self.corpus.describe(), "root": _display_path(self.corpus.root)},
        }
        for name in SECTIONS:
            if name in cfg.sections:
                _log(f"section {name}")
                getattr(self, f"section_{name}")()
                self.write()  # partial results survive a later failure
        self.results["total_s"] = time.perf_counter() - t0
        self.results["machine"]["load_average_end"] = list(os.getloadavg())
        self.write()
        return self.results


def run_bench(cfg: BenchConfig = BenchConfig()) -> dict:
    """Run the benchmark described by ``cfg``; writes ``results.json`` and ``results.md`` to ``cfg.out``."""
    return Bench(cfg).run()
