"""Dataset sources: a dataset folder in, a :class:`~datamodules.recording.Recording` index out.

One module per on-disk format; each exposes ``LAYOUT``, ``detect(root) -> bool`` and a reader
``(root, *, issues) -> list[Recording]`` that reads EDF headers and annotations, never samples.
Adding a format is one module and one line in :data:`LAYOUTS`.

:func:`scan` detects the layout, attaches seizure onset zones from ``<root>/soz.tsv``, checks
that each recording can provide the target montage, and sorts by patient and recording.

Problem policy: nothing found while indexing crashes the index except annotations that cannot be
trusted (a seizure count that disagrees with the seizures listed, a malformed ``soz.tsv``, an
event type outside the vocabulary), because those would silently change the labels. An
unreadable or corrupt EDF stays in the index with no channels, zero duration and a warning
naming the file, so its annotated seizures remain visible; :func:`montage_problem` then reports
it as unusable (with the real cause: an empty file, no data records, a channel with no usable
scale), and downstream code (cache, windows) skips every recording for which
``montage_problem`` is not None. :func:`discover` leaves out, with a warning, the patients none
of whose recordings is usable, so a study does not fail on them.

Discontinuous EDF+ files (EDF+D) are split here, for every layout, into their continuous
parts (``<recording_id>-part1``...): each part is a :class:`Recording` of its own data records
(``records``, ``start_s``) whose seizure times are relative to the part, so nothing after a
gap is shifted in time.

Writers: :data:`WRITERS` maps a layout to ``write(recordings, out) -> {patient: new name}``
(``python -m datamodules convert``, :mod:`datamodules.convert`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from datamodules.recording import DatasetError, Recording
from datamodules.sources import bids, chbmit, seizeit, siena, tusz
from datamodules.sources.soz import SOZ_FILENAME, read_soz_tsv
from eeg.montage import DOUBLE_BANANA, MontageError, derive

log = logging.getLogger(__name__)

#: Layout name -> (detect(root) -> bool, reader(root, *, issues) -> list[Recording]).
LAYOUTS = {
    chbmit.LAYOUT: (chbmit.detect, chbmit.read_chbmit),
    bids.LAYOUT: (bids.detect, bids.read_bids),
    tusz.LAYOUT: (tusz.detect, tusz.read_tusz),
    siena.LAYOUT: (siena.detect, siena.read_siena),
    seizeit.LAYOUT: (seizeit.detect, seizeit.read_seizeit),
}

#: Layout name -> writer(recordings, out) -> {source patient: name in the new layout}.
WRITERS = {
    bids.LAYOUT: bids.write_bids,
    tusz.LAYOUT: tusz.write_tusz,
    siena.LAYOUT: siena.write_siena,
    seizeit.LAYOUT: seizeit.write_seizeit,
}

#: What each layout looks like on disk, for the message when a root matches none.
LAYOUT_HINTS = {
    chbmit.LAYOUT: "CHB-MIT chbNN/chbNN-summary.txt",
    bids.LAYOUT: "SzCORE BIDS sub-*/[ses-*/]eeg/*_eeg.edf",
    tusz.LAYOUT: "TUSZ [edf/]{train,dev,eval}/<subject>/<session>/<NN_tcp_*>/*.edf",
    siena.LAYOUT: "Siena PNxx/Seizures-list-PNxx.txt",
    seizeit.LAYOUT: "SeizeIT P_IDxx/P_IDxx_rK.edf",
}


@dataclass(frozen=True)
class DatasetIndex:
    """The recordings of one dataset root and the problems found that belong to no recording.

    Attributes
    ----------
    root : str
        The dataset root (absolute).
    layout : str
        A key of :data:`LAYOUTS` (``"chbmit"``, ``"bids"``, ``"tusz"``, ``"siena"``, ``"seizeit"``).
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
            f"{root} holds no recognizable dataset (expected {'; '.join(LAYOUT_HINTS.values())})"
        )
    if len(found) > 1:
        raise DatasetError(f"{root} holds more than one dataset layout ({', '.join(found)}); point at one")
    return found[0]


def montage_problem(recording: Recording, target: tuple[str, ...] = DOUBLE_BANANA) -> str | None:
    """Why ``recording`` cannot provide the ``target`` montage, or None when it can.

    Uses :func:`eeg.montage.derive` on the channel names found in the EDF header, without the
    channels whose samples cannot be used (``recording.bad_channels``).
    """
    if not recording.channels:
        cause = next((w.split("unreadable EDF: ", 1)[1] for w in recording.warnings if "unreadable EDF: " in w), None)
        if cause:
            return f"{cause}; recording unusable"
        return f"{recording.path}: no channels could be read from the EDF header; recording unusable"
    if recording.duration_s <= 0:
        return f"{recording.path}: the file holds no data records (0 s of signal); recording unusable"
    try:
        derive(usable_labels(recording), target)
    except MontageError as e:
        if recording.bad_channels:
            left_out = ", ".join(repr(recording.channels[i]) for i in recording.bad_channels)
            return (f"{recording.path}: {e} once channel(s) {left_out} (no usable samples) are left out; "
                    "recording unusable for this montage")
        return f"{recording.path}: {e}; recording unusable for this montage"
    return None


