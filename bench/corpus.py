"""The benchmark corpus: synthetic CHB-MIT-shaped recordings, generated once under ``bench/work``.

Both sides of every comparison read the same EDF files (23 channels as CHB-MIT stores them,
256 Hz). Larger corpora for the scale section are the same recordings listed several times
under new patient and recording ids: the work per recording is identical, so the cost can only
grow with the amount of data, which is what the scale section is meant to show; and no extra
gigabytes of EDF need generating. Files are read once before timing so every build starts from a
warm page cache (a cold cache would time the disk, not the code).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording


@dataclass(frozen=True)
class BenchCorpus:
    """Recordings the benchmark runs on.

    Attributes
    ----------
    root : str
        Dataset folder (CHB-MIT layout).
    recordings : tuple of Recording
        One entry per EDF file (after :func:`replicate`, files may appear several times).
    """

    root: str
    recordings: tuple[Recording, ...]

    @property
    def hours(self) -> float:
        return sum(r.duration_s for r in self.recordings) / 3600.0

    @property
    def edf_bytes(self) -> int:
        return sum(os.path.getsize(r.path) for r in self.recordings)

    @property
    def n_file_channels(self) -> int:
        return len(self.recordings[0].channels)

    @property
    def sfreq(self) -> float:
        return float(self.recordings[0].sfreq)

    def describe(self) -> dict:
        return {"root": self.root, "n_recordings": len(self.recordings),
                "n_distinct_files": len({r.path for r in self.recordings}),
                "hours": self.hours, "edf_mb": self.edf_bytes / 1e6,
                "n_file_channels": self.n_file_channels, "sfreq": self.sfreq}


def corpus_shape(hours: float, recording_minutes: float) -> tuple[int, int, float]:
    """(n_patients, recordings per patient, minutes per recording) giving about ``hours``.

    One recording per patient, ``recording_minutes`` long (CHB-MIT files are mostly 1 h); a
    corpus shorter than one recording is one shorter recording.
    """
    if hours <= 0 or recording_minutes <= 0:
        raise ValueError(f"corpus needs positive hours and recording minutes, got {hours}, {recording_minutes}")
    total_min = hours * 60.0
    if total_min <= recording_minutes:
        return 1, 1, total_min
    return int(math.ceil(total_min / recording_minutes - 1e-9)), 1, float(recording_minutes)


def ensure_corpus(work: str | os.PathLike, hours: float, recording_minutes: float = 60.0,
                  seed: int = 0) -> BenchCorpus:
    """Generate (once) and index the synthetic corpus of about ``hours`` under ``work``.

    Uses :func:`datamodules.synthetic.generate_corpus` (which reuses a corpus built with the same
    parameters) and :func:`datamodules.sources.discover`, the code every experiment uses.
    Recording lengths vary around ``recording_minutes`` (the generator draws them), so the
    corpus is about ``hours`` long; its measured length is what the results report.
    """
    from datamodules.sources import discover
    from datamodules.synthetic import generate_corpus

    n_patients, n_recordings, minutes = corpus_shape(hours, recording_minutes)
    root = Path(work) / f"corpus_p{n_patients}_r{n_recordings}_m{minutes:g}_s{seed}"
    root.parent.mkdir(parents=True, exist_ok=True)
    generate_corpus(root, n_patients=n_patients, n_recordings=n_recordings, minutes=minutes, seed=seed)
    recordings = tuple(r for r in discover(root) if r.annotated)
    if not recordings:
        raise DatasetError(f"{root}: the synthetic corpus has no annotated recordings")
    rates = {r.sfreq for r in recordings}
    if len(rates) != 1:
        raise DatasetError(f"{root}: recordings at several sampling rates {sorted(rates)}; the benchmark "
                           "compares one rate")
    return BenchCorpus(str(root), recordings)


def replicate(corpus: BenchCorpus, factor: int) -> BenchCorpus:
    """The corpus ``factor`` times: copy ``k`` of patient ``p`` becomes patient ``p-x{k}``."""
    if factor < 1:
        raise ValueError(f"replication factor must be >= 1, got {factor}")
    if factor == 1:
        return corpus
    recs = tuple(r.with_(patient=f"{r.patient}-x{k}", subject=f"{r.subject or r.patient}-x{k}",
                         recording_id=f"{r.recording_id}-x{k}")
                 for k in range(factor) for r in corpus.recordings)
    return BenchCorpus(corpus.root, recs)


def warm_page_cache(corpus: BenchCorpus, chunk: int = 1 << 22) -> None:
    """Read every file once so timings start from the page cache, not the disk."""
    for path in sorted({r.path for r in corpus.recordings}):
        with open(path, "rb") as fh:
            while fh.read(chunk):
                pass
