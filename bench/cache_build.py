"""Section 1 and 6: EDF to windows ready for training, each build in a fresh process.

Ours: :func:`datamodules.cache.build_cache` (EDF -> 18-channel double banana -> band-pass ->
resample -> one HDF5 file per patient) then :func:`datamodules.windows.make_windows`.

braindecode: MNE reads each EDF, the 18 bipolar channels are picked by name (the synthetic
EDFs are bipolar already), ``braindecode.preprocessing.preprocess`` converts to microvolts,
band-passes with the same filter (MNE ``method='iir'``, Butterworth order 4, second-order
sections, zero phase = forward-backward, as ``scipy.signal.sosfiltfilt`` in ours) and resamples,
``create_fixed_length_windows`` cuts the same non-overlapping windows and the windows dataset's
``save`` writes them to disk.

A fresh interpreter per build makes the peak resident memory (``VmHWM``) that build's own;
the work is timed inside the process, after the imports, which are reported separately. Ours
builds in worker processes (``n_jobs``, default every core): its memory is the process tree's
(:class:`TreeMemory`: proportional set sizes summed over the parent and its workers, sampled
every 250 ms, and at least the parent's own peak); ``cpu_s`` counts the CPU time of the parent
and its workers, so a loaded machine (which slows the wall clock of parallel work first) shows
apart.

Run as ``python -m bench.cache_build <args.json> <result.json>`` (the parent does this).
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from datamodules.preprocessing import PreprocessingConfig
from datamodules.recording import DatasetError, Recording
from eeg.montage import DOUBLE_BANANA, derive

IMPLEMENTATIONS = ("ours", "braindecode")


def _status_mb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e3  # kB
    raise RuntimeError(f"/proc/self/status has no {field} field")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process image (``VmHWM``).

    Not ``getrusage(...).ru_maxrss``: Linux carries the forking parent's peak over ``exec`` into
    the child's ``ru_maxrss`` (and ``RUSAGE_CHILDREN`` is the maximum over every child so far),
    so a large parent would hide the build's own peak. ``VmHWM`` starts afresh at ``exec``.
    """
    return _status_mb("VmHWM")


class TreeMemory:
    """Samples the memory of this process and its descendants every ``interval`` s.

    One sample costs about 6 ms of CPU (the process list, one ``smaps_rollup`` per process):
    every 250 ms keeps the measurement out of the timing (every 50 ms cost a tenth of a core).

    Forked workers share their parent's pages (the imports), so resident sizes would count them
    once per process: the tree is measured in proportional set size (PSS: each shared page split
    between its sharers), summed over the tree. ``peak_mb`` is the largest sum seen, and at least
    this process's own peak (``VmHWM``); ``worker_peak_mb`` the largest worker's ``VmHWM``.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.sampled_peak_mb = 0.0
        self.worker_peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss_mb(pid: int) -> float:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) / 1e3
        except OSError:
            pass
        return 0.0

    def _sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            children = []
        total = self._pss_mb(os.getpid())
        for c in children:
            total += self._pss_mb(c.pid)
            try:
                with open(f"/proc/{c.pid}/status") as fh:
                    hwm = next((int(ln.split()[1]) / 1e3 for ln in fh if ln.startswith("VmHWM:")), 0.0)
            except OSError:
                hwm = 0.0
            self.worker_peak_mb = max(self.worker_peak_mb, hwm)
        self.sampled_peak_mb = max(self.sampled_peak_mb, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max(self.sampled_peak_mb, _peak_rss_mb())


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_ours(recordings: list[Recording], root: str, out: Path, cfg: PreprocessingConfig,
               window_s: float, n_jobs: int | None = None) -> dict:
    """EDF -> HDF5 cache -> window index. Returns the number of windows."""
    from datamodules.cache import build_cache, default_jobs, list_recordings
    from datamodules.windows import make_windows

    report = build_cache(recordings, out, root, cfg, DOUBLE_BANANA, progress=False, n_jobs=n_jobs)
    if report.skipped:
        raise DatasetError(f"{root}: the cache skipped recordings {report.skipped}")
    cached = [r for path in report.files.values() for r in list_recordings(path)]
    windows = make_windows(cached, window_s, window_s)
    return {"n_windows": len(windows), "directory": report.directory,
            "n_jobs": min(n_jobs or default_jobs(), len(recordings))}


def bipolar_picks(rec: Recording, montage: tuple[str, ...] = DOUBLE_BANANA) -> list[int]:
    """File channel index of each ``montage`` channel, for a recording that stores them as bipolar
    pairs (as CHB-MIT does). Resolved by name through :func:`eeg.montage.derive`; MNE keeps
    the file's channel order, so these index ``raw.ch_names`` too (MNE renames duplicates)."""
    d = derive(rec.channels, montage)
    picks = []
    for k, how in enumerate(d.how):
        cols = [int(i) for i in (d.matrix[k] != 0).nonzero()[0]]
        if how != "direct" or len(cols) != 1:
            raise DatasetError(f"{rec.path}: {montage[k]} is not stored as a bipolar channel ({how}); the "
                               "braindecode comparison only picks channels and cannot rebuild pairs")
        picks.append(cols[0])
    return picks


def _volts_to_microvolts(data):
    """braindecode's usual scaling step (a named function: its kwargs are saved with the data)."""
    import numpy as np

    return np.multiply(data, 1e6)


