"""TUSZ v2 source: the real .csv_bi fixtures, per-channel .csv types and onset zones, patients
across sessions and splits, and annotation files that cannot be trusted."""
from __future__ import annotations

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
from datamodules.sources.tusz import read_labels
from datamodules.splits import loso_split

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "data" / "tuh"
REF = ["EEG FP1-REF", "EEG FP2-REF", "EEG F3-REF", "EEG F4-REF", "EEG C3-REF", "EEG C4-REF", "EEG P3-REF",
       "EEG P4-REF", "EEG O1-REF", "EEG O2-REF", "EEG F7-REF", "EEG F8-REF", "EEG T3-REF", "EEG T4-REF",
       "EEG T5-REF", "EEG T6-REF", "EEG FZ-REF", "EEG CZ-REF", "EEG PZ-REF", "EEG EKG1-REF"]
HEAD = ("# version = csv_v1.0.0\n# bname = {b}\n# duration = {d:.2f} secs\n#\n"
        "channel,start_time,stop_time,label,confidence\n")


def expected_seizures(csv_bi: Path) -> list[list[float]]:
    """The seiz rows of a .csv_bi, read the plainest way (independent of the reader)."""
    rows = [line.split(",") for line in csv_bi.read_text().splitlines() if line and not line.startswith("#")]
    return [[float(r[1]), float(r[2])] for r in rows[1:] if r[3] == "seiz"]


def test_real_fixtures_listed_exactly_by_inspect():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "datamodules", "inspect", str(REAL), "--json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["layout"] == "tusz"
    files = sorted(REAL.rglob("*.csv_bi"))
    recs = {r["recording_id"]: r for r in out["recordings"]}
    assert sorted(recs) == sorted(f.stem for f in files)
    total = 0
    for f in files:
        r = recs[f.stem]
        assert r["seizures"] == expected_seizures(f), f
        assert r["patient"] == r["subject"] == f.parents[2].name
        assert r["annotated"] and all(t == "sz" for t in r["seizure_types"])
        total += len(r["seizures"])
    assert total == 83  # 3 (aaaaakpu) + 21 (aaaaarnq) + 1 + 52 + 6 (aaaaapks s012)
    assert recs["aaaaapks_s012_t001"]["seizures"][:2] == [[4.9724, 36.3315], [41.8066, 88.4144]]
    assert {r["sfreq"] for r in recs.values()} == {250.0, 256.0, 400.0}
    assert sorted({r["patient"] for r in recs.values()}) == ["aaaaahln", "aaaaakpu", "aaaaapks", "aaaaarnq"]


def test_real_montages_give_the_double_banana_and_duration_is_checked():
    index = scan(REAL)
    by_id = {r.recording_id: r for r in index.recordings}
    le = by_id["aaaaahln_s001_t000"]  # 02_tcp_le: EEG FP1-LE ... with A1/A2
    ar_a = by_id["aaaaahln_s002_t000"]  # 03_tcp_ar_a: EEG FP1-REF without A1/A2, 400 Hz
    assert le.channels[0] == "EEG FP1-LE" and ar_a.sfreq == 400.0
    assert all(montage_problem(r) is None for r in index.recordings)
    # the fixtures are 2 s cuts of long files: the '# duration' header disagrees, and says so
    assert any("annotation header 1275 s" in w for w in le.warnings)
    assert not any("expects channels" in w for r in index.recordings for w in r.warnings)


def _edf(path: Path, labels=REF, seconds=60, sfreq=250):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_edf(path, np.random.default_rng(1).normal(0, 20, (len(labels), seconds * sfreq)), sfreq, labels)


def _write(folder: Path, bname: str, term_rows: list[str], channel_rows: list[str] | None = None, seconds=60,
           labels=REF):
    _edf(folder / f"{bname}.edf", labels, seconds)
    (folder / f"{bname}.csv_bi").write_text(HEAD.format(b=bname, d=seconds) + "".join(r + "\n" for r in term_rows))
    if channel_rows is not None:
        (folder / f"{bname}.csv").write_text(HEAD.format(b=bname, d=seconds) + "".join(r + "\n" for r in channel_rows))


