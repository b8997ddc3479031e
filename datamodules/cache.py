"""HDF5 cache of harmonized, preprocessed recordings: one file per patient.

Layout of ``<cache_root>/<config hash>/<patient>.h5``::

    attrs: schema_version, patient, channels (JSON), sfreq, soz (JSON or "null"), soz_region,
           preprocessing (JSON), montage (JSON), sources_fingerprint, skipped (JSON),
           notes (JSON), complete
    recordings/<recording_id>/signal   float32 (n_chans, n_samples), microvolts
        attrs: seizures (JSON [[onset_s, offset_s], ...]), annotated, source_path, duration_s,
               float32_channels

Choices, and why:

* The directory hash covers everything that changes the signal bytes (schema version, montage,
  preprocessing, dataset root). Each patient file also stores a fingerprint of its sources
  (paths, sizes, mtimes, annotations, SOZ); a rerun rebuilds only files that are missing,
  incomplete, unreadable or stale, so editing one summary does not rebuild every patient.
* Signals are continuous per recording; windows are index arrays over them, so a new window
  length or hop needs no rebuild. The datasets are stored *contiguous and uncompressed* rather
  than chunked: chunking only pays with compression, and a contiguous dataset has one byte
  offset, so readers can ``np.memmap`` it and cut windows with no HDF5 call at all (see
  :class:`SignalReader`), which is what makes random-access loading fast.
* Parallel: recordings are built in ``n_jobs`` worker processes (default: every core this
  process may use; forked on Linux). A worker streams one recording: it reads the 16-bit
  samples of the channels the montage needs, then derives, filters and resamples one target
  channel at a time and writes it straight to its place in the patient's temporary HDF5 file,
  whose datasets the parent allocated beforehand (contiguous, so each has a byte offset; never
  filled, so nothing is written twice). A worker's memory is the recording's 16-bit samples plus
  a few channels, whatever the corpus size. The parent is the only process that touches the
  HDF5 structure: it creates the file, and when the patient's recordings are done writes their
  attributes and renames the file into place.
* Crash- and concurrency-safe: files are written under unique temporary names and
  renamed into place (atomic on POSIX); an advisory lock per patient makes concurrent builders
  (SLURM array tasks) build different patients and reuse each other's files instead of
  repeating the work; a builder that waits for a lock says who holds it (pid, host, since
  when, and whether that process is stopped, as SLURM suspend leaves it) and gives up after
  ``lock_timeout_s`` with a sentence naming the lock. A file without ``complete=True`` and
  the current schema is never trusted. Stale temporaries are removed by the next builder that
  holds the lock.
* Nothing unusable is cached: a channel with no finite scale, a flat channel (the same value
  from start to end) or a non-finite value drops the channel where the montage can be built
  without it (a note in the report and the file), else skips the recording with a reason that
  names the file and channel; a patient left without recordings is reported in
  :attr:`CacheReport.empty`.
"""
from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from eeg.montage import DOUBLE_BANANA, MontageError, derive

from .edf import read_edf_header
from .preprocessing import PreprocessingConfig, output_length, output_sfreq, preprocess_channel
from .recording import DatasetError, Recording
from .sources import montage_problem, usable_labels

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
#: Seconds a builder waits for another one's patient lock before giving up (override with the
#: ``lock_timeout_s`` argument, ``--lock-timeout`` or the SEIZURE_CACHE_LOCK_TIMEOUT variable).
DEFAULT_LOCK_TIMEOUT_S = 3600.0
#: Seconds between "waiting for ..." messages.
LOCK_REPORT_S = 30.0


@dataclass(frozen=True)
class CachedRecording:
    """A recording as it sits in the cache (harmonized and preprocessed)."""

    patient: str
    recording_id: str
    n_samples: int
    sfreq: float
    channels: tuple[str, ...]
    seizures: tuple[tuple[float, float], ...]
    soz: tuple[str, ...] | None
    h5_path: str
    annotated: bool = True
    soz_region: str | None = None

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sfreq


