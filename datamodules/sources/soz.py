"""Seizure onset zones from ``<dataset root>/soz.tsv``.

No public scalp-EEG corpus ships onset zones in one format, so users write them from clinical
notes (and the synthetic generator writes its ground truth) in one small table::

    patient	electrodes	region
    chb01	T7,P7,F7	left temporal
    sub-03		right frontal

``electrodes`` is a comma-separated list of 10-20 names (old names such as T3 are mapped to
T7); ``region`` is optional free text. A row with no electrodes must name one of the regions
in :data:`eeg.montage.REGIONS`, whose electrodes then stand for the zone (the coarse
labels SZLoc trains against, Craley et al., MIDL 2022).
"""
from __future__ import annotations

import os
from pathlib import Path

from datamodules.recording import DatasetError
from eeg.montage import ELECTRODES, REGIONS, canonical_electrode

#: File name of the onset-zone table at a dataset root.
SOZ_FILENAME = "soz.tsv"
HEADER = ("patient", "electrodes", "region")
_EMPTY = {"", "n/a", "na", "none"}

SozRows = dict[str, tuple[tuple[str, ...], "str | None"]]


def _electrodes(text: str, where: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(",")] if text.strip().lower() not in _EMPTY else []
    out: list[str] = []
    for name in names:
        if not name:
            raise DatasetError(f"{where}: empty electrode name in {text!r}")
        canon = canonical_electrode(name)
        if canon not in ELECTRODES:
            raise DatasetError(f"{where}: {name!r} is not a 10-20 electrode name")
        if canon not in out:
            out.append(canon)
    return tuple(out)


def read_soz_tsv(path: str | os.PathLike) -> SozRows:
    """Read an onset-zone table.

    Parameters
    ----------
    path : path-like
        A ``soz.tsv`` file (tab-separated, header ``patient electrodes region``; the region
        column may be left out).

    Returns
    -------
    dict
        ``{patient: (electrodes, region)}``: canonical electrode names (a region's electrodes
        when the row lists none) and the region text or None.

    Raises
    ------
    DatasetError
        Naming the file and line: a wrong header, a row with the wrong number of fields, an
        unknown electrode, a row with neither electrodes nor a known region, a patient twice.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read onset-zone table ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    rows: SozRows = {}
    first_line: dict[str, int] = {}
    header: tuple[str, ...] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        where = f"{path}, line {number}"
        if header is None:
            header = tuple(c.lower() for c in cells)
            if header not in (HEADER, HEADER[:2]):
                raise DatasetError(
                    f"{where}: header is {cells}, expected tab-separated 'patient electrodes region'"
                )
            continue
        if len(cells) > len(header) or len(cells) < 1:
            raise DatasetError(f"{where}: {len(cells)} tab-separated fields, expected {len(header)}")
        cells += [""] * (len(header) - len(cells))
        patient, electrodes_text = cells[0], cells[1]
        region = cells[2] if len(cells) > 2 and cells[2].lower() not in _EMPTY else None
        if not patient:
            raise DatasetError(f"{where}: empty patient")
        if patient in rows:
            raise DatasetError(f"{where}: patient {patient!r} already given on line {first_line[patient]}")
        electrodes = _electrodes(electrodes_text, where)
        if not electrodes:
            if region is None:
                raise DatasetError(f"{where}: patient {patient!r} has neither electrodes nor a region")
            if region.lower() not in REGIONS:
                raise DatasetError(
                    f"{where}: region {region!r} with no electrodes; name electrodes or use one of "
                    f"{', '.join(sorted(REGIONS))}"
                )
            electrodes = REGIONS[region.lower()]
        rows[patient] = (electrodes, region)
        first_line[patient] = number
    if header is None:
        raise DatasetError(f"{path}: empty onset-zone table (no header line)")
    return rows


def write_soz_tsv(path: str | os.PathLike, rows) -> None:
    """Write an onset-zone table that :func:`read_soz_tsv` reads back.

    Parameters
    ----------
    path : path-like
        Output ``soz.tsv``.
    rows : mapping
        ``{patient: (electrodes, region)}``; electrodes a sequence of 10-20 names (written
        canonical), region a string or None. Rows are written sorted by patient.

    Raises
    ------
    ValueError
        For an unknown electrode, a row with neither electrodes nor a known region, or a tab
        or newline inside a field.
    """
    out = ["\t".join(HEADER)]
    for patient in sorted(rows):
        electrodes, region = rows[patient]
        fields = [str(patient), *map(str, electrodes), str(region or "")]
        if any(ch in f for f in fields for ch in "\t\r\n"):
            raise ValueError(f"onset zone of {patient!r}: fields must not contain tabs or newlines")
        try:
            canon = _electrodes(",".join(electrodes), f"onset zone of {patient!r}")
        except DatasetError as e:
            raise ValueError(str(e)) from None
        if not canon and (region is None or region.lower() not in REGIONS):
            raise ValueError(f"onset zone of {patient!r}: neither electrodes nor a known region")
        out.append("\t".join([str(patient), ",".join(canon), region or ""]))
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")
