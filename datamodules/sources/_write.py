"""What the dataset writers share: the EEG of a recording read back, re-labelled in a layout's
own channel naming, and written as a new EDF (or copied when it can stay as it is).

Layouts name channels differently: TUSZ ``EEG FP1-REF`` (referential, old temporal names),
Siena ``EEG Fp1``, SeizeIT ``Fp1``, CHB-MIT and SzCORE BIDS of CHB-MIT bipolar ``FP1-F7``.
A bipolar recording (CHB-MIT, the synthetic corpus) has no referential channels to write in a
referential layout; :func:`referential` rebuilds them against the average of each connected
group of electrodes (a virtual reference). Every bipolar derivation of the source is then
recovered (``(A - m) - (B - m) = A - B``), which is all the montage code needs, and the file
looks like the layout's own files. The potentials are the least-squares solution over every
bipolar channel: exact when the channels agree with each other (up to their quantization);
where they cannot (a channel clipped at its physical range breaks the sums around a loop such
as FP1-F7-T7-P7-O1 / FP1-F3-C3-P3-O1), no referential file can hold them all and the fit
spreads the disagreement over the loop.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from pathlib import Path

import numpy as np

from datamodules.edf import read_edf_header, read_edf_signals, write_edf
from datamodules.recording import DatasetError, Recording
from eeg.montage import parse_label

#: Electrode order of the files written (the usual 10-20 listing); others follow, sorted.
ORDER = ("FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8", "P7", "P8",
         "FZ", "CZ", "PZ", "A1", "A2", "FT9", "FT10")
#: Old 10-20 names that TUSZ, Siena and SeizeIT files use for the temporal electrodes.
OLD_NAMES = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}


def mixed_case(electrode: str) -> str:
    """``FP1`` -> ``Fp1``, ``FZ`` -> ``Fz``, ``T7`` -> ``T3`` (the spelling of Siena and SeizeIT files)."""
    e = OLD_NAMES.get(electrode, electrode)
    return e[0] + e[1:].lower() if len(e) > 1 and e[1].isalpha() else e


def seconds_text(x: float) -> str:
    """Seconds as short exact text: ``12.0`` -> ``12``, ``3.25`` -> ``3.25`` (microsecond precision)."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def label_of(patient: str) -> str:
    """An alphanumeric label for a patient id (BIDS labels allow nothing else)."""
    label = re.sub(r"[^A-Za-z0-9]", "", patient)
    if not label:
        raise DatasetError(f"patient id {patient!r} has no letter or digit to name it by")
    return label


def eeg_channels(rec: Recording) -> list[int]:
    """Indices of the recording's usable EEG channels at its sampling rate (dummies, non-EEG,
    unusable and duplicate channels left out)."""
    h = read_edf_header(rec.path)
    seen: set[tuple[str, str | None]] = set()
    out = []
    for i, label in enumerate(h.labels):
        parsed = parse_label(label)
        if parsed is None or i in rec.bad_channels or abs(h.sfreqs[i] - rec.sfreq) > 1e-9 or parsed in seen:
            continue
        seen.add(parsed)
        out.append(i)
    if not out:
        raise DatasetError(f"{rec.path}: no usable EEG channel at {rec.sfreq:g} Hz to write")
    return out


def read_eeg(rec: Recording) -> tuple[np.ndarray, list[str], float]:
    """(signals in uV, labels, record duration) of the recording's EEG channels (its part of an
    EDF+D file when it is one)."""
    h = read_edf_header(rec.path)
    idx = eeg_channels(rec)
    spr = h.samples_per_record[idx[0]]
    first, stop = rec.records if rec.records is not None else (0, h.n_records)
    x = read_edf_signals(rec.path, idx, first * spr, stop * spr, header=h)
    return x, [h.labels[i] for i in idx], h.record_duration_s