def test_sessions_in_several_splits_are_one_patient_never_split(tmp_path):
    for split, session in (("train", "s001_2010"), ("eval", "s002_2012"), ("dev", "s003_2013")):
        _write(tmp_path / split / "aaaaaxyz" / session / "01_tcp_ar", f"aaaaaxyz_{session[:4]}_t000",
               ["TERM,0.0000,10.0000,bckg,1.0000", "TERM,10.0000,20.0000,seiz,1.0000",
                "TERM,20.0000,60.0000,bckg,1.0000"])
    for k, name in enumerate(("aaaaaabc", "aaaaadef")):
        _write(tmp_path / "train" / name / "s001_2010" / "01_tcp_ar", f"{name}_s001_t000",
               [f"TERM,0.0000,{30 + k}.0000,bckg,1.0000", f"TERM,{30 + k}.0000,50.0000,seiz,1.0000",
                "TERM,50.0000,60.0000,bckg,1.0000"])
    index = scan(tmp_path)
    assert index.layout == "tusz"
    assert [r.patient for r in index.recordings].count("aaaaaxyz") == 3
    assert any("aaaaaxyz has sessions in dev, eval, train" in w for w in index.warnings)
    split = loso_split(index.patients, "aaaaaxyz", 1)
    assert "aaaaaxyz" not in split.train + split.val  # none of its sessions reach training


def test_per_channel_csv_gives_types_and_onset_zone(tmp_path):
    folder = tmp_path / "dev" / "aaaaaqrs" / "s001_2015" / "01_tcp_ar"
    focal = ["FP1-F7,0.0000,10.0000,bckg,1.0000", "FP1-F7,10.0000,30.0000,cpsz,1.0000",
             "FP1-F7,30.0000,60.0000,bckg,1.0000",
             "F7-T3,0.0000,10.5000,bckg,1.0000", "F7-T3,10.5000,30.0000,cpsz,1.0000",
             "F7-T3,30.0000,60.0000,bckg,1.0000",
             # spreads to T3-T5 8 s later: not the onset zone
             "T3-T5,0.0000,18.0000,bckg,1.0000", "T3-T5,18.0000,30.0000,cpsz,1.0000",
             "T3-T5,30.0000,60.0000,bckg,1.0000",
             "FP2-F8,0.0000,60.0000,bckg,1.0000", "C3-P3,0.0000,60.0000,bckg,1.0000"]
    _write(folder, "aaaaaqrs_s001_t000", ["TERM,0.0000,10.0000,bckg,1.0000", "TERM,10.0000,30.0000,seiz,1.0000",
                                          "TERM,30.0000,60.0000,bckg,1.0000"], focal)
    (r,) = scan(tmp_path).recordings
    assert r.seizures == ((10.0, 30.0),) and r.seizure_types == ("sz_foc_ia",)
    assert r.soz == ("FP1", "F7", "T7")  # channels marked within 1 s of the first: FP1-F7, F7-T3
    assert not any("per-channel" in w for w in r.warnings)


def test_generalized_seizure_gives_no_zone_and_only_csv_is_enough(tmp_path):
    folder = tmp_path / "train" / "aaaaagen" / "s001_2015" / "02_tcp_le"
    labels = [lab.replace("-REF", "-LE") for lab in REF]
    rows = [f"{ch},{a},{b},{lab},1.0000" for ch in ("FP1-F7", "FP2-F8")
            for a, b, lab in (("0.0", "5.0", "bckg"), ("5.0", "25.0", "gnsz"), ("25.0", "40.0", "bckg"),
                              ("40.0", "50.0", "tcsz"), ("50.0", "60.0", "bckg"))]
    _write(folder, "aaaaagen_s001_t000", [], rows, labels=labels)
    (folder / "aaaaagen_s001_t000.csv_bi").unlink()
    (r,) = scan(tmp_path).recordings
    assert r.seizures == ((5.0, 25.0), (40.0, 50.0))
    assert r.seizure_types == ("sz_gen", "sz_gen_m_tonicClonic") and r.soz is None
    assert any("no aaaaagen_s001_t000.csv_bi" in w for w in r.warnings)


