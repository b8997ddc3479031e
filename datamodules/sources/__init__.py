"""Dataset sources: a dataset folder in, a :class:`~datamodules.recording.Recording` index out.

One module per on-disk format; each exposes ``LAYOUT``, ``detect(root) -> bool`` and a reader
``(root, *, issues) -> list[Recording]`` that reads EDF headers and annotations, never samples.
Adding a format is one module and one line in :data:`LAYOUTS`.

:func:`scan` detects the layout, attaches seizure onset zones from ``<root>/soz.tsv``, checks
that each recording can provide the target montage, and sorts by patient and recording.

Problem policy: nothing found while indexing crashes the index except annotations that cannot be
trusted (a seizure count that disagrees with the seizures listed, a malformed ``soz.tsv``),
because those would silently change the labels. An unreadable or corrupt EDF stays in the index
with no channels, zero duration and a warning naming the file, so its annotated seizures
remain visible; :func:`montage_problem` then reports it as unusable, and downstream code
(cache, windows) skips every recording for which ``montage_problem`` is not None.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources import bids, chbmit
from datamodules.sources.soz import SOZ_FILENAME, read_soz_tsv
from eeg.montage import DOUBLE_BANANA, MontageError, derive

log = logging.getLogger(__name__)

#: Layout name -> (detect(root) -> bool, reader(root, *, issues) -> list[Recording]).
LAYOUTS = {
    chbmit.LAYOUT: (chbmit.detect, chbmit.read_chbmit),
    bids.LAYOUT: (bids.detect, bids.read_bids),
}


@dataclass(frozen=True)
class DatasetIndex:
    """The recordings of one dataset root and the problems found that belong to no recording.

    Attributes
    ----------
    root : str
        The dataset root (absolute).
    layout : str
        A key of :data:`LAYOUTS` (``"chbmit"`` or ``"bids"``).
    recordings : tuple of Recording
        Sorted by patient, then recording id.
    warnings : tuple of str
        Dataset-level problems (a summary entry whose EDF is missing, a ``soz.tsv`` row for an
        unknown patient...), each naming the file.
    """

    root: str
    layout: str
    recordings: tuple[Recording, ...]
    warnings: tuple[str, ...] = ()

    @property
    def patients(self) -> tuple[str, ...]:
        return tuple(sorted({r.patient for r in self.recordings}))

    def to_dict(self) -> dict:
        """The JSON object ``python -m datamodules inspect --json`` prints."""
        return {
            "root": self.root,
            "layout": self.layout,
            "recordings": [r.to_dict() for r in self.recordings],
            "warnings": list(self.warnings),
        }


def detect_layout(root: str | os.PathLike) -> str:
    """Name of the layout at ``root``; DatasetError (one sentence) when there is none."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset root {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a directory")
    found = [name for name, (detect, _) in LAYOUTS.items() if detect(root)]
    if not found:
        raise DatasetError(
            f"{root} holds no recognizable dataset (expected CHB-MIT chbNN/chbNN-summary.txt "
            "or SzCORE BIDS sub-*/[ses-*/]eeg/*_eeg.edf)"
        )
    if len(found) > 1:
        raise DatasetError(f"{root} holds more than one dataset layout ({', '.join(found)}); point at one")
    return found[0]


def montage_problem(recording: Recording, target: tuple[str, ...] = DOUBLE_BANANA) -> str | None:
    """Why ``recording`` cannot provide the ``target`` montage, or None when it can.

    Uses :func:`eeg.montage.derive` on the channel names found in the EDF header.
    """
    if not recording.channels:
        return f"{recording.path}: no channels could be read from the EDF header; recording unusable"
    try:
        derive(recording.channels, target)
    except MontageError as e:
        return f"{recording.path}: {e}; recording unusable for this montage"
    return None


def _attach_soz(recordings: list[Recording], soz_path: Path, issues: list[str]) -> list[Recording]:
    rows = read_soz_tsv(soz_path)
    out = []
    used: set[str] = set()
    for r in recordings:
        # chb21's recordings carry patient chb01, so chb01's row applies to them.
        key = r.patient if r.patient in rows else r.subject if r.subject in rows else None
        if key is None:
            out.append(r)
            continue
        used.add(key)
        electrodes, region = rows[key]
        out.append(r.with_(soz=electrodes, soz_region=region))
    unknown = sorted(set(rows) - used)
    if unknown:
        issues.append(f"{soz_path}: rows for patients not in the dataset: {', '.join(unknown)}")
    return out


def scan(root: str | os.PathLike, target: tuple[str, ...] = DOUBLE_BANANA) -> DatasetIndex:
    """Index a dataset root.

    Parameters
    ----------
    root : path-like
        A CHB-MIT download or a SzCORE BIDS root (an optional ``soz.tsv`` beside them).
    target : tuple of str
        Montage each recording is checked against (its problem goes into the recording's
        warnings; see :func:`montage_problem`).

    Returns
    -------
    DatasetIndex

    Raises
    ------
    DatasetError
        A root that does not exist or holds no recognizable dataset; annotations that cannot be
        trusted (see the module docstring).
    """
    root = Path(root).expanduser()
    layout = detect_layout(root)
    root = root.resolve()
    issues: list[str] = []
    recordings = LAYOUTS[layout][1](root, issues=issues)
    if (root / SOZ_FILENAME).is_file():
        recordings = _attach_soz(recordings, root / SOZ_FILENAME, issues)
    checked = []
    for r in recordings:
        problem = montage_problem(r, target)
        checked.append(r.with_(warnings=r.warnings + (problem,)) if problem else r)
    checked.sort(key=lambda r: (r.patient, r.recording_id))
    return DatasetIndex(str(root), layout, tuple(checked), tuple(issues))


def discover(root: str | os.PathLike) -> list[Recording]:
    """The recordings of a dataset root, sorted by patient and recording (see :func:`scan`).

    Dataset-level warnings, which belong to no recording, are logged.
    """
    index = scan(root)
    for w in index.warnings:
        log.warning(w)
    return list(index.recordings)


__all__ = ["LAYOUTS", "DatasetIndex", "detect_layout", "discover", "montage_problem", "scan"]
