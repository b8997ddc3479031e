"""Clips for SZLoc: N consecutive windows around a seizure onset (or far from any seizure, or
anywhere in a recording).

SZLoc (Craley et al., MIDL 2022) learns from clips, not single windows: 45 consecutive 1 s
windows with the marked onset placed at a random window in 16-29 during training (the model must
find the onset itself, and the detection loss ignores the uncertain band around it), at a fixed
window (22, the middle) for evaluation. Background clips (no seizure anywhere in the clip, nor
within ``background_guard_s`` of it) teach detection what seizure-free EEG looks like.

Detection is scored on consecutive clips that tile whole recordings, where onsets fall at any
window, clips start deep inside long seizures or hold their end, and EEG right next to a seizure
is common. ``recording_share`` adds training clips drawn like that: at random positions, labelled
per window, half of them uniformly over the recordings' time, half overlapping an annotated
seizure at a uniformly random offset (uniform time alone would almost never show a seizure's
middle or end, with seizures about 1 % of the EEG).

Clips are index entries over the continuous signals of the HDF5 cache (:mod:`datamodules.cache`);
:class:`ClipDataset` reads them through :class:`datamodules.cache.SignalReader` (opened lazily in
each DataLoader worker, memory-mapped).

Randomness: training draws (onset window, offset within it, background position) use torch's
global RNG inside ``__getitem__``, so each epoch gets a new draw, reproducible under
``seed_everything``: PyTorch reseeds every DataLoader worker from the main process each epoch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from eeg.montage import soz_channel_mask

from .cache import CachedRecording, SignalReader
from .recording import DatasetError

#: Onset distance of windows in clips without an onset (finite: survives float32 and collation).
NO_ONSET_S = 1e9


@dataclass(frozen=True)
class Clip:
    """One clip: where it starts and which seizure (if any) it is built around.

    Attributes
    ----------
    recording : int
        Index into :attr:`SeizureClipIndex.recordings`.
    start : int
        First sample of the clip in the recording.
    onset_s : float or None
        Marked onset (seconds from the recording start) of the seizure the clip is built around;
        None for background clips and clips drawn anywhere.
    anywhere : bool
        Drawn at a random position of the recordings (``recording_share``): it may hold any part
        of a seizure; its windows' onset distances are to the nearest marked onset.
    """

    recording: int
    start: int
    onset_s: float | None
    anywhere: bool = False

    @property
    def is_seizure_clip(self) -> bool:
        return self.onset_s is not None


class SeizureClipIndex:
    """Seizure clips (one per annotated seizure) and background clips over cached recordings.

    Parameters
    ----------
    recordings : sequence of CachedRecording
        Cached recordings (one sampling rate). Recordings with ``annotated=False`` are left out:
        their seizure status is unknown.
    n_windows : int
        Windows per clip (45 as in the SZLoc re-implementation).
    window_s : float
        Window length in seconds (1 s).
    onset_windows : (int, int)
        Inclusive range of windows where the onset is placed in training clips (16, 29).
    eval_onset_window : int
        Window holding the onset in evaluation clips (22: the onset at its start).
    background_ratio : float
        Background clips per seizure clip.
    background_guard_s : float
        Background clips keep this far from any annotated seizure (peri-ictal EEG is neither).
    recording_share : float
        Share of the training clips drawn at random positions across the whole recordings
        (see the module docstring), in [0, 1); 0.25 adds one such clip per three onset and
        background clips. Training only (``train=False`` ignores it).
    train : bool
        True: onset positions and background clips are drawn anew at every access (each epoch);
        False: fixed positions, the same every time.

    Notes
    -----
    A clip never runs past the recording: a seizure too close to the start or end gets its clip
    moved inside the recording (its onset then sits in an earlier/later window, as in the
    re-implementation). A recording shorter than one clip gives no clip; such seizures are
    listed in :attr:`warnings`, never dropped silently.
    """

    def __init__(self, recordings, n_windows: int = 45, window_s: float = 1.0,
                 onset_windows: tuple[int, int] = (16, 29), eval_onset_window: int = 22,
                 background_ratio: float = 1.0, background_guard_s: float = 10.0,
                 recording_share: float = 0.0, train: bool = True):
        lo, hi = onset_windows
        if not 0 <= lo <= hi < n_windows:
            raise ValueError(f"onset_windows {onset_windows} must lie within 0..{n_windows - 1}")
        if not 0 <= eval_onset_window < n_windows:
            raise ValueError(f"eval_onset_window {eval_onset_window} must lie within 0..{n_windows - 1}")
        if background_ratio < 0:
            raise ValueError(f"background_ratio must be >= 0, got {background_ratio}")
        if not 0.0 <= float(recording_share) < 1.0:
            raise ValueError(f"recording_share must be in [0, 1), got {recording_share}")
        recs = tuple(r for r in recordings if r.annotated)
        if not recs:
            raise DatasetError("no annotated recordings to cut clips from")
        sfreq = recs[0].sfreq
        for r in recs:
            if abs(r.sfreq - sfreq) > 1e-6:
                raise DatasetError(f"{r.h5_path}: recording {r.recording_id} is at {r.sfreq} Hz, others at "
                                   f"{sfreq} Hz; resample them to one rate in preprocessing")
        self.recordings: tuple[CachedRecording, ...] = recs
        self.sfreq = float(sfreq)
        self.n_windows = int(n_windows)
        self.window_s = float(window_s)
        self.window_samples = int(round(window_s * sfreq))
        self.n_samples = self.n_windows * self.window_samples
        self.onset_windows = (int(lo), int(hi))
        self.eval_onset_window = int(eval_onset_window)
        self.background_guard_s = float(background_guard_s)
        self.train = bool(train)

        warnings: list[str] = []
        seizures: list[tuple[int, float]] = []
        intervals: list[tuple[int, float, float]] = []
        for i, r in enumerate(recs):
            for on, off in r.seizures:
                if not (0 <= on < r.duration_s) or off < on:
                    raise DatasetError(f"{r.h5_path}: recording {r.recording_id} has a seizure "
                                       f"({on}, {off}) s outside its {r.duration_s:.1f} s")
                if r.n_samples < self.n_samples:
                    warnings.append(f"{r.h5_path}: recording {r.recording_id} ({r.duration_s:.1f} s) is "
                                    f"shorter than one {self.n_samples / sfreq:.0f} s clip: seizure at "
                                    f"{on:.1f} s gives no clip")
                    continue
                seizures.append((i, float(on)))
                intervals.append((i, float(on), float(off)))
        self.seizures: tuple[tuple[int, float], ...] = tuple(seizures)
        self._intervals = tuple(intervals)
        self._spans = self._background_spans()  # (recording, first start, end start exclusive)
        lengths = np.array([b - a for _, a, b in self._spans], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n_bg = int(round(background_ratio * len(seizures)))
        if n_bg and self._cum[-1] == 0:
            warnings.append("no seizure-free stretch long enough for a background clip: "
                            "clips are seizure clips only")
            n_bg = 0
        self.n_background = n_bg
        # clips drawn anywhere: every valid start of every recording long enough for a clip
        self._starts = np.array([max(0, r.n_samples - self.n_samples + 1) for r in recs], dtype=np.int64)
        self._starts_cum = np.concatenate([[0], np.cumsum(self._starts)]).astype(np.int64)
        share = float(recording_share) if self.train else 0.0
        n_fixed = self.n_seizure_clips + n_bg
        self.n_anywhere = int(round(share / (1.0 - share) * n_fixed)) if self._starts_cum[-1] > 0 else 0
        self.recording_share = share
        self.warnings: tuple[str, ...] = tuple(warnings)

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_seizure_clips(self) -> int:
        return len(self.seizures)

    def __len__(self) -> int:
        return self.n_seizure_clips + self.n_background + self.n_anywhere

    # -- clips ------------------------------------------------------------------------------
    def clip(self, i: int) -> Clip:
        """Clip ``i`` (seizure clips first, then background, then clips drawn anywhere). In
        training mode each call draws a new position from torch's global RNG."""
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range ({len(self)} clips)")
        if i < self.n_seizure_clips:
            rec, onset_s = self.seizures[i]
            onset = int(round(onset_s * self.sfreq))
            if self.train:
                k = _randint(self.onset_windows[0], self.onset_windows[1] + 1)
                offset = _randint(0, self.window_samples)
            else:
                k, offset = self.eval_onset_window, 0
            start = onset - k * self.window_samples - offset
            last = self.recordings[rec].n_samples - self.n_samples
            return Clip(rec, int(min(max(start, 0), last)), onset_s)
        j = i - self.n_seizure_clips
        if j >= self.n_background:
            return self._anywhere()
        total = int(self._cum[-1])
        # eval: evenly spread over all seizure-free starts (deterministic); train: anywhere
        pos = _randint(0, total) if self.train else int((j + 0.5) * total / self.n_background)
        s = int(np.searchsorted(self._cum, pos, side="right") - 1)
        rec, a, _ = self._spans[s]
        return Clip(rec, int(a + pos - self._cum[s]), None)

    def _anywhere(self) -> Clip:
        """A clip at a random position: with probability 1/2 overlapping a random annotated
        seizure (uniform offset, so onset, middle and end all appear), else uniform over time."""
        usable = [k for k, (rec, _, _) in enumerate(self._intervals) if self._starts[rec] > 0]
        if usable and _randint(0, 2) == 0:
            rec, on, off = self._intervals[usable[_randint(0, len(usable))]]
            a = int(np.floor(on * self.sfreq)) - self.n_samples + 1
            b = int(np.ceil(off * self.sfreq))  # exclusive: the clip keeps at least one seizure sample
            last = int(self._starts[rec]) - 1
            a, b = min(max(a, 0), last), min(max(b, a + 1), last + 1)
            return Clip(rec, _randint(a, b), None, anywhere=True)
        pos = _randint(0, int(self._starts_cum[-1]))
        rec = int(np.searchsorted(self._starts_cum, pos, side="right") - 1)
        return Clip(rec, int(pos - self._starts_cum[rec]), None, anywhere=True)

    def clips(self) -> list[Clip]:
        """All clips (one draw, in training mode)."""
        return [self.clip(i) for i in range(len(self))]

    def _background_spans(self) -> list[tuple[int, int, int]]:
        """Start samples whose clip stays ``background_guard_s`` away from every seizure."""
        spans = []
        guard = self.background_guard_s
        for i, r in enumerate(self.recordings):
            last = r.n_samples - self.n_samples  # last valid start
            if last < 0:
                continue
            # forbidden starts: the clip [s, s + L) would touch [on - guard, off + guard]
            forbidden = sorted(
                (int(np.floor((on - guard) * self.sfreq)) - self.n_samples + 1,
                 int(np.ceil((off + guard) * self.sfreq)) + 1)
                for on, off in r.seizures)
            cursor = 0
            for a, b in forbidden:
                if a > cursor:
                    spans.append((i, cursor, min(a, last + 1)))
                cursor = max(cursor, b)
                if cursor > last:
                    break
            if cursor <= last:
                spans.append((i, cursor, last + 1))
        return [(i, a, b) for i, a, b in spans if b > a]