@dataclass(frozen=True)
class CacheReport:
    """What a build did: files per patient, and which were rebuilt or reused.

    Attributes
    ----------
    skipped : tuple of (recording_id, reason)
        Recordings not cached, each with a sentence naming the file and the cause.
    notes : tuple of (recording_id, note)
        Recordings cached with a change worth knowing (a channel left out of the montage).
    empty : tuple of str
        Patients with no cached recording at all (a study leaves them out).
    """

    directory: str
    files: dict
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (recording_id, reason)
    notes: tuple[tuple[str, str], ...] = ()
    empty: tuple[str, ...] = ()


class CacheLockTimeout(DatasetError):
    """Another builder held a patient's lock for longer than the configured timeout."""


def config_hash(root: str | os.PathLike, preprocessing: PreprocessingConfig,
                montage: tuple[str, ...]) -> str:
    """Short hash naming the cache directory: everything that changes the cached bytes."""
    key = json.dumps({
        "schema": SCHEMA_VERSION,
        "root": str(Path(root).resolve()),
        "preprocessing": json.loads(preprocessing.to_json()),
        "montage": list(montage),
    }, sort_keys=True)
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def sources_fingerprint(recordings: list[Recording]) -> str:
    """Identity of a patient's sources: file path, size and mtime, annotations and SOZ."""
    items = []
    for r in sorted(recordings, key=lambda r: r.recording_id):
        try:
            st = os.stat(r.path)
            ident = (st.st_size, st.st_mtime_ns)
        except OSError:
            ident = (None, None)
        items.append([r.recording_id, str(r.path), *ident, [list(s) for s in r.seizures],
                      list(r.soz) if r.soz else None, r.soz_region,
                      list(r.records) if r.records else None, list(r.bad_channels)])
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def is_valid(path: str | os.PathLike, fingerprint: str | None = None) -> bool:
    """True when ``path`` is a complete cache file of this schema (and these sources)."""
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False) or int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
                return False
            if fingerprint is not None and f.attrs.get("sources_fingerprint") != fingerprint:
                return False
            return "recordings" in f
    except (OSError, KeyError, ValueError):
        return False


# --------------------------------------------------------------------------- locks
def _process_state(pid: int) -> str | None:
    """``'T'`` (stopped), ``'R'``, ``'S'``... of a process on this host, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


class PatientLock:
    """An advisory (``flock``) lock on one patient file, with who holds it written inside.

    The holder writes ``{"pid", "host", "since"}`` into ``<patient>.h5.lock`` so a builder that
    waits can say who it waits for, and for how long.
    """

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self._fh = None

    def try_acquire(self) -> bool:
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> str:
        """Who holds the lock, in words (from what the holder wrote)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info.get("pid"):
            return "an unknown process"
        pid, host, since = int(info["pid"]), str(info.get("host", "?")), float(info.get("since", time.time()))
        text = f"pid {pid} on {host} since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))} " \
               f"({time.time() - since:.0f} s ago)"
        if host == socket.gethostname():
            state = _process_state(pid)
            if state == "T":
                text += ", a process that is stopped (SIGSTOP, or a suspended SLURM job)"
            elif state is None:
                text += ", a process that no longer runs"
        return text

    def acquire(self, timeout_s: float, what: str) -> None:
        """Wait for the lock, saying every LOCK_REPORT_S whom for; CacheLockTimeout after ``timeout_s``."""
        t0 = time.monotonic()
        next_report = t0 + min(5.0, LOCK_REPORT_S)
        delay = 0.05
        while not self.try_acquire():
            now = time.monotonic()
            if now - t0 >= timeout_s:
                raise CacheLockTimeout(
                    f"{self.path}: gave up after {timeout_s:g} s waiting for {what}, locked by {self.holder()}; "
                    "resume or end that process, or raise the timeout (lock_timeout_s, --lock-timeout, "
                    "SEIZURE_CACHE_LOCK_TIMEOUT)"
                )
            if now >= next_report:
                log.warning("waiting %.0f s for %s: %s is locked by %s", now - t0, what, self.path, self.holder())
                next_report = now + LOCK_REPORT_S
            time.sleep(min(delay, max(0.0, timeout_s - (now - t0))))
            delay = min(delay * 2, 1.0)

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _lock_timeout(value: float | None) -> float:
    if value is not None:
        return float(value)
    env = os.environ.get("SEIZURE_CACHE_LOCK_TIMEOUT", "")
    try:
        return float(env) if env else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        raise DatasetError(f"SEIZURE_CACHE_LOCK_TIMEOUT={env!r} is not a number of seconds") from None


