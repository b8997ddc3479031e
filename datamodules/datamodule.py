"""Leave-one-patient-out DataModule over the HDF5 cache.

The held-out patient is the test set; validation patients come from the others; training
balances seizure and background windows by sampling; validation, test and predict cover every
window of every recording in order, so their probabilities can be turned into events and
scored the SzCORE way.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from eeg.montage import DOUBLE_BANANA, MontageError, montage_channels, soz_channel_mask

from .cache import CachedRecording, SignalReader, build_cache, list_recordings, read_signal
from .preprocessing import PreprocessingConfig
from .recording import DatasetError, Recording
from .splits import loso_split
from .windows import WindowIndex, make_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeizureEvent:
    """One annotated seizure, as the ECAM / onset-map callbacks and the scorer see it."""

    patient: str
    recording_id: str
    onset_s: float
    offset_s: float
    soz: tuple[str, ...] | None


class WindowDataset(Dataset):
    """Windows of cached signals in the batch format every LightningModule here expects.

    Items are dicts: ``x`` (C, T) float32 microvolts, ``y`` label, ``boundary_dist_s``,
    ``onset_dist_s``, ``soz`` (C,) mask, ``has_soz``, ``recording``, ``patient``, ``start_s``.
    ``__getitems__`` serves a whole batch in one call (one stack, no per-item collation).
    """

    def __init__(self, windows: WindowIndex):
        self.windows = windows
        recs = windows.recordings
        self._paths = [r.h5_path for r in recs]
        self._ids = [r.recording_id for r in recs]
        self._patients = [r.patient for r in recs]
        self._soz = np.stack([soz_channel_mask(r.channels, r.soz or ()) for r in recs]).astype(np.float32)
        self._has_soz = np.array([bool(r.soz) for r in recs])
        self._reader = SignalReader()

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return _unbatch(self.__getitems__([i]))

    def __getitems__(self, indices) -> dict:
        w = self.windows
        idx = np.asarray(indices, dtype=np.int64)
        rec = w.recording[idx]
        start = w.start[idx]
        n = w.n_times
        x = np.empty((idx.shape[0], self._soz.shape[1], n), dtype=np.float32)
        for k in range(idx.shape[0]):
            r = rec[k]
            x[k] = self._reader.array(self._paths[r], self._ids[r])[:, start[k]:start[k] + n]
        return {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(w.label[idx].astype(np.int64)),
            "boundary_dist_s": torch.from_numpy(w.boundary_dist_s[idx]),
            "onset_dist_s": torch.from_numpy(w.onset_dist_s[idx]),
            "soz": torch.from_numpy(self._soz[rec]),
            "has_soz": torch.from_numpy(self._has_soz[rec]),
            "recording": [self._ids[r] for r in rec],
            "patient": [self._patients[r] for r in rec],
            "start_s": torch.from_numpy((start / w.sfreq).astype(np.float32)),
        }


def _unbatch(batch: dict) -> dict:
    return {k: v[0] for k, v in batch.items()}


def collate_windows(items):
    """Collate for :class:`WindowDataset`: a batch from ``__getitems__`` passes through; a list of
    single items (e.g. from a user's own sampler) is stacked."""
    if isinstance(items, dict):
        return items
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else list(vals)
    return out


class BalancedWindowSampler(Sampler[int]):
    """Each epoch: every seizure window (capped) plus ``ratio`` times as many background windows,
    drawn at random and shuffled; a different draw each epoch, deterministic per seed."""

    def __init__(self, labels: np.ndarray, ratio: float = 3.0, max_seizure: int | None = None, seed: int = 0):
        self.pos = np.flatnonzero(labels == 1)
        self.neg = np.flatnonzero(labels == 0)
        if len(self.pos) == 0:
            raise DatasetError("the training patients have no seizure windows: nothing to learn from")
        self.ratio = float(ratio)
        self.max_seizure = max_seizure
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this every epoch
        self.epoch = int(epoch)

    def _n(self) -> tuple[int, int]:
        n_pos = len(self.pos) if self.max_seizure is None else min(len(self.pos), self.max_seizure)
        return n_pos, min(len(self.neg), int(round(self.ratio * n_pos)))

    def __len__(self) -> int:
        return sum(self._n())

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        n_pos, n_neg = self._n()
        pos = rng.choice(self.pos, n_pos, replace=False)
        neg = rng.choice(self.neg, n_neg, replace=False)
        order = np.concatenate([pos, neg])
        rng.shuffle(order)
        return iter(order.tolist())


def _check_positive(**values) -> None:
    for name, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")


class LOSODataModule(pl.LightningDataModule):
    """Leave-one-patient-out windows from a dataset folder (CHB-MIT, SzCORE BIDS, synthetic).

    Parameters
    ----------
    data_root : str
        Dataset folder (any layout :func:`datamodules.sources.discover` knows).
    test_patient : str or None
        Held-out patient (the fold). ``chb21`` is the same patient as ``chb01``. None with
        ``test_recording`` (the recording's patient).
    cache_dir : str
        Root of the HDF5 cache (a config-hashed subfolder is used inside).
    val_patients : int or list of str
        How many patients (chosen per seed) or which ones validate; the rest train.
    window_s, train_hop_s, seizure_hop_s : float
        Window length; hop of training background windows; denser hop for training seizure
        windows (more views of the rare class). Validation/test windows never overlap
        (hop = window_s) so every second is scored once.
    min_overlap : float
        A window is a seizure window when it overlaps an annotated seizure by at least this
        fraction of its length (or of the seizure, if shorter).
    background_ratio : float
        Background windows drawn per seizure window each training epoch.
    val_background_windows : int or None
        The per-epoch validation loader (early stopping, best checkpoint) scores every seizure
        window of the validation patients and this many of their background windows, a fixed
        random sample (None: all of them). Hours of background cost minutes per epoch and add
        nothing to an AUROC estimate beyond a few thousand windows. Threshold tuning and every
        score always use all windows (:meth:`predict_dataloader`).
    holdout : {"patient", "recording"}
        ``patient``: leave one patient out (patient-independent). ``recording``: the fold is one
        seizure-bearing recording, ``test_recording``; the network trains on the same patient's
        other recordings only (patient-specific) and validates on ``val_patients`` other
        patients, so neither early stopping nor the threshold sees the held-out recording.
    test_recording : str or None
        The held-out recording id with ``holdout="recording"``.
    montage : str or list of str
        Target channels, selected by name from every recording: a montage name of
        :data:`eeg.montage.MONTAGES` (``double_banana``, ``referential_19``) or a list of bipolar
        pairs (``FP1-F7``) and/or electrodes (``FP1``, read from referential channels).
    """

    def __init__(self, data_root: str, test_patient: str | None, cache_dir: str = "cache",
                 val_patients: int | list[str] = 2, window_s: float = 2.0, train_hop_s: float = 2.0,
                 seizure_hop_s: float = 0.5, min_overlap: float = 0.5, background_ratio: float = 3.0,
                 max_seizure_windows: int | None = None, val_background_windows: int | None = 4000,
                 batch_size: int = 256, num_workers: int = 0,
                 seed: int = 0, preprocessing: PreprocessingConfig | dict | None = None,
                 montage: str | tuple[str, ...] = DOUBLE_BANANA, recordings: list[Recording] | None = None,
                 progress: bool = True, holdout: Literal["patient", "recording"] = "patient",
                 test_recording: str | None = None):
        super().__init__()
        if holdout not in ("patient", "recording"):
            raise ValueError(f"holdout must be 'patient' or 'recording', got {holdout!r}")
        if (holdout == "recording") != (test_recording is not None):
            raise ValueError("holdout='recording' needs test_recording (the held-out recording id), "
                             "and test_recording needs holdout='recording'")
        if test_patient is None and test_recording is None:
            raise ValueError("test_patient (or, with holdout='recording', test_recording) is required")
        _check_positive(window_s=window_s, train_hop_s=train_hop_s, seizure_hop_s=seizure_hop_s,
                        batch_size=batch_size)
        if not 0.0 < float(min_overlap) <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap!r}")
        if float(background_ratio) < 0:
            raise ValueError(f"background_ratio must be >= 0, got {background_ratio!r}")
        if val_background_windows is not None and int(val_background_windows) < 1:
            raise ValueError(f"val_background_windows must be >= 1 or null, got {val_background_windows!r}")
        if max_seizure_windows is not None and int(max_seizure_windows) < 1:
            raise ValueError(f"max_seizure_windows must be >= 1 or null, got {max_seizure_windows!r}")
        if int(num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}")
        if isinstance(val_patients, int) and val_patients < 1:
            raise ValueError(f"val_patients must be at least 1 (early stopping and thresholds need "
                             f"validation data), got {val_patients!r}")
        try:  # a name ("referential_19") or a list of channels (bipolar pairs and/or electrodes)
            montage = montage_channels(montage)
        except MontageError as e:
            raise ValueError(f"montage: {e}") from None
        self.data_root = str(data_root)
        self.test_patient = test_patient
        self.holdout = holdout
        self.test_recording = test_recording
        self.cache_dir = str(cache_dir)
        self.val_patients = val_patients
        self.window_s = float(window_s)
        self.train_hop_s = float(train_hop_s)
        self.seizure_hop_s = float(seizure_hop_s)
        self.min_overlap = float(min_overlap)
        self.background_ratio = float(background_ratio)
        self.max_seizure_windows = max_seizure_windows
        self.val_background_windows = val_background_windows
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        if preprocessing is None:
            preprocessing = PreprocessingConfig()
        elif not isinstance(preprocessing, PreprocessingConfig):
            preprocessing = PreprocessingConfig.from_mapping(preprocessing)
        self.preprocessing = preprocessing
        self.montage = tuple(montage)
        self._recordings = recordings
        self.progress = progress
        self.split = None
        self.cached: dict[str, list[CachedRecording]] = {}
        self._windows: dict[str, WindowIndex] = {}

    # -- shape of the data, for building models -------------------------------------------
    @property
    def channels(self) -> tuple[str, ...]:
        return self.montage

    @property
    def sfreq(self) -> float:
        if self.cached:
            return next(iter(self.cached.values()))[0].sfreq
        if self.preprocessing.sfreq:
            return float(self.preprocessing.sfreq)
        raise RuntimeError("sfreq is known after setup() when preprocessing keeps the native rate")

    @property
    def n_times(self) -> int:
        return int(round(self.window_s * self.sfreq))

    def model_shape(self, sfreq: float | None = None) -> dict:
        """Signal-shaped arguments for a window model (braindecode names): ``n_chans``,
        ``n_times``, ``sfreq``. ``sfreq`` overrides the rate (before the cache is built)."""
        sf = float(sfreq) if sfreq is not None else float(self.sfreq)
        return {"n_chans": len(self.channels), "n_times": int(round(self.window_s * sf)), "sfreq": sf}

    # -- Lightning hooks ------------------------------------------------------------------
    def recordings(self) -> list[Recording]:
        if self._recordings is None:
            from .sources import discover
            self._recordings = discover(self.data_root, self.montage)
        return self._recordings

    def prepare_data(self) -> None:
        """Build the cache (all patients: every fold needs the others as training data).
        Concurrent-safe, so SLURM array tasks may all call it."""
        build_cache(self.recordings(), self.cache_dir, self.data_root, self.preprocessing,
                    self.montage, progress=self.progress)

    def setup(self, stage: str | None = None) -> None:
        if self.split is not None:
            return
        recs = self.recordings()
        if self.test_recording is not None:
            owner = next((r.patient for r in recs if r.recording_id == self.test_recording), None)
            if owner is None:
                raise DatasetError(f"recording {self.test_recording!r} is not in {self.data_root}")
            if self.test_patient not in (None, owner):
                raise DatasetError(f"recording {self.test_recording} belongs to {owner}, not {self.test_patient}")
            self.test_patient = owner
        report = build_cache(recs, self.cache_dir, self.data_root, self.preprocessing, self.montage,
                             progress=self.progress)
        if self.test_patient in report.empty:
            reasons = "; ".join(why for rid, why in report.skipped
                                if any(r.recording_id == rid and r.patient == self.test_patient for r in recs))
            raise DatasetError(f"held-out patient {self.test_patient} has no usable recording ({reasons})")
        # a patient whose every recording was skipped is left out of training and validation
        patients = sorted({r.patient for r in recs} - set(report.empty))
        for p in report.empty:
            log.warning("patient %s has no usable recording; excluded from this study", p)
        self.split = loso_split(patients, self.test_patient, self.val_patients, seed=self.seed,
                                test_recording=self.test_recording)
        self._cache_files = dict(report.files)
        for patient, path in report.files.items():
            self.cached[patient] = list_recordings(path)
        for name, patients in (("train", self.split.train), ("val", self.split.val), ("test", self.split.test)):
            rs = [r for p in patients for r in self.cached.get(p, []) if self._in_split(name, r.recording_id)]
            if name == "test" and self.test_recording is not None and not rs:
                why = dict(report.skipped).get(self.test_recording, "not in the cache")
                raise DatasetError(f"held-out recording {self.test_recording} is not usable ({why})")
            if name == "train" and self.test_recording is not None and not any(r.seizures for r in rs):
                raise DatasetError(f"patient {self.test_patient} has no seizure-bearing recording besides "
                                   f"{self.test_recording} to train on")
            if not rs:
                raise DatasetError(f"the {name} split ({', '.join(patients)}) has no usable recordings")
            self._index_split(name, patients, rs)

    def _in_split(self, name: str, recording_id: str) -> bool:
        """Whether a recording of the split's patients belongs to it (with a held-out recording,
        the patient's training and test splits share the patient and part its recordings)."""
        if self.test_recording is None or name == "val":
            return True
        return (recording_id == self.test_recording) == (name == "test")

    def _index_split(self, name: str, patients, recordings: list[CachedRecording]) -> None:
        """Cut one split's cached recordings into what its loader serves (here: windows)."""
        hop = self.train_hop_s if name == "train" else self.window_s
        w = make_windows(recordings, self.window_s, hop, self.min_overlap)
        if name == "train" and self.seizure_hop_s < self.train_hop_s:
            dense = make_windows(recordings, self.window_s, self.seizure_hop_s, self.min_overlap)
            w = WindowIndex.concat(w.select(w.label == 0), dense.select(dense.label == 1))
        self._windows[name] = w

    def windows(self, split: str) -> WindowIndex:
        return self._windows[split]

    def _loader(self, split: str, sampler=None, shuffle=False) -> DataLoader:
        return DataLoader(WindowDataset(self._windows[split]), batch_size=self.batch_size,
                          sampler=sampler, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=collate_windows, persistent_workers=self.num_workers > 0,
                          pin_memory=False)

    def train_dataloader(self) -> DataLoader:
        w = self._windows["train"]
        sampler = BalancedWindowSampler(w.label, self.background_ratio, self.max_seizure_windows, self.seed)
        return self._loader("train", sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        w = self._windows["val"]
        neg = np.flatnonzero(w.label == 0)
        if self.val_background_windows is None or len(neg) <= self.val_background_windows:
            return self._loader("val")
        keep = np.random.default_rng(self.seed).choice(neg, int(self.val_background_windows), replace=False)
        subset = w.select(np.sort(np.concatenate([np.flatnonzero(w.label == 1), keep])))
        return DataLoader(WindowDataset(subset), batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_windows, persistent_workers=self.num_workers > 0, pin_memory=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self, split: str = "test") -> DataLoader:
        """Every window of every recording of ``split``, in order (default: the held-out patient)."""
        return self._loader(split)

    # -- what the callbacks and the scorer ask for ---------------------------------------
    def split_recordings(self, split: str) -> list[CachedRecording]:
        return list(self._windows[split].recordings)

    def class_prior(self) -> tuple[float, float]:
        """(seizure share of the training recordings' windows, seizure share of what the balanced
        sampler shows the model per epoch). Their log-odds difference corrects the model's
        probabilities for the sampling (prior shift), so a probability means what it says."""
        train = self._windows["train"]
        natural = make_windows(train.recordings, self.window_s, self.window_s, self.min_overlap)
        n_pos, n_neg = BalancedWindowSampler(train.label, self.background_ratio, self.max_seizure_windows,
                                             self.seed)._n()
        return float(natural.label.mean()), n_pos / max(1, n_pos + n_neg)

    def unusable_recordings(self, split: str) -> list[tuple[Recording, str]]:
        """Annotated recordings of the split's patients that did not make it into the cache
        (unreadable, montage incomplete...), with the reason: scoring counts them as files with no
        detection, as the SzCORE evaluator does, and the summary lists them."""
        patients = set(getattr(self.split, split))
        cached = {r.recording_id for p in patients for r in self.cached.get(p, [])}
        reasons: dict[str, str] = {}
        for p in patients:
            path = getattr(self, "_cache_files", {}).get(p)
            if path:
                import json

                import h5py
                with h5py.File(path, "r") as f:
                    reasons.update({str(a): str(b) for a, b in json.loads(f.attrs.get("skipped", "[]"))})
        return [(r, reasons.get(r.recording_id, "not in the cache"))
                for r in self.recordings() if r.patient in patients and r.annotated and r.recording_id not in cached
                and self._in_split(split, r.recording_id)]

    def seizure_events(self, split: str) -> list[SeizureEvent]:
        return [SeizureEvent(r.patient, r.recording_id, float(on), float(off), r.soz)
                for r in self.split_recordings(split) for on, off in r.seizures]

    def read_segment(self, recording_id: str, start_s: float, stop_s: float) -> tuple[np.ndarray, float]:
        """Cached signal of ``[start_s, stop_s)`` clipped to the recording: (signal, actual start)."""
        rec = next((r for rs in self.cached.values() for r in rs if r.recording_id == recording_id), None)
        if rec is None:
            raise KeyError(f"recording {recording_id} is not in the cache")
        a = max(0, int(round(start_s * rec.sfreq)))
        b = min(rec.n_samples, int(round(stop_s * rec.sfreq)))
        return read_signal(rec.h5_path, recording_id, a, b), a / rec.sfreq