def _randint(low: int, high: int) -> int:
    """Uniform integer in [low, high) from torch's global RNG (seeded per DataLoader worker)."""
    return int(torch.randint(low, high, (1,)).item())


def window_labels(t0: np.ndarray, window_s: float, seizures, min_overlap: float = 0.5) -> np.ndarray:
    """Seizure label per window starting at ``t0`` (s): 1 when it overlaps a seizure by at least
    ``min_overlap`` of its length, or of the seizure if shorter (the rule of
    :func:`datamodules.windows.make_windows`)."""
    label = np.zeros(t0.shape, np.int64)
    t1 = t0 + window_s
    for on, off in seizures:
        overlap = np.clip(np.minimum(t1, off) - np.maximum(t0, on), 0, None)
        label |= ((overlap > 0) & (overlap >= min_overlap * min(window_s, off - on))).astype(np.int64)
    return label


def nearest_onset_distance(t: np.ndarray, seizures) -> np.ndarray:
    """Signed distance (s) from each time ``t`` to the nearest marked onset (``t - onset``),
    float32; ``NO_ONSET_S`` everywhere when there is no seizure."""
    onsets = np.array([on for on, _ in seizures], dtype=np.float64)
    if onsets.size == 0:
        return np.full(t.shape, NO_ONSET_S, np.float32)
    d = np.asarray(t, np.float64)[:, None] - onsets[None]
    return d[np.arange(d.shape[0]), np.abs(d).argmin(axis=1)].astype(np.float32)


