"""Montage harmonization: select channels by name, rebuild bipolar pairs, never by position.

A target montage is a list of channels, each a bipolar derivation ``"A-B"`` or a single
electrode ``"A"`` (referential: the electrode against the recording's common reference). A
recording may provide a bipolar derivation directly (``FP1-F7``), reversed (``F7-FP1``, sign
flipped), or through two referential channels (``FP1-REF`` minus ``F7-REF``; CHB-MIT
chb12_27..29 use ``-CS2``); it provides an electrode only through a referential channel of that
electrode (``EEG FP1-REF``, ``FP1-LE``, ``FP1-AVG``, plain ``FP1``): bipolar pairs cannot give
back the potential of one electrode. The result is a derivation matrix ``M`` of shape
(n_target, n_found) so that the harmonized signal is ``M @ x``: one matrix product, whatever
the file's layout.

Named montages (:data:`MONTAGES`, resolved by :func:`montage_channels`): ``double_banana`` (the
18 CHB-MIT derivations, the default) and ``referential_19`` (the 19 electrodes of the 10-20
system, as the SZLoc re-implementation DeepSOZ reads them).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: The 18-channel longitudinal bipolar ("double banana") montage of CHB-MIT.
DOUBLE_BANANA: tuple[str, ...] = (
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1",
    "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
    "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ",
)

#: The 19 electrodes of the 10-20 system, each against the recording's common reference, in the
#: order of the SZLoc re-implementation (DeepSOZ: Fp1 Fp2 F7 F3 Fz F4 F8 T3 C3 Cz C4 T4 T5 P3 Pz
#: P4 T6 O1 O2, here in the modern names T7/T8/P7/P8 for T3/T4/T5/T6).
REFERENTIAL_19: tuple[str, ...] = (
    "FP1", "FP2", "F7", "F3", "FZ", "F4", "F8",
    "T7", "C3", "CZ", "C4", "T8",
    "P7", "P3", "PZ", "P4", "P8", "O1", "O2",
)

#: Montages selectable by name (``data.montage: referential_19``); a list of channels works too.
#: ``chbmit_21`` is the double banana plus the three temporal chain links CHB-MIT records
#: (T7-FT9, FT9-FT10, FT10-T8), the 21 channels of the LightSeizureNet paper's figures;
#: ``chbmit_23`` is every channel of a standard CHB-MIT file, in file order (P7-T7 and the
#: second T8-P8 repeat derivations: a model sees them twice, as the file gives them).
MONTAGES: dict[str, tuple[str, ...]] = {
    "double_banana": DOUBLE_BANANA,
    "chbmit_21": DOUBLE_BANANA + ("T7-FT9", "FT9-FT10", "FT10-T8"),
    "chbmit_23": (),  # filled below, once CHBMIT_23 is defined
    "referential_19": REFERENTIAL_19,
}

#: The 23 labels of a standard CHB-MIT file, in file order (note the duplicated T8-P8).
CHBMIT_23: tuple[str, ...] = (
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
    "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
    "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "T8-P8",
)
MONTAGES["chbmit_23"] = CHBMIT_23

#: Scalp electrodes of the 10-20 system (with the 10-10 extras CHB-MIT uses), canonical spelling.
ELECTRODES: frozenset[str] = frozenset(
    "FP1 FP2 F7 F3 FZ F4 F8 T7 C3 CZ C4 T8 P7 P3 PZ P4 P8 O1 O2 FT9 FT10 FPZ OZ "
    "A1 A2 M1 M2 T9 T10 TP9 TP10 AF3 AF4 FC1 FC2 FC5 FC6 CP1 CP2 CP5 CP6 PO3 PO4 F9 F10".split()
)

#: Old 10-20 names (T3/T4/T5/T6) and common misspellings mapped to canonical names.
_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "01": "O1", "02": "O2",
            "0Z": "OZ", "FPZ": "FPZ"}

#: Labels that are placeholders or not EEG at all: dropped before harmonizing.
_NON_EEG = re.compile(r"^(ECG|EKG|VNS|EMG|EOG|LOC|ROC|RESP|SPO2|PHOTIC|IBI|BURSTS|SUPPR|"
                      r"PULSE|HR|DC\d*|X\d*|STI|EVENT|ANNOTATION)", re.I)

#: Clinician regions mapped to electrode sets (coarse SOZ labels name regions, not electrodes).
REGIONS: dict[str, tuple[str, ...]] = {
    "left frontal": ("FP1", "F3", "F7"),
    "right frontal": ("FP2", "F4", "F8"),
    "left temporal": ("F7", "T7", "P7", "FT9"),
    "right temporal": ("F8", "T8", "P8", "FT10"),
    "left central": ("C3",),
    "right central": ("C4",),
    "left parietal": ("P3", "P7"),
    "right parietal": ("P4", "P8"),
    "left occipital": ("O1",),
    "right occipital": ("O2",),
    "midline": ("FZ", "CZ", "PZ"),
    "frontal": ("FP1", "F3", "F7", "FP2", "F4", "F8", "FZ"),
    "temporal": ("F7", "T7", "P7", "F8", "T8", "P8"),
    "occipital": ("O1", "O2"),
    "left hemisphere": ("FP1", "F7", "T7", "P7", "O1", "F3", "C3", "P3", "FT9"),
    "right hemisphere": ("FP2", "F8", "T8", "P8", "O2", "F4", "C4", "P4", "FT10"),
}


class MontageError(ValueError):
    """A recording cannot provide the target montage (names the missing derivations)."""


def montage_channels(montage: str | Sequence[str]) -> tuple[str, ...]:
    """The channels of a montage given by name (a key of :data:`MONTAGES`) or as a list.

    ``'referential_19'`` -> ``('FP1', 'FP2', ...)``; ``['FP1-F7', 'F7-T7']`` -> the same
    channels as a tuple. Raises :class:`MontageError` for an unknown name, an empty list or an
    entry that is not an EEG channel (``ECG``, ``X1-Y2``).
    """
    if isinstance(montage, str):
        key = montage.strip().lower()
        if key not in MONTAGES:
            raise MontageError(f"unknown montage {montage!r}: use one of {', '.join(MONTAGES)} "
                               f"or a list of channels (bipolar 'FP1-F7' or electrodes 'FP1')")
        return MONTAGES[key]
    channels = tuple(str(c) for c in montage)
    if not channels:
        raise MontageError("a montage must list at least one channel")
    bad = [c for c in channels if not is_eeg_label(c)]
    if bad:
        raise MontageError(f"montage channel(s) {', '.join(map(repr, bad))} are not EEG channels of "
                           f"the 10-20 system (bipolar 'FP1-F7' or electrode 'FP1')")
    return channels


def is_electrode_channel(label: str) -> bool:
    """True for a single-electrode (referential) target channel such as ``'FP1'`` or ``'T3'``."""
    return "-" not in canonical_label(label) and canonical_label(label) in ELECTRODES


def canonical_electrode(name: str) -> str:
    """``'Fp1'`` -> ``'FP1'``, ``'T3'`` -> ``'T7'``, ``'01'`` -> ``'O1'``, ``'EEG C3-REF'`` -> ``'C3-REF'``."""
    n = name.strip().upper()
    n = re.sub(r"^EEG\s+", "", n)
    return _ALIASES.get(n, n)


def canonical_label(label: str) -> str:
    """Canonical spelling of a channel label: each side of ``A-B`` through :func:`canonical_electrode`.

    ``'Fp1-F7'`` -> ``'FP1-F7'``; ``'T3-T5'`` -> ``'T7-P7'``; ``'EEG FP1-REF'`` -> ``'FP1-REF'``.
    """
    parts = [p for p in re.split(r"\s*-\s*", label.strip()) if p != ""]
    if len(parts) == 0:
        return label.strip()
    return "-".join(canonical_electrode(p) for p in parts)


def is_placeholder(label: str) -> bool:
    """Dummy channels CHB-MIT inserts between montages (``-``, ``.``), or an empty label."""
    return label.strip() in {"", "-", ".", "--"}


def is_eeg_label(label: str) -> bool:
    """False for dummies and non-EEG channels (ECG, VNS, EKG1-EKG2, LOC-ROC, FC1-Ref...)."""
    if is_placeholder(label):
        return False
    first = canonical_label(label).split("-")[0]
    if _NON_EEG.match(first):
        return False
    return first in ELECTRODES


def parse_label(label: str) -> tuple[str, str | None] | None:
    """Split a label into (electrode, reference electrode or None for a common reference).

    Returns None when the label is not an EEG derivation.
    ``'FP1-F7'`` -> ``('FP1', 'F7')``; ``'FP1-CS2'`` / ``'FP1-REF'`` / ``'FP1'`` -> ``('FP1', None)``.
    """
    if not is_eeg_label(label):
        return None
    parts = canonical_label(label).split("-")
    a = parts[0]
    b = parts[1] if len(parts) > 1 else None
    if b is not None and b in ELECTRODES:
        return a, b
    return a, None


@dataclass(frozen=True)
class Derivation:
    """How to build a target montage from a file's channels.

    ``matrix`` has shape (n_target, n_found): ``harmonized = matrix @ signals``. ``used`` lists
    the file's channel indices that enter it (read only those).
    """

    target: tuple[str, ...]
    found: tuple[str, ...]
    matrix: np.ndarray
    how: tuple[str, ...]  # per target: "direct", "reversed" or "referential"

    @property
    def used(self) -> np.ndarray:
        return np.flatnonzero(np.any(self.matrix != 0, axis=0))

    def apply(self, signals: np.ndarray) -> np.ndarray:
        """(n_found, T) -> (n_target, T), float32."""
        return (self.matrix.astype(np.float32) @ np.asarray(signals, dtype=np.float32)).astype(np.float32)


def derive(found: tuple[str, ...] | list[str], target: tuple[str, ...] = DOUBLE_BANANA) -> Derivation:
    """Plan the derivation of ``target`` from the channel labels ``found`` (by name only).

    ``target`` holds bipolar pairs (``FP1-F7``) and/or electrodes (``FP1``, from a referential
    channel such as ``EEG FP1-REF``). Dummies, non-EEG channels and later duplicates are ignored.
    Raises :class:`MontageError` naming every target channel that cannot be built.
    """
    return _derive(tuple(found), tuple(target))


@lru_cache(maxsize=256)
def _derive(found: tuple[str, ...], target: tuple[str, ...]) -> Derivation:
    bipolar: dict[tuple[str, str], int] = {}
    referential: dict[str, int] = {}
    for i, label in enumerate(found):
        parsed = parse_label(label)
        if parsed is None:
            continue
        a, b = parsed
        if b is None:
            referential.setdefault(a, i)  # first occurrence wins over duplicates
        else:
            bipolar.setdefault((a, b), i)

    matrix = np.zeros((len(target), len(found)), dtype=np.float64)
    how: list[str] = []
    missing: list[str] = []
    for k, pair in enumerate(target):
        parts = canonical_label(pair).split("-")
        if len(parts) == 1:  # an electrode: only a referential channel of it gives its potential
            if parts[0] in referential:
                matrix[k, referential[parts[0]]] = 1.0
                how.append("direct")
            else:
                missing.append(pair)
                how.append("missing")
            continue
        if len(parts) != 2:
            missing.append(pair)
            how.append("missing")
            continue
        a, b = parts
        if (a, b) in bipolar:
            matrix[k, bipolar[(a, b)]] = 1.0
            how.append("direct")
        elif (b, a) in bipolar:
            matrix[k, bipolar[(b, a)]] = -1.0
            how.append("reversed")
        elif a in referential and b in referential:
            matrix[k, referential[a]] = 1.0
            matrix[k, referential[b]] = -1.0
            how.append("referential")
        else:
            missing.append(pair)
            how.append("missing")
    if missing:
        hint = ""
        if any(is_electrode_channel(m) for m in missing) and not referential:
            hint = ("; electrode channels need referential recordings (e.g. 'EEG FP1-REF', 'FP1-LE'): "
                    "bipolar pairs cannot give the potential of one electrode")
        raise MontageError(
            f"cannot build {len(missing)} of {len(target)} montage channels "
            f"({', '.join(missing)}) from the channels found{hint}"
        )
    return Derivation(tuple(target), found, matrix, tuple(how))


def channel_electrodes(label: str) -> tuple[str, ...]:
    """Electrodes a channel touches: ``'FP1-F7'`` -> ``('FP1', 'F7')``."""
    parsed = parse_label(label)
    if parsed is None:
        return ()
    return tuple(e for e in parsed if e is not None)


def soz_channel_mask(channels: tuple[str, ...] | list[str], soz_electrodes) -> np.ndarray:
    """1 for each channel in the seizure onset zone: a bipolar channel is in the zone when either
    of its electrodes is; 0 otherwise. ``soz_electrodes`` may hold electrodes or region names."""
    zone = expand_soz(soz_electrodes)
    return np.array([float(any(e in zone for e in channel_electrodes(c))) for c in channels],
                    dtype=np.float32)


def expand_soz(soz) -> frozenset[str]:
    """Electrodes (canonical) of an SOZ given as electrodes and/or region names."""
    out: set[str] = set()
    for item in soz or ():
        key = item.strip().lower()
        if key in REGIONS:
            out.update(REGIONS[key])
        else:
            out.add(canonical_electrode(item))
    return frozenset(out)
