"""SeizeIT source: the real annotation files (None stops, whitespace lines, regions) and rows
that cannot be trusted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datamodules.edf import write_edf
from datamodules.recording import DatasetError
from datamodules.sources import montage_problem, scan
from datamodules.sources.seizeit import UNKNOWN_END_S, region_of

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "data" / "seizeit"


def expected(tsv: Path) -> list[list[float]]:
    """Rows of an _a1.tsv read the plainest way; a None stop is the start + 30 s."""
    out = []
    for line in tsv.read_text().splitlines():
        cells = line.split("\t")
        if line.startswith("#") or len(cells) < 3:
            continue
        start = float(cells[0])
        out.append([start, start + UNKNOWN_END_S if cells[1] == "None" else float(cells[1])])
    return out


def test_real_annotations_listed_exactly_by_inspect():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "datamodules", "inspect", str(REAL), "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["layout"] == "seizeit"
    recs = {r["recording_id"]: r for r in out["recordings"]}
    tsvs = sorted(REAL.glob("P_ID*/*_a1.tsv"))
    assert sorted(recs) == sorted(t.name[:-len("_a1.tsv")] for t in tsvs)
    for t in tsvs:
        assert recs[t.name[:-len("_a1.tsv")]]["seizures"] == expected(t), t
    assert sum(len(r["seizures"]) for r in recs.values()) == 12
    assert recs["P_ID64_r4"]["seizures"][2] == [13962.0, 13992.0]  # "13962  None  FIA"
    assert any("no end ('None')" in w for w in recs["P_ID64_r4"]["warnings"])
    assert recs["P_ID64_r1"]["seizure_types"] == ["sz_foc_ia"]
    assert recs["P_ID64_r1"]["soz_region"] == "left temporal" and recs["P_ID83_r1"]["soz_region"] == "right temporal"
    assert all(r["sfreq"] == 250.0 for r in recs.values())


def test_real_headers_give_the_montage():
    assert all(montage_problem(r) is None for r in scan(REAL).recordings)


def test_region_codes():
    assert region_of("Hem:L, Orig:Temp, bhe: 0") == "left temporal"
    assert region_of("Hem:R, Orig:Fronto-temp, bhe: 1") == "right frontal"
    assert region_of("Hem:NC, Orig:Temp, bhe: 0") is None and region_of("Hem:bi, Orig:NC") is None


def _root(tmp_path: Path, rows: str) -> Path:
    folder = tmp_path / "P_ID07"
    folder.mkdir(parents=True)
    labels = ["Fp1", "Fp2", "F3", "F4", "F7", "F8", "Fz", "C3", "C4", "Cz", "T3", "T4", "T5", "T6", "P3", "P4",
              "Pz", "O1", "O2", "ECG"]
    write_edf(folder / "P_ID07_r1.edf", np.random.default_rng(0).normal(0, 9, (len(labels), 250 * 60)), 250, labels)
    (folder / "P_ID07_r1_a1.tsv").write_text("# Subject: P_ID07\n \n\n" + rows)
    return folder / "P_ID07_r1_a1.tsv"


def test_unknown_type_kept_as_seizure_with_warning(tmp_path):
    _root(tmp_path, "10\t20\tFIAS\tHem:R, Orig:Par, bhe: 0\n30\t40\tF-BTC\tHem:R, Orig:Par\n")
    (r,) = scan(tmp_path).recordings
    assert r.seizures == ((10.0, 20.0), (30.0, 40.0)) and r.seizure_types == ("sz", "sz_foc_f2b")
    assert any("seizure type 'FIAS' unknown" in w for w in r.warnings)
    assert r.soz_region == "right parietal"


@pytest.mark.parametrize("rows, message", [
    ("abc\t20\tFIA\tHem:L\n", "line 4: seizure start 'abc' is not a number"),
    ("30\t20\tFIA\tHem:L\n", "line 4: seizure 30-20 s does not end after it starts"),
    ("30 20 FIA\n", "line 4: expected 'start, stop, type, comment'"),
])
def test_bad_rows_stop_the_index_naming_file_and_line(tmp_path, rows, message):
    p = _root(tmp_path, rows)
    with pytest.raises(DatasetError, match=message) as err:
        scan(tmp_path)
    assert str(p) in str(err.value)