class ClipDataset(Dataset):
    """Clips of cached signals as dicts, the batch format of
    :class:`lightning_modules.localization.SeizureLocalizationModule`.

    Each item:

    - ``x`` (C, N*W) float32, microvolts;
    - ``y`` (N,) int64 per-window seizure label (any annotated seizure in the recording);
    - ``onset_dist_s`` (N,) float32: window centre minus the clip's marked onset (``NO_ONSET_S``
      for background clips; for clips drawn anywhere, minus the nearest marked onset of the
      recording, so the loss's uncertainty band applies to them too);
    - ``soz`` (C,) float32 channel mask (a bipolar channel is in the zone when either electrode
      is; region names such as ``left temporal`` expand to their electrodes), ``has_soz`` bool;
    - ``is_seizure_clip`` bool (built around an onset: the spatial losses apply); ``recording``,
      ``patient`` str; ``start_s`` float32 tensor.

    Parameters
    ----------
    index : SeizureClipIndex
    channels : sequence of str or None
        Channels to return, selected by name from the cache's (default: the cache's own order).
    min_overlap : float
        Window labelling rule, see :func:`window_labels`.
    """

    def __init__(self, index: SeizureClipIndex, channels=None, min_overlap: float = 0.5):
        self.index = index
        recs = index.recordings
        cache_channels = recs[0].channels
        for r in recs:
            if tuple(r.channels) != tuple(cache_channels):
                raise DatasetError(f"{r.h5_path}: recording {r.recording_id} has channels {list(r.channels)}, "
                                   f"others {list(cache_channels)}; cache all patients with one montage")
        self.channels = tuple(channels) if channels is not None else tuple(cache_channels)
        missing = [c for c in self.channels if c not in cache_channels]
        if missing:
            raise DatasetError(f"{recs[0].h5_path}: cached channels lack {', '.join(missing)}")
        self._rows = np.array([cache_channels.index(c) for c in self.channels])
        self._all_rows = bool(np.array_equal(self._rows, np.arange(len(cache_channels))))
        self._soz = [soz_channel_mask(self.channels, r.soz) if r.soz else
                     np.zeros(len(self.channels), np.float32) for r in recs]
        self.min_overlap = float(min_overlap)
        self._reader = SignalReader()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        ix = self.index
        clip = ix.clip(i)
        rec = ix.recordings[clip.recording]
        x = self._reader.window(rec.h5_path, rec.recording_id, clip.start, ix.n_samples)
        if x.shape[1] != ix.n_samples:
            raise DatasetError(f"{rec.h5_path}: recording {rec.recording_id} has {x.shape[1]} samples "
                               f"from {clip.start}, expected {ix.n_samples}")
        # a copy either way: a torch tensor must not hold on to a read-only memory map
        x = np.array(x if self._all_rows else x[self._rows], dtype=np.float32)
        start_s = clip.start / ix.sfreq
        t0 = start_s + ix.window_s * np.arange(ix.n_windows)
        if clip.anywhere:
            dist = nearest_onset_distance(t0 + ix.window_s / 2, rec.seizures)
        elif clip.onset_s is None:
            dist = np.full(ix.n_windows, NO_ONSET_S, np.float32)
        else:
            dist = (t0 + ix.window_s / 2 - clip.onset_s).astype(np.float32)
        soz = self._soz[clip.recording]
        return {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(window_labels(t0, ix.window_s, rec.seizures, self.min_overlap)),
            "onset_dist_s": torch.from_numpy(dist),
            "soz": torch.from_numpy(soz),
            "has_soz": torch.tensor(bool(soz.any())),
            "is_seizure_clip": torch.tensor(clip.is_seizure_clip),
            "recording": rec.recording_id,
            "patient": rec.patient,
            "start_s": torch.tensor(start_s, dtype=torch.float32),
        }


def make_clip_dataloaders(train_recordings, val_recordings, batch_size: int = 8, num_workers: int = 0,
                          channels=None, **index_kwargs) -> tuple[DataLoader, DataLoader]:
    """Training loader (random onset positions, shuffled) and validation loader (fixed
    positions, in order) over cached recordings; ``index_kwargs`` go to :class:`SeizureClipIndex`."""
    train = ClipDataset(SeizureClipIndex(train_recordings, train=True, **index_kwargs), channels)
    val = ClipDataset(SeizureClipIndex(val_recordings, train=False, **index_kwargs), channels)
    common = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    return (DataLoader(train, shuffle=True, drop_last=False, **common),
            DataLoader(val, shuffle=False, **common))
