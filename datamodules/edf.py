"""EDF / EDF+ reading: the header (metadata, no samples) and samples as microvolts.

Indexing a dataset reads hundreds of headers and the cache build reads every sample once, so
both paths are written for speed: the header is parsed from its fixed-width bytes (one
``read`` of ``256 * (ns + 1)`` bytes), and samples are read as one contiguous block of
int16 data records with numpy and scaled per channel in place. MNE reads the same files
(and the tests check that both agree), but it parses the whole file's metadata and
converts to volts in float64, which costs far more for what the cache needs.

EDF format reference: Kemp et al. (1992), "A simple format for exchange of digitized polygraphic
recordings", Electroencephalogr. Clin. Neurophysiol. 82:391-393; EDF+: Kemp & Olivan (2003),
Clin. Neurophysiol. 114:1755-1761 (https://www.edfplus.info/specs/).
"""
from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass

import numpy as np

from datamodules.recording import DatasetError

#: Label of the EDF+ annotation signal (time-stamped annotation lists, not a channel).
ANNOTATION_LABEL = "EDF Annotations"

#: Physical dimensions understood as voltages, and their factor to microvolts.
_TO_MICROVOLT = {"uv": 1.0, "\u00b5v": 1.0, "\u03bcv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

# Fixed widths of the per-signal header fields, in file order (EDF spec, section 2).
_SIGNAL_FIELDS = (
    ("label", 16), ("transducer", 80), ("unit", 8), ("physical_min", 8), ("physical_max", 8),
    ("digital_min", 8), ("digital_max", 8), ("prefiltering", 80), ("samples_per_record", 8),
    ("reserved", 32),
)


@dataclass(frozen=True)
class EdfHeader:
    """What an EDF header says about a file; the signal fields skip EDF+ annotation signals.

    Attributes
    ----------
    path : str
        The file.
    file_type : str
        ``"EDF"``, ``"EDF+C"`` (continuous EDF+) or ``"EDF+D"`` (discontinuous EDF+).
    patient_field, recording_field : str
        The local patient and recording identification fields (80 characters, stripped).
    start : datetime.datetime or None
        Start date and time (None when the header's date or time is not valid).
    header_bytes : int
        Size of the header; data records start at this offset.
    n_records : int
        Number of data records used (derived from the file size when the header says -1 or
        disagrees with the file size; see ``warnings``).
    record_duration_s : float
        Duration of one data record in seconds.
    labels : tuple of str
        Signal labels as in the file (stripped), EDF+ annotation signals excluded.
    transducers, units, prefiltering : tuple of str
        Per-signal text fields, stripped.
    physical_min, physical_max : tuple of float
    digital_min, digital_max : tuple of int
    samples_per_record : tuple of int
    sfreqs : tuple of float
        Sampling rate of each signal, ``samples_per_record / record_duration_s``.
    record_offsets : tuple of int
        Offset (in int16 samples) of each signal inside a data record.
    record_samples : int
        Samples in one data record over all signals (annotation signals included).
    annotation_signals : int
        Number of EDF+ annotation signals skipped.
    annotation_layout : tuple of (int, int)
        ``(offset, samples)`` of each annotation signal inside a data record (int16 units), for
        :func:`read_edf_annotations`.
    warnings : tuple of str
        Problems that did not stop parsing (each names the file).
    """

    path: str
    file_type: str
    patient_field: str
    recording_field: str
    start: _dt.datetime | None
    header_bytes: int
    n_records: int
    record_duration_s: float
    labels: tuple[str, ...]
    transducers: tuple[str, ...]
    units: tuple[str, ...]
    physical_min: tuple[float, ...]
    physical_max: tuple[float, ...]
    digital_min: tuple[int, ...]
    digital_max: tuple[int, ...]
    prefiltering: tuple[str, ...]
    samples_per_record: tuple[int, ...]
    sfreqs: tuple[float, ...]
    record_offsets: tuple[int, ...]
    record_samples: int
    annotation_signals: int = 0
    warnings: tuple[str, ...] = ()
    annotation_layout: tuple[tuple[int, int], ...] = ()

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    @property
    def duration_s(self) -> float:
        """Recorded duration: number of data records times their duration."""
        return self.n_records * self.record_duration_s

    def n_samples(self, channel: int) -> int:
        """Samples of one channel over the whole file."""
        return self.n_records * self.samples_per_record[channel]

    def microvolt_scale(self, channel: int) -> tuple[float, float]:
        """``(gain, offset)`` such that ``microvolts = gain * digital + offset``.

        Raises DatasetError (naming the file and channel) for a non-voltage unit, an empty
        digital range, or a physical range that gives no usable scale: equal minimum and
        maximum (every sample would be the same value, a flat channel) or a range so wide that
        the gain or the scaled samples are not finite in float32 (``+/-1e308`` would cache NaN).
        """
        label = self.labels[channel]
        unit = self.units[channel]
        factor = _TO_MICROVOLT.get(unit.lower()) if unit else 1.0  # empty unit: assume uV (warned)
        if factor is None:
            raise DatasetError(
                f"{self.path}: channel {label!r} has unit {unit!r}, not a voltage (uV, mV or V)"
            )
        dmin, dmax = self.digital_min[channel], self.digital_max[channel]
        if dmax <= dmin:
            raise DatasetError(
                f"{self.path}: channel {label!r} has digital range [{dmin}, {dmax}]; "
                "its samples cannot be scaled"
            )
        pmin, pmax = self.physical_min[channel], self.physical_max[channel]
        if pmax == pmin:
            raise DatasetError(
                f"{self.path}: channel {label!r} has physical minimum = maximum = {pmin:g}; every "
                "sample would scale to that value (a flat channel)"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            gain = (pmax - pmin) / (dmax - dmin) * factor
            offset = (pmin - dmin * (pmax - pmin) / (dmax - dmin)) * factor
            extremes = np.array([gain * dmin + offset, gain * dmax + offset], dtype=np.float64)
        limit = float(np.finfo(np.float32).max) / 1e3  # headroom for filtering in float32
        if (not (math.isfinite(gain) and math.isfinite(offset)) or gain == 0
                or not np.all(np.abs(extremes) < limit)):
            raise DatasetError(
                f"{self.path}: channel {label!r} has physical range [{pmin:g}, {pmax:g}] {unit or 'uV'}, "
                "which gives no finite scale (samples would be NaN or infinite)"
            )
        return gain, offset

    def channel_problem(self, channel: int) -> str | None:
        """Why samples of ``channel`` cannot be turned into microvolts, or None when they can."""
        try:
            self.microvolt_scale(channel)
        except DatasetError as e:
            return str(e)
        return None


def _number(raw: bytes, what: str, path: str, kind=float):
    text = raw.decode("ascii", errors="replace").strip()
    try:
        # Some writers put "256." or "1.0" in integer fields; accept whole-valued decimals.
        value = float(text)
        if not math.isfinite(value):
            raise ValueError
        if kind is int:
            if value != int(value):
                raise ValueError
            return int(value)
        return value
    except (ValueError, OverflowError):
        raise DatasetError(f"{path}: corrupt EDF header: {what} is {text!r}, not a number") from None


def _text(raw: bytes) -> str:
    """A header text field. The EDF standard allows ASCII only, but writers put UTF-8 there
    (``µV``, ``Référence``): read it as UTF-8 when it is valid UTF-8 (latin-1 would turn ``µV``
    into ``Âµv`` and the unit would be refused), else as latin-1 (``\xb5V`` of older writers)."""
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        # a multi-byte character cut by the fixed field width: keep the valid part
        if e.start >= len(raw.rstrip()) - 3 and e.reason == "unexpected end of data":
            return raw[:e.start].decode("utf-8").strip()
        return raw.decode("latin-1").strip()


def _start(date: str, time: str) -> _dt.datetime | None:
    """``dd.mm.yy`` + ``hh.mm.ss``; years 85-99 are 19xx, 00-84 are 20xx (EDF spec)."""
    try:
        d, m, y = (int(x) for x in date.split("."))
        hh, mm, ss = (int(x) for x in time.replace(":", ".").split("."))
        return _dt.datetime(1900 + y if y >= 85 else 2000 + y, m, d, hh, mm, ss)
    except ValueError:
        return None


def read_edf_header(path: str | os.PathLike) -> EdfHeader:
    """Parse the header of an EDF or EDF+ file without reading any sample.

    Parameters
    ----------
    path : path-like
        The EDF file.

    Returns
    -------
    EdfHeader
        With EDF+ ``EDF Annotations`` signals left out of the channel fields.

    Raises
    ------
    DatasetError
        For a missing file, a truncated or corrupt header, or a BDF (24-bit) file; the message
        names the file and the problem.
    """
    path = str(path)
    try:
        with open(path, "rb") as f:
            fixed = f.read(256)
            if not fixed:
                raise DatasetError(f"{path}: empty file (0 bytes), not an EDF recording")
            if len(fixed) < 256:
                raise DatasetError(
                    f"{path}: truncated EDF header ({len(fixed)} bytes, the fixed part needs 256)"
                )
            if fixed[:1] == b"\xff":
                raise DatasetError(f"{path}: BDF (24-bit) file; only 16-bit EDF is supported")
            if fixed[:8].strip() != b"0":
                raise DatasetError(
                    f"{path}: not an EDF file (version field {fixed[:8]!r}, expected '0')"
                )
            ns = _number(fixed[252:256], "the number of signals", path, int)
            if ns <= 0:
                raise DatasetError(f"{path}: corrupt EDF header: {ns} signals")
            signal_bytes = f.read(256 * ns)
            file_size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, not an EDF file") from None
    except PermissionError:
        raise DatasetError(f"{path}: permission denied") from None
    if len(signal_bytes) < 256 * ns:
        raise DatasetError(
            f"{path}: truncated EDF header (the file has {256 + len(signal_bytes)} bytes, "
            f"the header of {ns} signals needs {256 * (ns + 1)})"
        )

    warnings: list[str] = []
    text = fixed.decode("latin-1")
    reserved = text[192:236].strip()
    file_type = "EDF+D" if reserved.startswith("EDF+D") else "EDF+C" if reserved.startswith("EDF+C") else "EDF"
    start = _start(text[168:176].strip(), text[176:184].strip())
    if start is None:
        warnings.append(f"{path}: invalid start date/time {text[168:184]!r}; start unknown")
    header_bytes = 256 * (ns + 1)
    declared_header = _number(fixed[184:192], "the header size", path, int)
    if declared_header != header_bytes:
        warnings.append(
            f"{path}: header size field says {declared_header} bytes, {ns} signals need "
            f"{header_bytes}; using {header_bytes}"
        )
    n_records_declared = _number(fixed[236:244], "the number of data records", path, int)
    record_duration = _number(fixed[244:252], "the data record duration", path, float)

    fields: dict[str, list[bytes]] = {}
    pos = 0
    for name, width in _SIGNAL_FIELDS:
        fields[name] = [signal_bytes[pos + i * width: pos + (i + 1) * width] for i in range(ns)]
        pos += width * ns
    labels_all = [_text(b) for b in fields["label"]]
    spr_all = [
        _number(b, f"samples per record of signal {i + 1} ({labels_all[i]!r})", path, int)
        for i, b in enumerate(fields["samples_per_record"])
    ]
    if any(s < 0 for s in spr_all):
        raise DatasetError(f"{path}: corrupt EDF header: negative samples per record")
    record_samples = sum(spr_all)
    if record_samples == 0:
        raise DatasetError(f"{path}: corrupt EDF header: data records hold no samples")

    # The data block decides how many whole records exist; the header may say -1 (recording
    # not closed properly) or disagree with the file (copy cut short).
    data_bytes = file_size - header_bytes
    record_bytes = 2 * record_samples
    n_on_disk = max(data_bytes, 0) // record_bytes
    if n_records_declared < 0:
        n_records = n_on_disk
        warnings.append(
            f"{path}: header gives {n_records_declared} data records; "
            f"using {n_records} from the file size"
        )
    elif n_on_disk < n_records_declared:
        n_records = n_on_disk
        warnings.append(
            f"{path}: header declares {n_records_declared} data records but the file holds "
            f"{n_records} (truncated); using {n_records}"
        )
    else:
        n_records = n_records_declared
        extra = data_bytes - n_records * record_bytes
        if extra:
            warnings.append(f"{path}: {extra} bytes after the last data record ignored")
    if n_records == 0:
        warnings.append(f"{path}: the file holds no data records (0 s of signal)")
    if n_records and record_duration <= 0:
        raise DatasetError(
            f"{path}: data record duration is {record_duration} s; sampling rates are undefined"
        )

    keep = [i for i, lab in enumerate(labels_all) if lab != ANNOTATION_LABEL]
    if file_type.startswith("EDF+") and len(keep) == ns:
        warnings.append(f"{path}: {file_type} file without an 'EDF Annotations' signal")
    offsets = np.concatenate([[0], np.cumsum(spr_all)[:-1]]).astype(int)

    def strs(name):
        return tuple(_text(fields[name][i]) for i in keep)

    def nums(name, kind):
        return tuple(
            _number(fields[name][i], f"{name.replace('_', ' ')} of {labels_all[i]!r}", path, kind)
            for i in keep
        )

    units = strs("unit")
    labels = tuple(labels_all[i] for i in keep)
    for lab, unit in zip(labels, units):
        if not unit:
            warnings.append(f"{path}: channel {lab!r} has no unit; assuming uV")
    digital_min, digital_max = nums("digital_min", int), nums("digital_max", int)
    for lab, lo, hi in zip(labels, digital_min, digital_max):
        if hi <= lo:
            warnings.append(f"{path}: channel {lab!r} has digital range [{lo}, {hi}]; unreadable")
    spr = tuple(spr_all[i] for i in keep)
    return EdfHeader(
        path=path,
        file_type=file_type,
        patient_field=_text(fixed[8:88]),
        recording_field=_text(fixed[88:168]),
        start=start,
        header_bytes=header_bytes,
        n_records=int(n_records),
        record_duration_s=float(record_duration),
        labels=labels,
        transducers=strs("transducer"),
        units=units,
        physical_min=nums("physical_min", float),
        physical_max=nums("physical_max", float),
        digital_min=digital_min,
        digital_max=digital_max,
        prefiltering=strs("prefiltering"),
        samples_per_record=spr,
        sfreqs=tuple(s / record_duration if record_duration > 0 else 0.0 for s in spr),
        record_offsets=tuple(int(offsets[i]) for i in keep),
        record_samples=int(record_samples),
        annotation_signals=ns - len(keep),
        warnings=tuple(warnings),
        annotation_layout=tuple((int(offsets[i]), int(spr_all[i])) for i in range(ns) if i not in keep),
    )


def read_edf_signals(
    path: str | os.PathLike,
    channel_indices,
    start_sample: int = 0,
    stop_sample: int | None = None,
    *,
    header: EdfHeader | None = None,
) -> np.ndarray:
    """Read channels of one sampling rate as float32 microvolts.

    Parameters
    ----------
    path : path-like
        The EDF file.
    channel_indices : sequence of int
        Indices into ``header.labels`` (annotation signals excluded), in the order wanted; all
        must share one sampling rate.
    start_sample, stop_sample : int
        Half-open sample range at that rate; ``stop_sample=None`` reads to the end.
    header : EdfHeader, optional
        The file's header when already parsed (saves re-reading it).

    Returns
    -------
    numpy.ndarray
        Shape (n_channels, stop_sample - start_sample), float32, in microvolts
        (``uV``, ``mV``, ``V`` and ``nV`` are converted; an empty unit is taken as ``uV``).

    Raises
    ------
    DatasetError
        For channels of different sampling rates, an out-of-range channel or sample range, a
        non-voltage unit, or a file shorter than its header says.
    """
    h = header if header is not None else read_edf_header(path)
    path = str(path)
    idx = [int(i) for i in np.atleast_1d(np.asarray(channel_indices, dtype=np.int64))]
    bad = [i for i in idx if not 0 <= i < h.n_channels]
    if bad:
        raise DatasetError(f"{path}: channel indices {bad} out of range (the file has {h.n_channels})")
    if not idx:
        raise DatasetError(f"{path}: no channels requested")
    rates = sorted({h.samples_per_record[i] for i in idx})
    if len(rates) > 1:
        detail = ", ".join(f"{h.labels[i]!r}: {h.sfreqs[i]:g} Hz" for i in idx)
        raise DatasetError(f"{path}: requested channels have different sampling rates ({detail})")
    spr = rates[0]
    total = h.n_records * spr
    stop = total if stop_sample is None else int(stop_sample)
    start = int(start_sample)
    if not 0 <= start <= stop <= total:
        raise DatasetError(
            f"{path}: sample range [{start}, {stop}) outside the recording's {total} samples"
        )
    scales = [h.microvolt_scale(i) for i in idx]
    if stop == start or spr == 0:
        return np.zeros((len(idx), stop - start), dtype=np.float32)

    first, last = start // spr, -(-stop // spr)  # records covering the range
    n_rec = last - first
    count = n_rec * h.record_samples
    raw = np.fromfile(path, dtype="<i2", count=count,
                      offset=h.header_bytes + 2 * first * h.record_samples)
    if raw.size < count:
        raise DatasetError(
            f"{path}: file ends early: records {first}..{last - 1} need {2 * count} bytes, "
            f"found {2 * raw.size}"
        )
    records = raw.reshape(n_rec, h.record_samples)
    out = np.empty((len(idx), n_rec * spr), dtype=np.float32)
    for k, (i, (gain, offset)) in enumerate(zip(idx, scales)):
        o = h.record_offsets[i]
        # One strided view per channel, scaled straight into the output: no int16 copies.
        dest = out[k].reshape(n_rec, spr)
        np.multiply(records[:, o:o + spr], np.float32(gain), out=dest, casting="unsafe")
        dest += np.float32(offset)
    lo = start - first * spr
    if lo == 0 and lo + (stop - start) == out.shape[1]:
        return out
    return np.ascontiguousarray(out[:, lo:lo + stop - start])


@dataclass(frozen=True)
class EdfAnnotation:
    """One EDF+ annotation (a TAL entry): onset and duration in seconds from the file start."""

    onset_s: float
    duration_s: float | None
    text: str


@dataclass(frozen=True)
class EdfAnnotations:
    """What the ``EDF Annotations`` signals of an EDF+ file hold.

    Attributes
    ----------
    record_onsets : numpy.ndarray
        Onset of each data record in seconds from the file start (the time-keeping TAL that
        opens each record; in EDF+C they follow each other, in EDF+D there may be gaps).
    events : tuple of EdfAnnotation
        Every annotation with a text, in file order.
    """

    record_onsets: np.ndarray
    events: tuple[EdfAnnotation, ...]


def _tal_number(text: str, path: str, record: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{path}: data record {record}: EDF+ annotation time {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"{path}: data record {record}: EDF+ annotation time {text!r} is not finite")
    return value


def read_edf_annotations(path: str | os.PathLike, header: EdfHeader | None = None) -> EdfAnnotations:
    """Read the EDF+ annotation signals: each data record's onset and the annotations.

    Only the annotation bytes of each record are touched (a memory map of the data records).
    A plain EDF file has records back to back from 0 and no annotations.

    Raises
    ------
    DatasetError
        Naming the file and data record: a record without its time-keeping annotation, a time
        that is not a number, records whose onsets go backwards or overlap.
    """
    h = header if header is not None else read_edf_header(path)
    path = str(path)
    if not h.annotation_layout or h.n_records == 0:
        return EdfAnnotations(np.arange(h.n_records) * h.record_duration_s, ())
    data = np.memmap(path, dtype="<i2", mode="r", offset=h.header_bytes,
                     shape=(h.n_records, h.record_samples))
    onsets = np.empty(h.n_records, dtype=np.float64)
    events: list[EdfAnnotation] = []
    for k in range(h.n_records):
        keeping = None
        for offset, n in h.annotation_layout:
            raw = data[k, offset:offset + n].tobytes()
            for tal in raw.split(b"\x00"):
                if not tal.strip(b"\x00"):
                    continue
                parts = tal.split(b"\x14")
                stamp = parts[0].decode("latin-1")
                onset_text, _, duration_text = stamp.partition("\x15")
                onset = _tal_number(onset_text, path, k)
                duration = _tal_number(duration_text, path, k) if duration_text else None
                texts = [_text(t) for t in parts[1:] if t.strip()]
                if keeping is None and not texts:
                    keeping = onset  # the record's time-keeping TAL: "+onset\x14\x14"
                    continue
                if keeping is None:
                    keeping = onset
                events.extend(EdfAnnotation(onset, duration, t) for t in texts)
        if keeping is None:
            raise DatasetError(f"{path}: data record {k} has no EDF+ time-keeping annotation (no onset)")
        onsets[k] = keeping
    del data
    step = np.diff(onsets)
    if np.any(step < h.record_duration_s - 1e-6):
        k = int(np.flatnonzero(step < h.record_duration_s - 1e-6)[0])
        raise DatasetError(
            f"{path}: EDF+ data record {k + 1} starts at {onsets[k + 1]:g} s, before record {k} "
            f"({onsets[k]:g} s + {h.record_duration_s:g} s) ends; records out of order or overlapping"
        )
    return EdfAnnotations(onsets, tuple(events))


@dataclass(frozen=True)
class ContinuousPart:
    """A run of data records with no gap between them: records ``[first, stop)`` starting at
    ``onset_s`` seconds from the file start."""

    first: int
    stop: int
    onset_s: float
    record_duration_s: float

    @property
    def duration_s(self) -> float:
        return (self.stop - self.first) * self.record_duration_s


def continuous_parts(header: EdfHeader, record_onsets: np.ndarray) -> list[ContinuousPart]:
    """Split a file's data records where one does not start when the previous one ends.

    A gap shorter than half a sample of the fastest signal is not a gap (rounding of the
    onsets written as text).
    """
    n = header.n_records
    if n == 0:
        return []
    fastest = max(header.sfreqs) if header.sfreqs else 1.0
    tolerance = 0.5 / fastest if fastest > 0 else 1e-6
    breaks = np.flatnonzero(np.abs(np.diff(record_onsets) - header.record_duration_s) > tolerance) + 1
    bounds = [0, *breaks.tolist(), n]
    return [ContinuousPart(a, b, float(record_onsets[a]), header.record_duration_s)
            for a, b in zip(bounds, bounds[1:])]


def _tal_bytes(onset: float, duration: float | None, texts) -> bytes:
    stamp = f"{onset:+.6f}".rstrip("0").rstrip(".")
    if duration is not None:
        stamp += "\x15" + f"{duration:.6f}".rstrip("0").rstrip(".")
    return (stamp + "\x14" + "".join(f"{t}\x14" for t in texts)).encode("utf-8") + b"\x00"


def write_edf(
    path: str | os.PathLike,
    signals_uv: np.ndarray,
    sfreq: float,
    labels,
    *,
    start: _dt.datetime | None = None,
    record_duration_s: float = 1.0,
    physical_range: tuple[float, float] | None = None,
    patient_field: str = "X X X X",
    recording_field: str = "Startdate X X X X",
    annotations=None,
    record_onsets=None,
) -> None:
    """Write a 16-bit EDF (or EDF+) file, every signal at one rate, in ``uV``.

    Used by tests, the synthetic corpus and ``python -m datamodules convert``; labels are
    written verbatim (duplicates and placeholders such as ``-`` allowed, as CHB-MIT files have
    them).

    Parameters
    ----------
    path : path-like
        Output file.
    signals_uv : numpy.ndarray
        (n_channels, n_samples) in microvolts; ``n_samples`` must fill whole data records.
    sfreq : float
        Sampling rate in Hz; ``sfreq * record_duration_s`` must be an integer.
    labels : sequence of str
        One label (at most 16 characters) per channel.
    start : datetime.datetime, optional
        Start date and time (default 2000-01-01 00:00:00).
    record_duration_s : float
        Duration of one data record.
    physical_range : (float, float), optional
        Physical minimum and maximum for every channel; default: the data's, widened by 1 uV.
    annotations : sequence of (onset_s, duration_s or None, text), optional
        EDF+ annotations; with them (or ``record_onsets``) the file is EDF+ with an
        ``EDF Annotations`` signal.
    record_onsets : sequence of float, optional
        Onset of each data record from the file start; when they leave gaps the file is
        written as discontinuous EDF+ (EDF+D).
    """
    x = np.asarray(signals_uv, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise ValueError(f"signals of shape {x.shape} do not match {len(labels)} labels")
    spr = sfreq * record_duration_s
    if abs(spr - round(spr)) > 1e-9 or round(spr) <= 0:
        raise ValueError(f"sfreq * record_duration_s = {spr} is not a positive integer")
    spr = int(round(spr))
    if x.shape[1] % spr:
        raise ValueError(f"{x.shape[1]} samples do not fill whole records of {spr}")
    if any(len(lab.encode("utf-8")) > 16 for lab in labels):
        raise ValueError("EDF labels are at most 16 characters")
    n_rec = x.shape[1] // spr
    plus = annotations is not None or record_onsets is not None
    onsets = (np.arange(n_rec) * float(record_duration_s) if record_onsets is None
              else np.asarray(record_onsets, dtype=np.float64))
    if onsets.shape != (n_rec,):
        raise ValueError(f"{len(onsets)} record onsets for {n_rec} data records")
    discontinuous = bool(np.any(np.abs(np.diff(onsets) - record_duration_s) > 1e-9))
    ns = len(labels) + (1 if plus else 0)

    def field(value, width):
        s = str(value).encode("utf-8") if not isinstance(value, bytes) else value
        if len(s) > width:
            raise ValueError(f"EDF header field {value!r} longer than {width} characters")
        return s.ljust(width)

    def num(v, width=8):
        if isinstance(v, int):
            return field(str(v), width)
        for decimals in range(width - 1, -1, -1):  # the most precise fixed-point text that fits
            s = f"{v:.{decimals}f}"
            if len(s) <= width:
                return field(s.rstrip("0").rstrip(".") if "." in s else s, width)
        raise ValueError(f"{v} does not fit an EDF header field of {width} characters")

    if physical_range:
        pmin, pmax = physical_range
    else:
        pmin, pmax = (float(x.min()) - 1.0, float(x.max()) + 1.0) if x.size else (-1.0, 1.0)
    # Scale with the values as the header text stores them, so a reader recovers the data.
    pmin, pmax = (float(num(float(v)).decode()) for v in (pmin, pmax))
    if pmax <= pmin:
        raise ValueError(f"physical range [{pmin}, {pmax}] is empty")
    dmin, dmax = -32768, 32767
    digital = np.clip(np.round((x - pmin) / (pmax - pmin) * (dmax - dmin) + dmin), dmin, dmax)
    start = start or _dt.datetime(2000, 1, 1)

    tal_records: list[bytes] = []
    ann_spr = 0
    if plus:
        per_record: list[list[bytes]] = [[] for _ in range(n_rec)]
        for k, (onset, duration, text) in enumerate(annotations or ()):
            per_record[k % max(n_rec, 1)].append(_tal_bytes(float(onset), duration, [text])
                                                 if n_rec else b"")
        tal_records = [_tal_bytes(float(onsets[k]), None, [""]) + b"".join(per_record[k])
                       for k in range(n_rec)]
        ann_spr = max([len(t) for t in tal_records] + [32])
        ann_spr = (ann_spr + 1) // 2

    reserved = ("EDF+D" if discontinuous else "EDF+C") if plus else ""
    head = b"".join([
        field("0", 8), field(patient_field, 80), field(recording_field, 80),
        field(start.strftime("%d.%m.%y"), 8), field(start.strftime("%H.%M.%S"), 8),
        num(256 * (ns + 1)), field(reserved, 44), num(n_rec), num(float(record_duration_s)), num(ns, 4),
    ])
    n_eeg = len(labels)
    extra = 1 if plus else 0
    per_signal = [
        [field(lab, 16) for lab in labels] + [field(ANNOTATION_LABEL, 16)] * extra,
        [field("", 80)] * ns,
        [field("uV", 8)] * n_eeg + [field("", 8)] * extra,
        [num(float(pmin))] * n_eeg + [num(-1)] * extra,
        [num(float(pmax))] * n_eeg + [num(1)] * extra,
        [num(dmin)] * ns,
        [num(dmax)] * ns,
        [field("", 80)] * ns,
        [num(spr)] * n_eeg + [num(ann_spr)] * extra,
        [field("", 32)] * ns,
    ]
    data = digital.astype("<i2").reshape(n_eeg, n_rec, spr).transpose(1, 0, 2)
    with open(path, "wb") as f:
        f.write(head)
        f.write(b"".join(b"".join(col) for col in per_signal))
        if not plus:
            f.write(np.ascontiguousarray(data).tobytes())
            return
        for k in range(n_rec):
            f.write(np.ascontiguousarray(data[k]).tobytes())
            f.write(tal_records[k].ljust(2 * ann_spr, b"\x00"))
