"""Helpers shared by the dataset sources: EDF header facts, annotation text files and sanity
checks."""
from __future__ import annotations

import codecs
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from datamodules.edf import EdfHeader, read_edf_header
from datamodules.recording import DatasetError
from eeg.montage import is_eeg_label

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: str | os.PathLike, what: str = "annotation file") -> str:
    """The text of an annotation file, whatever encoding the dataset's tools wrote it in.

    A byte-order mark decides (UTF-8, UTF-16 or UTF-32, as Windows editors save "Unicode"
    files); without one, UTF-8 is tried first (it fails loudly on other 8-bit text), then
    latin-1 for the 8-bit files of older tools. Text that holds NUL bytes without a byte-order
    mark (UTF-16 saved without one) is refused rather than parsed into garbage lines, which
    would lose every seizure of the file without a word.

    Raises
    ------
    DatasetError
        One sentence naming the file: unreadable, or UTF-16/32 without a byte-order mark.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise DatasetError(f"{path}: {what} starts with a {encoding} byte-order mark but is not "
                                   f"valid {encoding} (byte {e.start})") from None
    if b"\x00" in data:
        raise DatasetError(
            f"{path}: {what} holds NUL bytes (UTF-16 or UTF-32 text without a byte-order mark, "
            "or not text at all); save it as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


@dataclass(frozen=True)
class HeaderFacts:
    """What a Recording takes from an EDF header (zeros and a warning when unreadable)."""

    header: EdfHeader | None
    channels: tuple[str, ...]
    duration_s: float
    sfreq: float
    meas_date: str | None
    warnings: tuple[str, ...]
    bad_channels: tuple[int, ...] = ()


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
    bad = []
    for i, label in enumerate(h.labels):
        if is_eeg_label(label) and (problem := h.channel_problem(i)) is not None:
            bad.append(i)
            warnings.append(problem)
    return HeaderFacts(h, h.labels, h.duration_s, sfreq, h.start.isoformat() if h.start else None,
                       tuple(warnings), tuple(bad))


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


_STARTS = ("start", "onset", "begin")
_ENDS = ("end", "offset", "stop")


def _edf_event_kind(text: str) -> str | None:
    """``"bckg"``, a BIDS-score seizure type, or None for an annotation that is not a label."""
    from datamodules.sources.vocabulary import EVENT_TYPES

    by_lower = {t.lower(): t for t in EVENT_TYPES}
    t = text.strip().lower()
    if t in by_lower:
        return by_lower[t]
    head = t.split()[0] if t.split() else ""
    if head.startswith("seiz") or head in ("sz", "sz:"):
        return "sz"
    return None


def edf_plus_labels(path: Path, header: EdfHeader | None):
    """Seizure labels kept in an EDF+ file's annotation signal, for datasets that keep them there.

    Annotations whose text is a BIDS-score type (``sz``, ``sz_foc_ia``, ``bckg``) or starts with
    ``seiz``/``sz`` are labels; one with a duration is a seizure, one without must be a start
    (``seizure start``, ``sz onset``) followed by an end (``seizure end``). Other annotations
    (``eyes closed``...) are ignored.

    Returns
    -------
    (seizures, types, note) or None
        None when the file has no label there (no annotation signal, or none of its
        annotations is a label).

    Raises
    ------
    DatasetError
        A seizure annotation with no duration and no matching end, naming the file and time.
    """
    from datamodules.edf import read_edf_annotations

    if header is None or not header.annotation_layout or header.n_records == 0:
        return None
    events = read_edf_annotations(path, header).events
    labelled = False
    seizures: list[tuple[float, float]] = []
    types: list[str] = []
    open_at: tuple[float, str] | None = None
    for e in events:
        kind = _edf_event_kind(e.text)
        if kind is None:
            continue
        labelled = True
        if kind == "bckg":
            continue
        words = e.text.lower().split()
        if e.duration_s is not None and e.duration_s > 0:
            seizures.append((e.onset_s, e.onset_s + e.duration_s))
            types.append(kind)
        elif any(w in _ENDS for w in words[1:]):
            if open_at is None:
                raise DatasetError(f"{path}: EDF+ annotation {e.text!r} at {e.onset_s:g} s ends a seizure "
                                   "that never started")
            seizures.append((open_at[0], e.onset_s))
            types.append(open_at[1])
            open_at = None
        elif any(w in _STARTS for w in words[1:]) and open_at is None:
            open_at = (e.onset_s, kind)
        else:
            raise DatasetError(f"{path}: EDF+ seizure annotation {e.text!r} at {e.onset_s:g} s has no "
                               "duration and no matching end")
    if open_at is not None:
        raise DatasetError(f"{path}: EDF+ seizure annotation at {open_at[0]:g} s has no end")
    if not labelled:
        return None
    return (tuple(seizures), tuple(types),
            f"{path}: labels read from the EDF+ annotation signal ({len(seizures)} seizure(s))")
