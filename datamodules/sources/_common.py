"""Helpers shared by the dataset sources: EDF header facts and annotation sanity checks."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from datamodules.edf import EdfHeader, read_edf_header
from datamodules.recording import DatasetError
from eeg.montage import is_eeg_label


@dataclass(frozen=True)
class HeaderFacts:
    """What a Recording takes from an EDF header (zeros and a warning when unreadable)."""

    header: EdfHeader | None
    channels: tuple[str, ...]
    duration_s: float
    sfreq: float
    meas_date: str | None
    warnings: tuple[str, ...]


def header_facts(path: Path) -> HeaderFacts:
    """Read an EDF header for indexing; an unreadable file becomes a warning, never a crash.

    The recording is kept in the index (with no channels) so that its annotated seizures stay
    visible and :func:`datamodules.sources.montage_problem` reports it as unusable.
    """
    try:
        h = read_edf_header(path)
    except DatasetError as e:
        return HeaderFacts(None, (), 0.0, 0.0, None, (f"unreadable EDF: {e}",))
    sfreq, note = eeg_sfreq(h)
    warnings = list(h.warnings) + ([note] if note else [])
    return HeaderFacts(h, h.labels, h.duration_s, sfreq, h.start.isoformat() if h.start else None,
                       tuple(warnings))


def eeg_sfreq(h: EdfHeader) -> tuple[float, str | None]:
    """Sampling rate of the EEG channels (the most common one, with a warning when they differ).

    Files with no recognizable EEG label fall back to the most common rate over all signals.
    """
    rates = [r for lab, r in zip(h.labels, h.sfreqs) if is_eeg_label(lab)] or list(h.sfreqs)
    if not rates:
        return 0.0, f"{h.path}: no signals"
    counts = Counter(rates).most_common()
    sfreq = counts[0][0]
    if len(counts) > 1:
        detail = ", ".join(f"{n} at {r:g} Hz" for r, n in counts)
        return sfreq, f"{h.path}: EEG channels at several sampling rates ({detail}); using {sfreq:g} Hz"
    return sfreq, None


def seizure_warnings(path: str, seizures, duration_s: float, readable: bool) -> list[str]:
    """Warnings for seizures past the end of the file and overlapping seizures (kept as given)."""
    out: list[str] = []
    if readable:
        late = [(a, b) for a, b in seizures if b > duration_s + 1e-6]
        if late:
            spans = ", ".join(f"{a:g}-{b:g} s" for a, b in late)
            out.append(f"{path}: seizure(s) {spans} end after the recording's {duration_s:g} s")
    ordered = sorted(seizures)
    for (a0, b0), (a1, b1) in zip(ordered, ordered[1:]):
        if a1 < b0:
            out.append(f"{path}: seizures {a0:g}-{b0:g} s and {a1:g}-{b1:g} s overlap")
    return out