def build_braindecode(recordings: list[Recording], out: Path, cfg: PreprocessingConfig, window_s: float,
                      montage: tuple[str, ...] = DOUBLE_BANANA) -> dict:
    """MNE read -> braindecode ``preprocess`` -> ``create_fixed_length_windows`` -> ``save``."""
    import mne
    from braindecode.datasets import BaseConcatDataset, BaseDataset
    from braindecode.preprocessing import Preprocessor, create_fixed_length_windows, preprocess

    datasets = []
    for rec in recordings:
        raw = mne.io.read_raw_edf(rec.path, preload=False, verbose="error")
        names = [raw.ch_names[i] for i in bipolar_picks(rec, montage)]
        raw.pick(names)  # lazy: only these channels are read when the data is loaded
        raw.rename_channels(dict(zip(names, montage)))  # one channel list across recordings
        # FIF stores dates as 32-bit seconds; CHB-MIT-style anonymized dates (2060s-2070s) do not
        # fit and MNE refuses to save them. Metadata only: no cost to the comparison.
        raw.set_meas_date(None)
        datasets.append(BaseDataset(raw, description={"patient": rec.patient, "recording": rec.recording_id}))
    concat = BaseConcatDataset(datasets)
    steps = [Preprocessor(_volts_to_microvolts, apply_on_array=True)]  # MNE reads volts; ours uV
    if cfg.l_freq or cfg.h_freq:
        steps.append(Preprocessor("filter", l_freq=cfg.l_freq, h_freq=cfg.h_freq, method="iir",
                                  iir_params=dict(order=cfg.filter_order, ftype="butter", output="sos"),
                                  phase="zero", verbose="error"))
    nyq = recordings[0].sfreq / 2
    if cfg.notch_freq and cfg.notch_freq < nyq and (cfg.h_freq is None or cfg.notch_freq < cfg.h_freq * 1.25):
        steps.append(Preprocessor("notch_filter", freqs=cfg.notch_freq, method="iir", verbose="error"))
    if cfg.sfreq:
        steps.append(Preprocessor("resample", sfreq=cfg.sfreq, verbose="error"))
    preprocess(concat, steps, n_jobs=1)
    n = int(round(window_s * (cfg.sfreq or recordings[0].sfreq)))
    windows = create_fixed_length_windows(concat, window_size_samples=n, window_stride_samples=n,
                                          drop_last_window=True, preload=False, n_jobs=1)
    out.mkdir(parents=True, exist_ok=True)
    windows.save(str(out), overwrite=True)
    return {"n_windows": len(windows), "directory": str(out)}


def _worker(args: dict) -> dict:
    """Inside the fresh process: import, build, report time and memory."""
    t0 = time.perf_counter()
    impl = args["implementation"]
    if impl == "braindecode":
        import braindecode.preprocessing  # noqa: F401  (imports timed apart from the work)
        import mne  # noqa: F401
    else:
        import datamodules.cache  # noqa: F401
        import datamodules.edf  # noqa: F401
        import datamodules.windows  # noqa: F401
    import_s = time.perf_counter() - t0
    with open(args["recordings"], "rb") as fh:
        recordings = pickle.load(fh)
    cfg = PreprocessingConfig(**args["preprocessing"])
    out = Path(args["out"])
    shutil.rmtree(out, ignore_errors=True)
    baseline = _rss_mb()
    cpu0 = _cpu_s()
    with TreeMemory() as memory:
        t1 = time.perf_counter()
        if impl == "ours":
            info = build_ours(recordings, args["root"], out, cfg, args["window_s"], args.get("n_jobs"))
        else:
            info = {**build_braindecode(recordings, out, cfg, args["window_s"]), "n_jobs": 1}
        seconds = time.perf_counter() - t1
    peak = memory.peak_mb
    return {"implementation": impl, "seconds": seconds, "cpu_s": _cpu_s() - cpu0, "import_s": import_s,
            "peak_rss_mb": peak, "worker_peak_rss_mb": memory.worker_peak_mb,
            "baseline_rss_mb": baseline, "work_rss_mb": peak - baseline,
            "output_mb": _dir_bytes(out) / 1e6, **info}


def run_build(implementation: str, recordings: list[Recording] | tuple[Recording, ...], root: str,
              out: str | os.PathLike, scratch: str | os.PathLike,
              preprocessing: PreprocessingConfig = PreprocessingConfig(), window_s: float = 2.0,
              timeout_s: float = 3600.0, n_jobs: int | None = None) -> dict:
    """Build with ``implementation`` in a fresh Python process and return its report.

    Returns
    -------
    dict
        ``seconds`` (the build, imports excluded), ``cpu_s`` (CPU time of the build and its
        workers), ``import_s``, ``process_s`` (whole child as the parent saw it), ``peak_rss_mb``
        (the build's peak memory, workers included: see :class:`TreeMemory`),
        ``worker_peak_rss_mb`` (the largest worker's peak), ``baseline_rss_mb`` (after imports),
        ``work_rss_mb`` (peak minus baseline), ``output_mb``, ``n_windows``, ``n_jobs`` (worker
        processes used; ``n_jobs`` None = every core).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    rec_file = scratch / f"recordings-{implementation}-{len(recordings)}.pkl"
    with open(rec_file, "wb") as fh:
        pickle.dump(list(recordings), fh)
    args_file, result_file = scratch / "build-args.json", scratch / "build-result.json"
    result_file.unlink(missing_ok=True)
    args_file.write_text(json.dumps({
        "implementation": implementation, "recordings": str(rec_file), "root": str(root),
        "out": str(out), "preprocessing": asdict(preprocessing), "window_s": float(window_s),
        "n_jobs": n_jobs}))
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.cache_build", str(args_file), str(result_file)],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0 or not result_file.exists():
        raise RuntimeError(f"{implementation} cache build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(result_file.read_text())
    result["process_s"] = process_s
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.cache_build ARGS.json RESULT.json", file=sys.stderr)
        return 2
    args = json.loads(Path(argv[0]).read_text())
    result = _worker(args)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
