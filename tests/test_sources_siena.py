"""Siena source: the real seizure lists (clock times past midnight, spacing quirks, the PN00-3
typo), the drift of the real files' wording, and lists that cannot be trusted."""
from __future__ import annotations

import codecs
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datamodules.edf import write_edf
from datamodules.recording import DatasetError
from datamodules.sources import discover, montage_problem, scan

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "data" / "siena"

#: Worked out by hand from the lists: seizure clock time minus registration start, modulo 24 h.
EXPECTED = {
    "PN00-1": [[1143.0, 1213.0]],  # 19.58.36 - 19.39.33 = 19 min 3 s ... 19.59.46
    "PN00-2": [[1220.0, 1274.0]],  # registration 02.18.17 (after midnight)
    "PN00-3": [[765.0, 825.0]],    # 18.28.29; end 19.29.29 is the database's typo for 18.29.29
    "PN00-4": [[1006.0, 1080.0]],
    "PN00-5": [[904.0, 971.0]],
    "PN16-1": [[7184.0, 7307.0]],  # "Seizure n 1 (in sleep):"
    "PN16-2": [[8574.0, 8681.0]],  # "Seizure end time:03.18.36" (no space)
}
LABELS = ["EEG Fp1", "EEG F3", "EEG C3", "EEG P3", "EEG O1", "EEG F7", "EEG T3", "EEG T5", "EEG Fz", "EEG Cz",
          "EEG Pz", "EEG Fp2", "EEG F4", "EEG C4", "EEG P4", "EEG O2", "EEG F8", "EEG T4", "EEG T6", "EKG EKG"]


def test_real_lists_listed_exactly_by_inspect():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "datamodules", "inspect", str(REAL), "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["layout"] == "siena"
    recs = {r["recording_id"]: r for r in out["recordings"]}
    assert {k: r["seizures"] for k, r in recs.items()} == EXPECTED
    assert all(r["sfreq"] == 512.0 and r["seizure_types"] == ["sz_foc_ia"] for r in recs.values())
    assert recs["PN00-1"]["soz_region"] == "right temporal" and recs["PN16-1"]["soz_region"] == "left temporal"
    typo = [w for w in out["warnings"] if "PN00-3.edf seizure end time 19.29.29 corrected to 18.29.29" in w]
    assert len(typo) == 1 and "Seizures-list-PN00.txt, line 58" in typo[0]


def test_real_headers_montage_and_clock_cross_checks():
    index = scan(REAL)
    for r in index.recordings:
        assert montage_problem(r) is None  # EEG Fp1 / EEG FP2 / EEG CZ: case varies, names map
        # 2 s cuts of long files: the registration span disagrees with the header, and says so
        assert any("the registration times" in w for w in r.warnings)
        assert not any("EDF header starts at" in w for w in r.warnings)  # header start = registration
    pn16 = next(r for r in index.recordings if r.recording_id == "PN16-2")
    assert "EEG FP2" in pn16.channels and "EEG CZ" in pn16.channels


def _edf(path: Path, seconds: int = 60, start=None):
    import datetime as dt
    path.parent.mkdir(parents=True, exist_ok=True)
    write_edf(path, np.random.default_rng(2).normal(0, 20, (len(LABELS), seconds * 16)), 16, LABELS,
              start=start or dt.datetime(2020, 1, 1, 23, 50, 0))


