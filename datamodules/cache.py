"""HDF5 cache of harmonized, preprocessed recordings: one file per patient.

Layout of ``<cache_root>/<config hash>/<patient>.h5``::

    attrs: schema_version, patient, channels (JSON), sfreq, soz (JSON or "null"), soz_region,
           preprocessing (JSON), montage (JSON), sources_fingerprint, skipped (JSON), complete
    recordings/<recording_id>/signal   float32 (n_chans, n_samples), microvolts
        attrs: seizures (JSON [[onset_s, offset_s], ...]), annotated, source_path, duration_s

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
* Crash- and concurrency-safe: a file is written under a unique temporary name and renamed
  into place (atomic on POSIX); an advisory lock per patient makes concurrent builders (SLURM
  array tasks) wait for the first one instead of repeating its work; a file without
  ``complete=True`` and the current schema is never trusted. Stale temporaries are removed by
  the next builder that holds the lock.
* Streams recording by recording: at most one recording's samples are in memory.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from eeg.montage import DOUBLE_BANANA, MontageError, derive

from .preprocessing import PreprocessingConfig, preprocess
from .recording import DatasetError, Recording

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


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
    """What a build did: files per patient, and which were rebuilt or reused."""

    directory: str
    files: dict
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (recording_id, reason)


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
                      list(r.soz) if r.soz else None, r.soz_region])
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


@contextmanager
def _patient_lock(path: Path):
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_harmonized(rec: Recording, montage: tuple[str, ...],
                     cfg: PreprocessingConfig) -> tuple[np.ndarray, float]:
    from .edf import read_edf_signals  # the reader lives with the EDF code

    deriv = derive(rec.channels, montage)
    used = deriv.used
    raw = read_edf_signals(rec.path, [int(i) for i in used])
    x = deriv.matrix[:, used].astype(np.float32) @ raw
    return preprocess(x, rec.sfreq, cfg)


def write_patient_file(path: Path, patient: str, recordings: list[Recording], montage: tuple[str, ...],
                       cfg: PreprocessingConfig, fingerprint: str, progress=None) -> list[tuple[str, str]]:
    """Write one patient's cache file atomically. Returns the skipped (recording_id, reason)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    skipped: list[tuple[str, str]] = []
    soz = next((r.soz for r in recordings if r.soz), None)
    region = next((r.soz_region for r in recordings if r.soz_region), None)
    out_sfreq = None
    try:
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
            for rec in recordings:
                if not rec.annotated:
                    skipped.append((rec.recording_id, "no annotation entry: excluded from training and scoring"))
                else:
                    try:
                        x, sf = load_harmonized(rec, montage, cfg)
                    except MontageError as e:
                        skipped.append((rec.recording_id, f"{rec.path}: {e}"))
                    except (DatasetError, OSError, ValueError) as e:
                        skipped.append((rec.recording_id, f"{rec.path}: unreadable ({e})"))
                    else:
                        if out_sfreq is not None and abs(sf - out_sfreq) > 1e-6:
                            raise DatasetError(
                                f"{rec.path}: sampling rate {rec.sfreq} Hz differs from the patient's other "
                                f"recordings; set preprocessing.sfreq to resample them to one rate")
                        out_sfreq = sf
                        ds = group.create_dataset(rec.recording_id, data=x)  # contiguous: memmap-able
                        ds.attrs.update({
                            "seizures": json.dumps([list(s) for s in rec.seizures]),
                            "annotated": True, "source_path": str(rec.path),
                            "duration_s": float(x.shape[1] / sf),
                        })
                if progress is not None:
                    progress(rec)
            for rid, why in skipped:
                log.warning("skipping %s: %s", rid, why)
            f.attrs["sfreq"] = float(out_sfreq or (cfg.sfreq or 0.0))
            f.attrs["skipped"] = json.dumps(skipped)
            f.attrs["complete"] = True
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return skipped


def build_cache(recordings: list[Recording], cache_root: str | os.PathLike, root: str | os.PathLike,
                preprocessing: PreprocessingConfig = PreprocessingConfig(),
                montage: tuple[str, ...] = DOUBLE_BANANA, patients: list[str] | None = None,
                progress: bool = True) -> CacheReport:
    """Cache ``recordings`` (optionally only some ``patients``), rebuilding only what is missing,
    incomplete or stale. Safe to call from several processes at once."""
    montage = tuple(montage)
    directory = Path(cache_root) / config_hash(root, preprocessing, montage)
    directory.mkdir(parents=True, exist_ok=True)
    by_patient: dict[str, list[Recording]] = {}
    for r in recordings:
        by_patient.setdefault(r.patient, []).append(r)
    wanted = sorted(by_patient) if patients is None else [p for p in patients if p in by_patient]
    missing = [p for p in (patients or []) if p not in by_patient]
    if missing:
        raise DatasetError(f"no recordings for patient(s) {', '.join(missing)} under {root}")

    files, built, reused, skipped_all = {}, [], [], []
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
        bar = tqdm(total=total, desc=f"caching {len(todo)} patient(s)", unit="rec")
    try:
        for p, path, fp in todo:
            with _patient_lock(path):
                if is_valid(path, fp):  # another process built it while we waited
                    reused.append(p)
                    if bar is not None:
                        bar.update(len(by_patient[p]))
                    continue
                for stale in directory.glob(f"{path.name}.tmp-*"):
                    stale.unlink(missing_ok=True)
                step = (lambda rec: bar.update(1)) if bar is not None else None
                skipped = write_patient_file(path, p, by_patient[p], montage, preprocessing, fp, step)
                skipped_all.extend(skipped)
                built.append(p)
    finally:
        if bar is not None:
            bar.close()
    for p in reused:
        with h5py.File(files[p], "r") as f:
            skipped_all.extend(tuple(s) for s in json.loads(f.attrs.get("skipped", "[]")))
    return CacheReport(str(directory), files, tuple(built), tuple(reused),
                       tuple((str(a), str(b)) for a, b in skipped_all))


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
    for name, default in (("l-freq", 0.5), ("h-freq", 40.0), ("notch-freq", 60.0), ("sfreq", 256.0)):
        parser.add_argument(f"--{name}", type=float, default=default,
                            help=f"preprocessing {name.replace('-', '_')} (default {default}; 0 disables)")


def run(args) -> int:
    import time

    from .sources import discover

    cfg = PreprocessingConfig(l_freq=args.l_freq or None, h_freq=args.h_freq or None,
                              notch_freq=args.notch_freq or None, sfreq=args.sfreq or None)
    t0 = time.perf_counter()
    report = build_cache(discover(args.root), args.cache_dir, args.root, cfg, patients=args.patients)
    print(f"cache {report.directory}: built {len(report.built)}, reused {len(report.reused)} patient file(s) "
          f"in {time.perf_counter() - t0:.1f} s")
    for rid, why in report.skipped:
        print(f"skipped {rid}: {why}")
    return 0