def usable_labels(recording: Recording) -> tuple[str, ...]:
    """The recording's channel labels with its unusable channels blanked (so :func:`derive`
    builds the montage without them, from other channels where it can)."""
    bad = set(recording.bad_channels)
    return tuple("-" if i in bad else lab for i, lab in enumerate(recording.channels))


def _is_discontinuous(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fixed = fh.read(256)
    except OSError:
        return False
    return len(fixed) == 256 and fixed[192:197] == b"EDF+D"


def split_discontinuous(recording: Recording) -> list[Recording]:
    """An EDF+D recording as its continuous parts (a plain or EDF+C one as it is).

    Each part covers its own data records; seizure times move to the part's timeline. A
    seizure that crosses a gap is cut at the gap, one inside a gap (no signal there) is
    dropped: both with a warning naming the file and the seizure.
    """
    from datamodules.edf import continuous_parts, read_edf_annotations, read_edf_header

    if not recording.channels or not _is_discontinuous(recording.path):
        return [recording]
    try:
        h = read_edf_header(recording.path)
        parts = continuous_parts(h, read_edf_annotations(recording.path, h).record_onsets)
    except DatasetError as e:
        return [recording.with_(channels=(), duration_s=0.0,
                                warnings=recording.warnings + (f"unreadable EDF: {e}",))]
    if not parts:
        return [recording]
    notes: list[str] = []
    out = []
    placed = [False] * recording.n_seizures
    for k, part in enumerate(parts, start=1):
        lo, hi = part.onset_s, part.onset_s + part.duration_s
        seizures, types = [], []
        for i, (a, b) in enumerate(recording.seizures):
            if b <= lo or a >= hi:
                continue
            placed[i] = True
            if a < lo or b > hi:
                notes.append(f"{recording.path}: seizure {a:g}-{b:g} s crosses a gap of the EDF+D file; "
                             f"part {k} keeps {max(a, lo):g}-{min(b, hi):g} s")
            seizures.append((max(a, lo) - lo, min(b, hi) - lo))
            types.append(recording.seizure_type(i))
        rid = recording.recording_id if len(parts) == 1 else f"{recording.recording_id}-part{k}"
        out.append(recording.with_(recording_id=rid, duration_s=part.duration_s, seizures=tuple(seizures),
                                   seizure_types=tuple(types), records=(part.first, part.stop), start_s=lo))
    for i, (a, b) in enumerate(recording.seizures):
        if not placed[i]:
            notes.append(f"{recording.path}: seizure {a:g}-{b:g} s falls in a gap of the EDF+D file (no signal); "
                         "it is in no part")
    summary = (f"{recording.path}: discontinuous EDF+ (EDF+D) with {len(parts)} continuous part(s); "
               "records placed at their own onsets")
    return [r.with_(warnings=recording.warnings + (summary, *notes)) for r in out]


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
    recordings = [part for r in LAYOUTS[layout][1](root, issues=issues) for part in split_discontinuous(r)]
    if (root / SOZ_FILENAME).is_file():
        recordings = _attach_soz(recordings, root / SOZ_FILENAME, issues)
    checked = []
    for r in recordings:
        problem = montage_problem(r, target)
        checked.append(r.with_(warnings=r.warnings + (problem,)) if problem else r)
    checked.sort(key=lambda r: (r.patient, r.recording_id))
    return DatasetIndex(str(root), layout, tuple(checked), tuple(issues))


def discover(root: str | os.PathLike, target: tuple[str, ...] = DOUBLE_BANANA) -> list[Recording]:
    """The recordings of a dataset root, sorted by patient and recording (see :func:`scan`).

    Dataset-level warnings, which belong to no recording, are logged. Patients with no usable
    recording (none annotated and able to give the ``target`` montage) are left out, each with
    a warning naming the patient and why: a study cannot train, validate or test on them, and
    keeping them would fail every fold that draws them.
    """
    index = scan(root, target)
    for w in index.warnings:
        log.warning(w)
    usable, reasons = usable_patients(index.recordings, target)
    for patient in sorted(set(reasons) - set(usable)):
        log.warning("patient %s has no usable recording, excluded from the study: %s",
                    patient, "; ".join(reasons[patient][:3]) + (" ..." if len(reasons[patient]) > 3 else ""))
    return [r for r in index.recordings if r.patient in usable]


def usable_patients(recordings, target: tuple[str, ...] = DOUBLE_BANANA) -> tuple[set[str], dict[str, list[str]]]:
    """Patients with at least one annotated recording that can give ``target``, and per patient
    the reasons its other recordings cannot."""
    usable: set[str] = set()
    reasons: dict[str, list[str]] = {}
    for r in recordings:
        problem = montage_problem(r, target) if r.annotated else f"{r.path}: not annotated"
        if problem is None:
            usable.add(r.patient)
        else:
            reasons.setdefault(r.patient, []).append(problem)
    return usable, reasons


__all__ = ["LAYOUTS", "WRITERS", "DatasetIndex", "detect_layout", "discover", "montage_problem", "scan",
           "split_discontinuous", "usable_labels", "usable_patients"]
