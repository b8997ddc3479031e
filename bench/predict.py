"""Section 4, end to end: seizure probabilities for whole EDF recordings, timed as one path.

read the EDF (:func:`datamodules.edf.read_edf_signals`, only the channels the montage needs) ->
harmonize to the double banana (:func:`eeg.montage.derive`) -> band-pass and resample
(:func:`datamodules.preprocessing.preprocess`) -> non-overlapping windows (views, no copy) ->
model in batches under ``torch.inference_mode``. The same steps the cache and the DataModule
take, without writing the cache: what scoring a new recording costs.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from datamodules.edf import read_edf_signals
from datamodules.preprocessing import PreprocessingConfig, preprocess
from datamodules.recording import Recording
from eeg.montage import DOUBLE_BANANA, derive

from .stats import Measurement


def predict_recording(model: nn.Module, rec: Recording, cfg: PreprocessingConfig = PreprocessingConfig(),
                      window_s: float = 2.0, batch_size: int = 256,
                      montage: tuple[str, ...] = DOUBLE_BANANA) -> np.ndarray:
    """Seizure probability of every non-overlapping ``window_s`` window of ``rec``.

    Parameters
    ----------
    model : nn.Module
        A window classifier taking (B, n_chans, n_times) microvolts, returning (B, 2) logits
        (softmax) or (B, 1) / (B,) logits (sigmoid).
    rec : Recording
        The EDF file and its channel labels.

    Returns
    -------
    numpy.ndarray
        (n_windows,) float32 probabilities; a trailing partial window is not scored.
    """
    d = derive(rec.channels, montage)
    used = d.used
    raw = read_edf_signals(rec.path, [int(i) for i in used])
    x, sfreq = preprocess(d.matrix[:, used].astype(np.float32) @ raw, rec.sfreq, cfg)
    n_times = int(round(window_s * sfreq))
    n_win = x.shape[1] // n_times
    # (C, n_win * T) -> (n_win, C, T) as a strided view: no copy of the recording
    windows = torch.from_numpy(x[:, :n_win * n_times]).unflatten(1, (n_win, n_times)).transpose(0, 1)
    out = np.empty(n_win, dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for s in range(0, n_win, batch_size):
            logits = model(windows[s:s + batch_size].contiguous())
            if logits.ndim == 2 and logits.shape[1] == 2:
                p = logits.softmax(dim=1)[:, 1]
            else:
                p = torch.sigmoid(logits.reshape(-1))
            out[s:s + len(p)] = p.numpy()
    return out


def predict_throughput(model: nn.Module, recordings, repeats: int,
                       cfg: PreprocessingConfig = PreprocessingConfig(), window_s: float = 2.0,
                       batch_size: int = 256) -> dict:
    """Real-time factor of :func:`predict_recording` over ``recordings`` (seconds of EEG per
    second of wall time), each repetition scoring every recording once."""
    recordings = list(recordings)
    eeg_s = sum(r.duration_s for r in recordings)
    predict_recording(model, recordings[0], cfg, window_s, batch_size)  # warm-up
    factors, windows = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        windows = sum(len(predict_recording(model, r, cfg, window_s, batch_size)) for r in recordings)
        factors.append(eeg_s / (time.perf_counter() - t0))
    return {"eeg_hours": eeg_s / 3600, "n_windows": windows,
            "realtime_factor": Measurement(tuple(factors), "x").to_dict(),
            "eeg_hours_per_s": Measurement(tuple(f / 3600 for f in factors), "h/s").to_dict()}
