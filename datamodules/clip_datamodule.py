"""Leave-one-patient-out clips for SZLoc: N consecutive 1 s windows around seizure onsets
(training: the onset at a random window; evaluation: at a fixed one), background clips, and a
share of training clips drawn anywhere in the recordings (as prediction sees them); prediction
covers every second of every held-out recording with consecutive clips."""
from __future__ import annotations

from torch.utils.data import ConcatDataset, DataLoader

from .clips import Clip, ClipDataset, SeizureClipIndex
from .datamodule import LOSODataModule
from .recording import DatasetError


class ConsecutiveClipIndex:
    """Clips that tile each recording from its start (the last one aligned to the recording's
    end, so it may overlap its neighbour; duplicate windows are dropped when predictions are
    collected). Same interface as :class:`SeizureClipIndex` for :class:`ClipDataset`."""

    def __init__(self, recordings, n_windows: int = 45, window_s: float = 1.0):
        self.recordings = tuple(r for r in recordings if r.annotated)
        self.sfreq = float(self.recordings[0].sfreq)
        self.n_windows, self.window_s = int(n_windows), float(window_s)
        self.window_samples = int(round(window_s * self.sfreq))
        self.n_samples = self.n_windows * self.window_samples
        clips, warnings = [], []
        for i, r in enumerate(self.recordings):
            if r.n_samples < self.n_samples:
                warnings.append(f"recording {r.recording_id} is shorter than one clip: not predicted")
                continue
            starts = list(range(0, r.n_samples - self.n_samples + 1, self.n_samples))
            if starts[-1] + self.n_samples < r.n_samples - self.window_samples + 1:
                starts.append(r.n_samples - self.n_samples)
            clips += [Clip(i, s, None) for s in starts]
        self._clips = clips
        self.warnings = tuple(warnings)

    def __len__(self) -> int:
        return len(self._clips)

    def clip(self, i: int) -> Clip:
        return self._clips[i]


class LOSOClipDataModule(LOSODataModule):
    """The LOSO split of :class:`LOSODataModule`, served as SZLoc clips.

    Validation and test clips are seizure clips with the onset at a fixed window plus evenly
    spread background clips; predict tiles the held-out recordings. ``window_s`` is the 1 s
    scoring window (probabilities are per window).

    Parameters
    ----------
    n_windows : int
        Windows per clip (45 as in the re-implementation).
    background_per_seizure : float
        Background clips (away from every seizure) per seizure clip.
    recording_share : float
        Share of the training clips drawn at random positions across the whole training
        recordings, labelled per window (half uniform over time, half overlapping a seizure at a
        random offset; :class:`~datamodules.clips.SeizureClipIndex`), so the detection head also
        learns from what it is scored on: consecutive clips tiling whole recordings. 0: onset
        and background clips only (the re-implementation).
    train_repeats : int
        Each seizure seen this many times per epoch (a new draw each time).
    """

    def __init__(self, *args, n_windows: int = 45, background_per_seizure: float = 2.0,
                 recording_share: float = 0.25, window_s: float = 1.0, train_repeats: int = 1, **kwargs):
        super().__init__(*args, window_s=window_s, **kwargs)
        if int(n_windows) < 2:
            raise ValueError(f"n_windows must be at least 2 (a clip spans several windows), got {n_windows!r}")
        if int(train_repeats) < 1:
            raise ValueError(f"train_repeats must be at least 1, got {train_repeats!r}")
        if float(background_per_seizure) < 0:
            raise ValueError(f"background_per_seizure must be >= 0, got {background_per_seizure!r}")
        if not 0.0 <= float(recording_share) < 1.0:
            raise ValueError(f"recording_share must be in [0, 1), got {recording_share!r}")
        self.recording_share = float(recording_share)
        self.n_windows = int(n_windows)
        self.train_repeats = max(1, int(train_repeats))
        self.background_per_seizure = float(background_per_seizure)
        self._clip_index: dict[str, object] = {}

    def model_shape(self, sfreq: float | None = None) -> dict:
        """Signal-shaped arguments for a clip model (SZLoc): ``n_chans``, ``n_windows``,
        ``window_samples``, ``sfreq`` and ``n_times`` (samples per clip)."""
        sf = float(sfreq) if sfreq is not None else float(self.sfreq)
        w = int(round(self.window_s * sf))
        return {"n_chans": len(self.channels), "n_windows": self.n_windows, "window_samples": w,
                "sfreq": sf, "n_times": self.n_windows * w}

    def _index_split(self, name: str, patients, recordings) -> None:
        index = SeizureClipIndex(recordings, n_windows=self.n_windows, window_s=self.window_s,
                                 background_ratio=self.background_per_seizure,
                                 recording_share=self.recording_share, train=name == "train")
        if index.n_seizure_clips == 0 and name != "test":
            raise DatasetError(f"the {name} split ({', '.join(patients)}) has no seizure to build clips around")
        self._clip_index[name] = index
        if name != "train":  # consecutive clips for prediction (threshold tuning, scoring)
            self._clip_index[f"predict_{name}"] = ConsecutiveClipIndex(index.recordings, self.n_windows,
                                                                       self.window_s)

    def _loader(self, split: str, sampler=None, shuffle=False) -> DataLoader:
        ds = ClipDataset(self._clip_index[split], channels=self.montage, min_overlap=self.min_overlap)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")  # seizure clips and spread background clips: already a sample

    def train_dataloader(self) -> DataLoader:
        # seizures are few: each epoch sees every seizure train_repeats times, each time with the
        # onset at a new random window (and new background clips)
        ds = ClipDataset(self._clip_index["train"], channels=self.montage, min_overlap=self.min_overlap)
        if self.train_repeats > 1:
            ds = ConcatDataset([ds] * self.train_repeats)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def predict_dataloader(self, split: str = "test") -> DataLoader:
        """Consecutive clips tiling every recording of ``split`` (default: the held-out patient)."""
        return self._loader(f"predict_{split}")

    def split_recordings(self, split: str):
        return list(self._clip_index[split].recordings)