def _list(folder: Path, text: str, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    p = folder / f"Seizures-list-{folder.name}.txt"
    p.write_bytes(bom + text.encode(encoding))
    return p


def test_midnight_drifting_wording_and_file_name_typos(tmp_path):
    import datetime as dt
    folder = tmp_path / "PN06"
    _edf(folder / "PN06-1.edf", seconds=3600)
    _edf(folder / "PN06-2.edf", seconds=3600, start=dt.datetime(2020, 1, 2, 16, 49, 25))
    _list(folder, (
        "PN06\r\n\r\nData Sampling Rate: 512 Hz\r\nChannels in EDF Files:\r\nChannel 1: Fp1      \r\n\r\n"
        "Seizure n 1\nFile name: PNO6-1.edf\nRegistration start time: 23.50.00\n"
        "Registration end time:  00.50.00\nStart time: 00:10:00\nEnd time: 00.11.30\n\n"
        "Seizure n 2 \nSeizure start time:00.20.00 \nSeizure end time: 00.21.00\n\n"   # same file, inherited
        "Seizure n 3 (in sleep):\nFile name: PN06-2.edf \nRegistration start time:1 6.49.25\n"  # stray space
        "Registration end time: 17.49.25\nSeizure start time: 17.00.00\nSeizure end time: 17.01.00\n"))
    recs = {r.recording_id: r for r in scan(tmp_path).recordings}
    assert recs["PN06-1"].seizures == ((1200.0, 1290.0), (1800.0, 1860.0))  # across midnight
    assert recs["PN06-2"].seizures == ((635.0, 695.0),)
    assert any("'PNO6-1.edf' matched to PN06-1.edf" in w for w in recs["PN06-1"].warnings)


def test_first_file_named_without_index_and_unlisted_file(tmp_path):
    folder = tmp_path / "PN01"
    _edf(folder / "PN01-1.edf", seconds=600)
    _edf(folder / "PN01-2.edf", seconds=60)
    _list(folder, "Seizure n 1\nFile name: PN01.edf\nRegistration start time: 23.50.00\n"
                  "Registration end time: 00.00.00\nSeizure start time: 23.55.00\nSeizure end time: 23.56.00\n")
    recs = {r.recording_id: r for r in scan(tmp_path).recordings}
    assert recs["PN01-1"].seizures == ((300.0, 360.0),)
    assert recs["PN01-2"].annotated and recs["PN01-2"].seizures == ()
    assert any("not in Seizures-list-PN01.txt: taken as seizure-free" in w for w in recs["PN01-2"].warnings)


@pytest.mark.parametrize("text, message", [
    ("Seizure n 1\nFile name: PN02-1.edf\nRegistration start time: 10.00.00\nSeizure start time: 10.10.00\n",
     "line 1 \\(Seizure n 1\\): seizure end time missing"),
    ("Seizure n 1\nRegistration start time: 10.00.00\nSeizure start time: 10.10.00\nSeizure end time: 10.11.00\n",
     "no file name"),
    ("Seizure n 1\nFile name: PN02-1.edf\nRegistration start time: 10.00.00\nSeizure start time: 10.70.00\n"
     "Seizure end time: 10.11.00\n", "line 4: '10.70.00' is not a time of day"),
    ("Seizure n 1\nFile name: PN02-1.edf\nRegistration start time: 10.00.00\nSeizure begins: 10.10.00\n",
     "line 4: cannot parse 'Seizure begins: 10.10.00'"),
    ("File name: PN02-1.edf\n", "outside a 'Seizure n' block"),
])
def test_untrustworthy_lists_stop_the_index_naming_file_and_line(tmp_path, text, message):
    folder = tmp_path / "PN02"
    _edf(folder / "PN02-1.edf")
    p = _list(folder, text)
    with pytest.raises(DatasetError, match=message) as err:
        discover(tmp_path)
    assert str(p) in str(err.value)


def test_count_must_match_subject_info(tmp_path):
    shutil.copytree(REAL / "PN00", tmp_path / "PN00")
    (tmp_path / "subject_info.csv").write_text(
        "patient_id, age_years, gender, seizure, localization, lateralization, eeg_channel, number_seizures\n"
        "PN00,55,Male,IAS,T,R,29,6\n")
    with pytest.raises(DatasetError, match="list\\(s\\) 5 seizure\\(s\\) of PN00.*says 6"):
        scan(tmp_path)


def test_utf16_list_with_bom_is_read_without_is_refused(tmp_path):
    folder = tmp_path / "PN00"
    shutil.copytree(REAL / "PN00", folder)
    text = (REAL / "PN00" / "Seizures-list-PN00.txt").read_text(encoding="utf-8")
    _list(folder, text, "utf-16-le", codecs.BOM_UTF16_LE)
    assert {r.recording_id: [list(s) for s in r.seizures] for r in scan(tmp_path).recordings} == \
        {k: v for k, v in EXPECTED.items() if k.startswith("PN00")}
    p = _list(folder, text, "utf-16-le")  # no byte-order mark
    with pytest.raises(DatasetError, match="NUL bytes.*UTF-16") as err:
        scan(tmp_path)
    assert str(p) in str(err.value)
