"""Section 2: random-access windows per second through a ``torch.utils.data.DataLoader``.

Every dataset serves the same windows (2 s x 18 channels, float32) in random order, batch 256,
with 0 and 2 worker processes: ours (:class:`datamodules.datamodule.WindowDataset` over the HDF5
cache, whole batches through ``__getitems__``) and braindecode's windows dataset, lazy and
preloaded. Sampling is with replacement so a measurement is never cut short by the epoch end.
"""
from __future__ import annotations

import time

from torch.utils.data import DataLoader, Dataset, RandomSampler

from .stats import Measurement


def our_window_dataset(cache_directory: str, window_s: float = 2.0):
    """:class:`WindowDataset` over every cached recording, non-overlapping windows."""
    from pathlib import Path

    from datamodules.cache import list_recordings
    from datamodules.datamodule import WindowDataset
    from datamodules.windows import make_windows

    files = sorted(Path(cache_directory).glob("*.h5"))
    if not files:
        raise FileNotFoundError(f"{cache_directory}: no cache files (*.h5); build the cache first")
    cached = [r for f in files for r in list_recordings(f)]
    return WindowDataset(make_windows(cached, window_s, window_s))


def _first_tensor(batch):
    if isinstance(batch, dict):
        return batch["x"]
    return batch[0]


def loader_throughput(dataset: Dataset, batch_size: int, num_workers: int, repeats: int,
                      min_seconds: float = 2.0, collate_fn=None, seed: int = 0) -> dict:
    """Windows per second served by a DataLoader in random order.

    Each repetition makes a new loader (new worker processes) and first takes one batch
    untimed (worker start-up, file opening), then times batches until ``min_seconds`` pass.
    The window shape of the first batch is reported, to show both sides serve the same thing.
    """
    import torch

    rates, startup, shape = [], [], None
    for rep in range(repeats):
        sampler = RandomSampler(dataset, replacement=True, num_samples=10**9,
                                generator=torch.Generator().manual_seed(seed + rep))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                            collate_fn=collate_fn, persistent_workers=False)
        t0 = time.perf_counter()
        it = iter(loader)
        x = _first_tensor(next(it))
        shape = list(x.shape[1:])
        startup.append(time.perf_counter() - t0)
        n, t1 = 0, time.perf_counter()
        while True:
            x = _first_tensor(next(it))
            n += x.shape[0]
            dt = time.perf_counter() - t1
            if dt >= min_seconds:
                break
        rates.append(n / dt)
        del it, loader  # shuts the workers down before the next repetition
    return {"batch_size": batch_size, "num_workers": num_workers, "window_shape": shape,
            "windows_per_s": Measurement(tuple(rates), "windows/s").to_dict(),
            "first_batch_s": Measurement(tuple(startup), "s").to_dict()}