def test_montage_folder_and_labels_disagree_is_warned(tmp_path):
    folder = tmp_path / "dev" / "aaaaawrn" / "s001_2015" / "02_tcp_le"  # LE folder, REF labels
    _write(folder, "aaaaawrn_s001_t000", ["TERM,0.0000,60.0000,bckg,1.0000"])
    (r,) = scan(tmp_path).recordings
    assert any("02_tcp_le expects channels referenced to LE" in w for w in r.warnings)


def test_edf_parent_folder_and_unannotated_file(tmp_path):
    folder = tmp_path / "edf" / "eval" / "aaaaaone" / "s001_2015" / "01_tcp_ar"
    _write(folder, "aaaaaone_s001_t000", ["TERM,0.0000,60.0000,bckg,1.0000"])
    _edf(folder / "aaaaaone_s001_t001.edf")
    recs = {r.recording_id: r for r in scan(tmp_path).recordings}
    assert recs["aaaaaone_s001_t000"].annotated and recs["aaaaaone_s001_t000"].seizures == ()
    assert not recs["aaaaaone_s001_t001"].annotated
    assert any("unannotated" in w for w in recs["aaaaaone_s001_t001"].warnings)


@pytest.mark.parametrize("row, message", [
    ("TERM,10.0000,20.0000,seizure,1.0000", "label 'seizure' is neither bckg nor a TUSZ seizure type"),
    ("TERM,nan,20.0000,seiz,1.0000", "not finite"),
    ("TERM,abc,20.0000,seiz,1.0000", "not a number"),
    ("TERM,30.0000,20.0000,seiz,1.0000", "is not after start_time"),
    ("TERM,10.0000,20.0000,seiz", "4 comma-separated fields"),
])
def test_untrustworthy_rows_stop_the_index_naming_file_and_line(tmp_path, row, message):
    folder = tmp_path / "dev" / "aaaaabad" / "s001_2015" / "01_tcp_ar"
    _write(folder, "aaaaabad_s001_t000", ["TERM,0.0000,10.0000,bckg,1.0000", row])
    with pytest.raises(DatasetError, match=message) as err:
        discover(tmp_path)
    assert "aaaaabad_s001_t000.csv_bi, line 7" in str(err.value)


def test_wrong_header_and_channel_in_term_file(tmp_path):
    p = tmp_path / "x.csv_bi"
    p.write_text("# duration = 5.00 secs\nstart,stop,label\n")
    with pytest.raises(DatasetError, match="expected the header"):
        read_labels(p)
    folder = tmp_path / "root" / "dev" / "aaaaachn" / "s001_2015" / "01_tcp_ar"
    _write(folder, "aaaaachn_s001_t000", ["FP1-F7,0.0000,60.0000,bckg,1.0000"])
    with pytest.raises(DatasetError, match="channel 'FP1-F7' in a term-based"):
        scan(tmp_path / "root")


def test_same_file_name_twice_is_refused(tmp_path):
    for split in ("train", "dev"):
        _write(tmp_path / split / "aaaaadup" / "s001_2015" / "01_tcp_ar", "aaaaadup_s001_t000",
               ["TERM,0.0000,60.0000,bckg,1.0000"])
    with pytest.raises(DatasetError, match="same name"):
        scan(tmp_path)


def test_real_subject_copied_keeps_exact_seizures(tmp_path):
    shutil.copytree(REAL / "eval", tmp_path / "eval")
    recs = discover(tmp_path)
    assert sum(r.n_seizures for r in recs) == 21 and {r.patient for r in recs} == {"aaaaarnq"}