# --------------------------------------------------------------------------- one recording
def _read_int16(h, channels: list[int], first: int, stop: int, chunk_bytes: int = 1 << 25) -> np.ndarray:
    """16-bit samples of ``channels`` (one rate) over data records ``[first, stop)``, read in chunks."""
    spr = h.samples_per_record[channels[0]]
    out = np.empty((len(channels), (stop - first) * spr), dtype=np.int16)
    per = max(1, chunk_bytes // (2 * h.record_samples))
    for a in range(first, stop, per):
        b = min(stop, a + per)
        raw = np.fromfile(h.path, dtype="<i2", count=(b - a) * h.record_samples,
                          offset=h.header_bytes + 2 * a * h.record_samples)
        if raw.size < (b - a) * h.record_samples:
            raise DatasetError(f"{h.path}: file ends early in data record {a + raw.size // h.record_samples}")
        block = raw.reshape(b - a, h.record_samples)
        for k, i in enumerate(channels):
            o = h.record_offsets[i]
            out[k, (a - first) * spr:(b - first) * spr] = block[:, o:o + spr].reshape(-1)
    return out


def harmonize(rec: Recording, montage: tuple[str, ...], cfg: PreprocessingConfig, sink) -> dict:
    """Derive, filter and resample ``rec`` one target channel at a time: ``sink(k, row)`` (``row``
    is only valid during the call: without filtering and resampling it is a reused buffer).

    Returns ``{"n_samples", "sfreq", "notes", "float32_channels"}``.

    Raises
    ------
    MontageError, DatasetError
        Naming the file (and the channel): the montage cannot be built, even without the
        channels that have no usable samples; a derived channel is flat; a value is not finite.
    """
    h = read_edf_header(rec.path)
    labels = list(usable_labels(rec)) if rec.channels == h.labels else list(h.labels)
    notes: list[str] = []

    def plan(dropped: dict[int, str]):
        masked = ["-" if i in dropped else lab for i, lab in enumerate(labels)]
        try:
            return derive(masked, montage)
        except MontageError as e:
            if not dropped:
                raise
            why = "; ".join(f"{labels[i]!r} {reason}" for i, reason in dropped.items())
            raise DatasetError(f"{rec.path}: channel(s) {why}; without them: {e}; recording unusable") from None

    dropped: dict[int, str] = {}
    deriv = plan(dropped)
    first, stop = rec.records if rec.records is not None else (0, h.n_records)
    if stop <= first:
        raise DatasetError(f"{rec.path}: the file holds no data records (0 s of signal)")
    rows: dict[int, np.ndarray] = {}
    while True:  # read what the plan needs; a flat channel changes the plan (a duplicate, another pair)
        used = [int(i) for i in deriv.used]
        if len({h.samples_per_record[i] for i in used}) > 1:
            raise DatasetError(f"{rec.path}: the channels of the montage have different sampling rates")
        new = [i for i in used if i not in rows]
        if not new:
            break
        unscalable = {i: problem.split(": ", 1)[-1] for i in new if (problem := h.channel_problem(i)) is not None}
        if unscalable:
            dropped.update(unscalable)
            deriv = plan(dropped)
            continue
        rows.update(zip(new, _read_int16(h, new, first, stop)))
        flat = {i: f"is flat (every sample {int(rows[i][0])})" for i in new if rows[i].min() == rows[i].max()}
        if not flat:
            continue
        dropped.update(flat)
        deriv = plan(dropped)
    for i in set(rows) - set(used):
        del rows[i]
    for i, reason in dropped.items():
        notes.append(f"{rec.path}: channel {labels[i]!r} {reason}; the montage is built without it")
    scales = {i: h.microvolt_scale(i) for i in used}
    n_out, single = None, 0
    n = (stop - first) * h.samples_per_record[used[0]]
    row, term = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    for k, name in enumerate(montage):
        weights = [(int(i), float(deriv.matrix[k, i])) for i in np.flatnonzero(deriv.matrix[k])]
        shift = 0.0
        for j, (i, w) in enumerate(weights):  # sum of w * (gain * digital + offset), no temporaries
            gain, offset = scales[i]
            np.multiply(rows[i], np.float32(w * gain), out=term if j else row, casting="unsafe")
            if j:
                row += term
            shift += w * offset
        if shift:
            row += np.float32(shift)
        low, high = (float(row.min()), float(row.max())) if row.size else (0.0, 0.0)
        if low == high:
            raise DatasetError(f"{rec.path}: montage channel {name} is flat (its electrodes carry the same "
                               "signal); recording unusable")
        step = min(abs(scales[i][0]) for i, _ in weights)
        y, used32 = preprocess_channel(row, rec.sfreq, cfg, step, max(high, -low))
        if not np.isfinite(y.sum(dtype=np.float64)):  # NaN and inf reach the sum; no mask array
            raise DatasetError(f"{rec.path}: montage channel {name} has non-finite values after filtering; "
                               "recording unusable")
        single += used32
        n_out = y.shape[0]
        sink(k, y)
    return {"n_samples": int(n_out or 0), "sfreq": output_sfreq(rec.sfreq, cfg), "notes": notes,
            "float32_channels": single}


def load_harmonized(rec: Recording, montage: tuple[str, ...],
                    cfg: PreprocessingConfig) -> tuple[np.ndarray, float]:
    """The cached form of one recording, in memory: (n_chans, n_samples) float32 uV and its rate."""
    rows: dict[int, np.ndarray] = {}
    # a row handed to the sink may be harmonize's work buffer (no filter, no resampling): copy it
    info = harmonize(rec, tuple(montage), cfg, lambda k, row: rows.__setitem__(k, np.array(row, copy=True)))
    for note in info["notes"]:
        log.warning(note)
    return np.stack([rows[k] for k in range(len(montage))]), info["sfreq"]


def _build_into(rec: Recording, montage: tuple[str, ...], cfg: PreprocessingConfig, path: str, offset: int,
                n_samples: int) -> dict:
    """Worker task: one recording written straight into its preallocated dataset of the patient's
    temporary HDF5 file (raw float32 rows at the dataset's byte offset; no HDF5 call here)."""
    def sink(k: int, row: np.ndarray) -> None:
        if row.shape[0] != n_samples:
            raise DatasetError(f"{rec.path}: {row.shape[0]} samples after preprocessing, {n_samples} expected")
        os.pwrite(fd, memoryview(np.ascontiguousarray(row, dtype="<f4")).cast("B"), offset + 4 * k * n_samples)

    fd = os.open(path, os.O_WRONLY)
    try:
        info = harmonize(rec, montage, cfg, sink)
    except MontageError as e:
        return {"skip": f"{rec.path}: {e}"}
    except (DatasetError, OSError, ValueError) as e:
        return {"skip": f"{rec.path}: unreadable ({e})" if str(rec.path) not in str(e) else str(e)}
    finally:
        os.close(fd)
        _release_free_memory()
    return info


def _release_free_memory() -> None:
    """Give the heap's free pages back to the system after a recording (glibc keeps them, and
    the next recording's arrays fragment the heap: a worker's memory would creep up)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _expected_samples(rec: Recording, cfg: PreprocessingConfig) -> int:
    """Samples of the cached recording: its data records at the EEG rate, then resampled."""
    h = read_edf_header(rec.path)
    first, stop = rec.records if rec.records is not None else (0, h.n_records)
    return output_length((stop - first) * int(round(rec.sfreq * h.record_duration_s)), rec.sfreq, cfg)


def _create_patient_file(tmp: Path, patient: str, recordings: list[Recording], shapes: dict,
                         montage: tuple[str, ...], cfg: PreprocessingConfig, fingerprint: str) -> dict:
    """A temporary patient file whose datasets are allocated (contiguous, never filled) for the
    workers to write into; returns each recording's byte offset."""
    soz = next((r.soz for r in recordings if r.soz), None)
    region = next((r.soz_region for r in recordings if r.soz_region), None)
    offsets = {}
    with h5py.File(tmp, "w") as f:
        f.attrs.update({
            "schema_version": SCHEMA_VERSION, "patient": patient,
            "channels": json.dumps(list(montage)),
            "soz": json.dumps(list(soz)) if soz else "null",
            "soz_region": region or "",
            "preprocessing": cfg.to_json(), "montage": json.dumps(list(montage)),
            "sources_fingerprint": fingerprint, "complete": False,
        })
        group = f.create_group("recordings")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # space reserved now: its offset is known
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # and not written twice
        for rid, n in shapes.items():
            space = h5py.h5s.create_simple((len(montage), n))
            dsid = h5py.h5d.create(group.id, rid.encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
            offsets[rid] = int(dsid.get_offset())
    return offsets


def _complete_patient_file(tmp: Path, path: Path, recordings: list[Recording], results: dict, shapes: dict,
                           sfreq: float, skipped: list[tuple[str, str]]) -> None:
    """Attributes of what the workers wrote, failed recordings removed, then renamed into place."""
    notes: list[tuple[str, str]] = []
    with h5py.File(tmp, "r+") as f:
        group = f["recordings"]
        for rec in recordings:
            if rec.recording_id not in shapes:
                continue
            res = results[rec.recording_id]
            if "skip" in res:
                del group[rec.recording_id]
                continue
            group[rec.recording_id].attrs.update({
                "seizures": json.dumps([list(s) for s in rec.seizures]),
                "annotated": True, "source_path": str(rec.path),
                "duration_s": float(shapes[rec.recording_id] / sfreq),
                "float32_channels": int(res["float32_channels"]),
            })
            notes += [(rec.recording_id, note) for note in res["notes"]]
        f.attrs["sfreq"] = float(sfreq)
        f.attrs["skipped"] = json.dumps(skipped)
        f.attrs["notes"] = json.dumps(notes)
        f.attrs["complete"] = True
    os.replace(tmp, path)


class _InProcess:
    """An executor that runs each task when it is submitted (``n_jobs=1``: no worker process)."""

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 (re-raised by .result())
            fut.set_exception(e)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def default_jobs() -> int:
    """Cores this process may run on (the CPU affinity mask, which SLURM and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _executor(n_jobs: int):
    if n_jobs <= 1:
        return _InProcess()
    import multiprocessing as mp

    # fork on Linux: workers start in milliseconds and, unlike spawn/forkserver, never re-run
    # the caller's main script (a script without an `if __name__ == "__main__"` guard would
    # build again in every worker). It is safe here because a worker only reads an EDF and runs
    # numpy/scipy on it: no thread pool, no logging, no HDF5 handle, no import after the fork.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    # Start every worker now, before any patient lock is taken: a forked worker would inherit
    # the lock's open file and keep it locked if this process were killed. The objects the
    # workers inherit are frozen first, so their garbage collector never writes to those pages
    # (each write would copy a page of this process into the worker).
    gc.freeze()
    try:
        list(pool.map(int, range(n_jobs)))
    finally:
        gc.unfreeze()
    return pool


def _worker_init(parent: int) -> None:
    """In each worker: die with the parent (a killed builder leaves no orphan holding files)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def build_cache(recordings: list[Recording], cache_root: str | os.PathLike, root: str | os.PathLike,
                preprocessing: PreprocessingConfig = PreprocessingConfig(),
                montage: tuple[str, ...] = DOUBLE_BANANA, patients: list[str] | None = None,
                progress: bool = True, *, n_jobs: int | None = None,
                lock_timeout_s: float | None = None) -> CacheReport:
    """Cache ``recordings`` (optionally only some ``patients``), rebuilding only what is missing,
    incomplete or stale. Safe to call from several processes at once.

    Parameters
    ----------
    n_jobs : int, optional
        Worker processes building recordings in parallel (default: every core this process may
        use, :func:`default_jobs`); 1 builds in this process.
    lock_timeout_s : float, optional
        How long to wait for a patient another builder is building before giving up with
        :class:`CacheLockTimeout` (default :data:`DEFAULT_LOCK_TIMEOUT_S`, or the
        SEIZURE_CACHE_LOCK_TIMEOUT environment variable).
    """
    montage = tuple(montage)
    timeout = _lock_timeout(lock_timeout_s)
    n_jobs = default_jobs() if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        raise DatasetError(f"n_jobs must be >= 1, got {n_jobs}")
    directory = Path(cache_root) / config_hash(root, preprocessing, montage)
    directory.mkdir(parents=True, exist_ok=True)
    by_patient: dict[str, list[Recording]] = {}
    for r in recordings:
        by_patient.setdefault(r.patient, []).append(r)
    wanted = sorted(by_patient) if patients is None else [p for p in patients if p in by_patient]
    missing = [p for p in (patients or []) if p not in by_patient]
    if missing:
        raise DatasetError(f"no recordings for patient(s) {', '.join(missing)} under {root}")

    files, built, reused = {}, [], []
    todo = []
    for p in wanted:
        path = directory / f"{p}.h5"
        fp = sources_fingerprint(by_patient[p])
        files[p] = str(path)
        if is_valid(path, fp):
            reused.append(p)
        else:
            todo.append((p, path, fp))

    bar = None
    if todo and progress:
        from tqdm.auto import tqdm
        total = sum(len(by_patient[p]) for p, _, _ in todo)
        bar = tqdm(total=total, desc=f"caching {len(todo)} patient(s), {min(n_jobs, total)} process(es)",
                   unit="rec")
    n_work = sum(len(by_patient[p]) for p, _, _ in todo)
    executor = _executor(min(n_jobs, n_work)) if todo else _InProcess()
    queue = list(todo)
    deferred: list[tuple[str, Path, str]] = []
    active: dict[str, dict] = {}  # patient -> its build state (see _start_patient)
    in_flight: dict[Future, tuple[str, Recording]] = {}
    limit = max(2, 2 * n_jobs)
    try:
        while queue or deferred or active:
            # fill the pool, one patient at a time, patients whose lock is taken go last
            while len(in_flight) < limit:
                state = next((s for s in active.values() if s["pending"]), None)
                if state is None:
                    if not queue:
                        break
                    p, path, fp = queue.pop(0)
                    lock = PatientLock(path)
                    if not lock.try_acquire():
                        deferred.append((p, path, fp))
                        continue
                    state = _start_patient(p, path, fp, lock, by_patient[p], directory, montage, preprocessing,
                                           reused, bar)
                    if state is None:
                        continue
                    active[p] = state
                    if not state["pending"]:  # nothing to build: write at once
                        _finish_patient(state, built)
                        del active[p]
                        continue
                rec = state["pending"].pop(0)
                fut = executor.submit(_build_into, rec, montage, preprocessing, str(state["tmp"]),
                                      state["offsets"][rec.recording_id], state["shapes"][rec.recording_id])
                in_flight[fut] = (state["patient"], rec)
            if not in_flight:
                if deferred:  # every other patient is done: wait for those another builder holds
                    p, path, fp = deferred.pop(0)
                    lock = PatientLock(path)
                    lock.acquire(timeout, f"patient {p}")
                    state = _start_patient(p, path, fp, lock, by_patient[p], directory, montage, preprocessing,
                                           reused, bar)
                    if state is not None:
                        active[p] = state
                        if not state["pending"]:
                            _finish_patient(state, built)
                            del active[p]
                    continue
                if not active:
                    break
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                p, rec = in_flight.pop(fut)
                state = active[p]
                try:
                    state["results"][rec.recording_id] = fut.result()
                except BrokenProcessPool:
                    raise DatasetError(f"{rec.path}: the worker process building it died (killed, or out of "
                                       "memory); rerun with fewer worker processes (n_jobs, --jobs)") from None
                if bar is not None:
                    bar.update(1)
                if len(state["results"]) == state["n"]:
                    _finish_patient(state, built)
                    del active[p]
    finally:
        for fut in in_flight:
            fut.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        for state in active.values():
            Path(state["tmp"]).unlink(missing_ok=True)
            state["lock"].release()
        if bar is not None:
            bar.close()
    skipped_all, notes_all, empty = [], [], []
    for p in wanted:
        with h5py.File(files[p], "r") as f:
            skipped_all.extend(tuple(s) for s in json.loads(f.attrs.get("skipped", "[]")))
            notes_all.extend(tuple(s) for s in json.loads(f.attrs.get("notes", "[]")))
            if len(f["recordings"]) == 0:
                empty.append(p)
    for p in empty:
        log.warning("patient %s has no usable recording in the cache (see the skipped recordings)", p)
    return CacheReport(str(directory), files, tuple(built), tuple(reused),
                       tuple((str(a), str(b)) for a, b in skipped_all),
                       tuple((str(a), str(b)) for a, b in notes_all), tuple(empty))


def _start_patient(p, path, fp, lock, recordings, directory, montage, cfg, reused, bar):
    """With ``p``'s lock held: None when another builder made it meanwhile, else its build state
    (the recordings to build and their datasets, allocated in a temporary file)."""
    if is_valid(path, fp):
        lock.release()
        reused.append(p)
        if bar is not None:
            bar.update(len(recordings))
        return None
    for stale in directory.glob(f"{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    skipped, pending = [], []
    for rec in recordings:
        if not rec.annotated:
            skipped.append((rec.recording_id, "no annotation entry: excluded from training and scoring"))
        elif (problem := montage_problem(rec, montage)) is not None:
            skipped.append((rec.recording_id, problem))
        else:
            pending.append(rec)
    rates = [output_sfreq(r.sfreq, cfg) for r in pending]
    sfreq = max(set(rates), key=rates.count) if rates else float(cfg.sfreq or 0.0)
    for r in [r for r in pending if abs(output_sfreq(r.sfreq, cfg) - sfreq) > 1e-6]:
        pending.remove(r)
        skipped.append((r.recording_id, f"{r.path}: sampling rate {r.sfreq:g} Hz differs from the patient's other "
                        f"recordings ({sfreq:g} Hz); set preprocessing.sfreq to resample them to one rate"))
    shapes = {r.recording_id: _expected_samples(r, cfg) for r in pending}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        offsets = _create_patient_file(tmp, p, recordings, shapes, montage, cfg, fp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        lock.release()
        raise
    if bar is not None and len(pending) < len(recordings):
        bar.update(len(recordings) - len(pending))
    return {"patient": p, "path": path, "fp": fp, "lock": lock, "recordings": recordings, "pending": pending,
            "n": len(pending), "results": {}, "skipped": skipped, "tmp": tmp, "offsets": offsets,
            "shapes": shapes, "sfreq": sfreq}


def _finish_patient(state, built) -> None:
    try:
        skipped = state["skipped"] + [(rid, res["skip"]) for rid, res in state["results"].items() if "skip" in res]
        _complete_patient_file(state["tmp"], state["path"], state["recordings"], state["results"], state["shapes"],
                               state["sfreq"], skipped)
        for rid, why in skipped:
            log.warning("skipping %s: %s", rid, why)
        built.append(state["patient"])
    finally:
        Path(state["tmp"]).unlink(missing_ok=True)
        state["lock"].release()


def list_recordings(h5_path: str | os.PathLike) -> list[CachedRecording]:
    """Cached recordings of one patient file, in recording-id order."""
    out = []
    with h5py.File(h5_path, "r") as f:
        channels = tuple(json.loads(f.attrs["channels"]))
        soz_raw = f.attrs.get("soz", "null")
        soz = json.loads(soz_raw) if soz_raw not in ("", "null") else None
        region = f.attrs.get("soz_region", "") or None
        sfreq = float(f.attrs["sfreq"])
        patient = str(f.attrs["patient"])
        for rid in sorted(f["recordings"]):
            ds = f["recordings"][rid]
            out.append(CachedRecording(
                patient=patient, recording_id=rid, n_samples=int(ds.shape[1]), sfreq=sfreq,
                channels=channels, seizures=tuple(tuple(s) for s in json.loads(ds.attrs["seizures"])),
                soz=tuple(soz) if soz else None, h5_path=str(h5_path),
                annotated=bool(ds.attrs.get("annotated", True)), soz_region=region,
            ))
    return out


def read_signal(h5_path: str | os.PathLike, recording_id: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples ``[start, stop)`` of a cached recording, (n_chans, n) float32 microvolts."""
    with h5py.File(h5_path, "r") as f:
        ds = f["recordings"][recording_id]
        stop = ds.shape[1] if stop is None else stop
        return np.asarray(ds[:, start:stop], dtype=np.float32)


class SignalReader:
    """Fast random access to cached signals, one per process (open lazily in each worker).

    Contiguous uncompressed datasets are memory-mapped straight from the HDF5 file at their
    byte offset, so a window is a numpy slice (no HDF5 call, no lock); other layouts fall back to
    h5py reads.
    """

    def __init__(self):
        self._maps: dict[tuple[str, str], np.ndarray] = {}
        self._files: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    def _reset_if_forked(self):
        if os.getpid() != self._pid:  # opened handles must not cross a fork
            self._maps, self._files, self._pid = {}, {}, os.getpid()

    def array(self, h5_path: str, recording_id: str) -> np.ndarray:
        self._reset_if_forked()
        key = (h5_path, recording_id)
        arr = self._maps.get(key)
        if arr is None:
            f = self._files.get(h5_path)
            if f is None:
                f = self._files[h5_path] = h5py.File(h5_path, "r")
            ds = f["recordings"][recording_id]
            offset = ds.id.get_offset()
            if ds.chunks is None and ds.compression is None and offset is not None and ds.dtype == np.float32:
                arr = np.memmap(h5_path, dtype="<f4", mode="r", offset=offset, shape=ds.shape)
            else:
                arr = ds  # h5py dataset: slicing works the same way, slower
            self._maps[key] = arr
        return arr

    def window(self, h5_path: str, recording_id: str, start: int, n: int) -> np.ndarray:
        return np.asarray(self.array(h5_path, recording_id)[:, start:start + n], dtype=np.float32)

    def __getstate__(self):  # DataLoader workers get a fresh reader
        return {"_maps": {}, "_files": {}, "_pid": -1}

    def __setstate__(self, state):
        self.__dict__.update(state)


# --------------------------------------------------------------------------- CLI: python -m datamodules cache
def add_arguments(parser) -> None:
    parser.add_argument("root", help="dataset root (CHB-MIT, SzCORE BIDS or synthetic)")
    parser.add_argument("--cache-dir", default="cache", help="cache root (default: cache)")
    parser.add_argument("--patients", nargs="*", default=None, help="only these patients")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: every core this process may use)")
    parser.add_argument("--lock-timeout", type=float, default=None,
                        help=f"seconds to wait for a patient another builder holds (default "
                             f"{DEFAULT_LOCK_TIMEOUT_S:g}, or SEIZURE_CACHE_LOCK_TIMEOUT)")
    for name, default in (("l-freq", 0.5), ("h-freq", 40.0), ("notch-freq", 60.0), ("sfreq", 256.0)):
        parser.add_argument(f"--{name}", type=float, default=default,
                            help=f"preprocessing {name.replace('-', '_')} (default {default}; 0 disables)")


def run(args) -> int:
    import time

    from .sources import discover

    cfg = PreprocessingConfig(l_freq=args.l_freq or None, h_freq=args.h_freq or None,
                              notch_freq=args.notch_freq or None, sfreq=args.sfreq or None)
    t0 = time.perf_counter()
    report = build_cache(discover(args.root), args.cache_dir, args.root, cfg, patients=args.patients,
                         n_jobs=args.jobs, lock_timeout_s=args.lock_timeout)
    print(f"cache {report.directory}: built {len(report.built)}, reused {len(report.reused)} patient file(s) "
          f"in {time.perf_counter() - t0:.1f} s")
    for rid, why in report.skipped:
        print(f"skipped {rid}: {why}")
    for rid, note in report.notes:
        print(f"note {rid}: {note}")
    for p in report.empty:
        print(f"patient {p}: no usable recording (a study leaves it out)")
    return 0