def referential(labels: list[str], x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Referential signals (canonical electrode names) from any mix of bipolar and referential
    channels: per connected group of electrodes, each against the group's average.

    Referential channels (``FP1-REF``, ``Fp1``) share one reference and form one group;
    bipolar channels join their two electrodes. The potentials within a group are solved in
    the least-squares sense (exact when the channels are consistent), then the group mean is
    removed: any bipolar derivation inside a group comes back unchanged.
    """
    REF = "\0ref"
    edges: list[tuple[str, str, int]] = []
    for k, label in enumerate(labels):
        parsed = parse_label(label)
        if parsed is None:
            continue
        a, b = parsed
        edges.append((a, b if b is not None else REF, k))
    nodes = sorted({n for a, b, _ in edges for n in (a, b)})
    parent = {n: n for n in nodes}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b, _ in edges:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    names: list[str] = []
    rows: list[np.ndarray] = []
    for members in groups.values():
        electrodes = [m for m in members if m != REF]
        if len(electrodes) < 2 and REF not in members:
            continue
        cols = {m: j for j, m in enumerate(members)}
        group_edges = [(a, b, k) for a, b, k in edges if a in cols]
        # incidence matrix: channel k = V_a - V_b; V_REF fixed at 0 (referential channels) or
        # the potentials fixed up to a constant (bipolar only): lstsq gives the minimum-norm one
        a_mat = np.zeros((len(group_edges), len(members)))
        for r, (a, b, _) in enumerate(group_edges):
            a_mat[r, cols[a]] += 1.0
            a_mat[r, cols[b]] -= 1.0
        solve = np.linalg.pinv(a_mat)  # (members, edges)
        potentials = solve @ x[[k for _, _, k in group_edges]].astype(np.float64)
        if REF in cols:
            potentials = potentials - potentials[cols[REF]]
        keep = [cols[e] for e in electrodes]
        v = potentials[keep]
        v = v - v.mean(axis=0, keepdims=True) if REF not in cols else v
        names += electrodes
        rows.append(v)
    if not names:
        raise DatasetError("no EEG electrode to write")
    x_ref = np.concatenate(rows).astype(np.float32)
    order = sorted(range(len(names)), key=lambda i: (ORDER.index(names[i]) if names[i] in ORDER else len(ORDER),
                                                     names[i]))
    return [names[i] for i in order], x_ref[order]


def start_of(rec: Recording) -> _dt.datetime | None:
    if not rec.meas_date:
        return None
    try:
        start = _dt.datetime.fromisoformat(rec.meas_date)
    except ValueError:
        return None
    return start + _dt.timedelta(seconds=rec.start_s)


def write_recording(rec: Recording, out: str | os.PathLike, style: str) -> float:
    """Write the EEG of ``rec`` to ``out`` in a layout's channel ``style``; returns its duration.

    ``style``: ``"as_found"`` copies the file when the recording is the whole file (else writes
    its channels with their labels), ``"tusz"`` ``EEG FP1-REF``, ``"siena"`` ``EEG Fp1``,
    ``"seizeit"`` ``Fp1``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if style == "as_found" and rec.records is None and not rec.bad_channels:
        shutil.copyfile(rec.path, out)
        return rec.duration_s
    x, labels, record_s = read_eeg(rec)
    if style != "as_found":
        electrodes, x = referential(labels, x)
        labels = {
            "tusz": [f"EEG {OLD_NAMES.get(e, e)}-REF" for e in electrodes],
            "siena": [f"EEG {mixed_case(e)}" for e in electrodes],
            "seizeit": [mixed_case(e) for e in electrodes],
        }[style]
    spr = rec.sfreq * record_s
    if abs(spr - round(spr)) > 1e-9:
        record_s = 1.0  # the source's records do not hold whole samples at this rate
    n = x.shape[1] - x.shape[1] % int(round(rec.sfreq * record_s))
    write_edf(out, x[:, :n], rec.sfreq, labels, start=start_of(rec), record_duration_s=record_s)
    return n / rec.sfreq
