"""CHB-MIT source: the real chb05 fixtures and summaries reproducing each real-file quirk."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from datamodules.edf import write_edf
from datamodules.recording import DatasetError
from datamodules.sources import discover, montage_problem, scan
from datamodules.sources.chbmit import (
    clock_to_seconds,
    parse_summary,
    patient_of,
    read_chbmit,
    read_subject_info,
    subject_of,
)
from datamodules.sources.soz import write_soz_tsv
from eeg.montage import CHBMIT_23

DATA = Path(__file__).parent / "data"
REAL = DATA / "chbmit"
QUIRKS = DATA / "chbmit_quirks"

#: Seizures printed in the real chb05-summary.txt.
CHB05_SEIZURES = {
    "chb05_06": ((417.0, 532.0),),
    "chb05_13": ((1086.0, 1196.0),),
    "chb05_16": ((2317.0, 2413.0),),
    "chb05_17": ((2451.0, 2571.0),),
    "chb05_22": ((2348.0, 2465.0),),
}
STD = list(CHBMIT_23)
CHANGED1 = ["FP1-F7", "F7-T7", "T7-P7", "P7-O1", "-", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "-",
            "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "-", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "-",
            "FZ-CZ", "CZ-PZ", ".", "P7-T7", "T7-FT9", "FT9-FT10", "FT10-T8", "ECG"]
CHANGED2 = STD[:22] + ["VNS", "EKG1-EKG2", "LOC-ROC", "FC1-Ref"]


# ----------------------------------------------------------------------------- names
def test_subject_and_patient_names():
    assert subject_of("chb17a_03") == "chb17"
    assert subject_of("chb02_16+") == "chb02"
    assert patient_of("chb21") == "chb01"
    assert patient_of("chb21_05") == "chb01"
    assert patient_of("chb05") == "chb05"
    with pytest.raises(ValueError):
        subject_of("sub-01_run-00")


def test_clock_times_are_not_times_of_day():
    assert clock_to_seconds("24:21:32") == 24 * 3600 + 21 * 60 + 32
    assert clock_to_seconds("1:21:39") == 3600 + 21 * 60 + 39
    with pytest.raises(ValueError):
        clock_to_seconds("1:21")


# ----------------------------------------------------------------------------- real files
def test_real_summary_parsed_exactly():
    s = parse_summary(REAL / "chb05" / "chb05-summary.txt")
    assert s.sfreq == 256.0 and s.warnings == ()
    assert [e.file_name for e in s.entries] == [f"chb05_{k:02d}.edf" for k in range(1, 40)]
    got = {e.file_name[:-4]: e.seizures for e in s.entries if e.seizures}
    assert got == CHB05_SEIZURES
    assert all(e.channels == CHBMIT_23 for e in s.entries)  # duplicated T8-P8 kept
    by = s.by_file()
    assert (by["chb05_07.edf"].start_clock, by["chb05_07.edf"].end_clock) == ("23:21:32", "24:21:32")
    assert (by["chb05_08.edf"].start_clock, by["chb05_08.edf"].end_clock) == ("00:21:39", "1:21:39")
    assert by["chb05_07.edf"].clock_duration_s == 3600 and by["chb05_08.edf"].clock_duration_s == 3600


def test_real_recordings_from_headers_and_summary():
    issues: list[str] = []
    recs = {r.recording_id: r for r in read_chbmit(REAL, issues=issues)}
    assert len(recs) == 39 and issues == []
    for rid, r in recs.items():
        assert r.duration_s == 2.0 and r.sfreq == 256.0 and r.channels == CHBMIT_23
        assert r.patient == r.subject == "chb05" and r.annotated
        assert r.seizures == CHB05_SEIZURES.get(rid, ())
        assert r.meas_date is not None and r.meas_date.startswith("2059-03-")
        # The fixtures are 2 s cuts of hour-long files: warned, not an error.
        assert any("span" in w and rid in w for w in r.warnings)
    assert any("end after the recording's 2 s" in w for w in recs["chb05_06"].warnings)


def test_subject_info():
    info = read_subject_info(REAL / "SUBJECT-INFO")
    assert "chb24" not in info and len(info) == 23
    assert (info["chb05"].gender, info["chb05"].age_years) == ("F", 7.0)
    assert info["chb06"].age_years == 1.5


# ----------------------------------------------------------------------------- quirks (parser)
def test_numbered_forms_positional_pairing_double_spaces_late_clock():
    s = parse_summary(QUIRKS / "chb06-summary.txt")
    by = s.by_file()
    # "Seizure 1 End Time" printed for the second seizure: pairing by position.
    assert by["chb06_01.edf"].seizures == ((2.0, 4.0), (8.0, 11.0), (15.0, 18.0))
    assert by["chb06_02.edf"].seizures == ((5.0, 9.0),)  # numbered although alone
    assert by["chb06_03.edf"].seizures == ()
    assert by["chb06_01.edf"].end_clock == "24:00:10" and by["chb06_01.edf"].clock_duration_s == 20
    assert by["chb06_02.edf"].start_clock == "1:00:20"


def test_unnumbered_repeated_and_channel_changes():
    s = parse_summary(QUIRKS / "chb04-summary.txt")
    by = s.by_file()
    assert by["chb04_01.edf"].seizures == ((3.0, 6.0), (12.0, 16.0))
    assert by["chb04_01.edf"].channels == tuple(STD)
    assert by["chb04_02.edf"].channels == tuple(CHANGED1)  # dummies "-" and "." kept as listed
    assert by["chb04_03.edf"].channels == tuple(CHANGED1)  # a change applies to every later file
    assert by["chb04_04.edf"].channels == tuple(CHANGED2)


def test_split_and_plus_file_names():
    assert [e.file_name for e in parse_summary(QUIRKS / "chb17-summary.txt").entries] == [
        "chb17a_03.edf", "chb17b_63.edf", "chb17c_13.edf"]
    by = parse_summary(QUIRKS / "chb02-summary.txt").by_file()
    assert by["chb02_16+.edf"].seizures == ((2.0, 8.0),)
    assert by["chb02_16.edf"].seizures == ((11.0, 17.0),)


@pytest.mark.parametrize(
    "name, edf, message",
    [("count_mismatch", "chb09_01.edf", "says 2 but 1"),
     ("unpaired", "chb09_02.edf", "2 seizure start time\\(s\\) but 1 end"),
     ("bad_seizure_line", "chb09_03.edf", "cannot parse seizure line"),
     ("no_count", "chb09_04.edf", "no 'Number of Seizures in File'")],
)
def test_untrustworthy_summaries_raise_naming_summary_and_edf(name, edf, message):
    path = QUIRKS / f"{name}-summary.txt"
    with pytest.raises(DatasetError, match=message) as err:
        parse_summary(path)
    assert str(path) in str(err.value) and edf in str(err.value)


def test_unknown_lines_are_warnings(tmp_path):
    p = tmp_path / "chb09-summary.txt"
    p.write_text((QUIRKS / "chb06-summary.txt").read_text() + "\nSomething new: 3\n")
    s = parse_summary(p)
    assert len(s.entries) == 3 and any("Something new" in w for w in s.warnings)


# ----------------------------------------------------------------------------- quirks (dataset)
def _edf(path: Path, labels, seconds: int = 20, sfreq: int = 256) -> None:
    x = np.random.default_rng(len(labels)).normal(0, 30, (len(labels), seconds * sfreq))
    write_edf(path, x, sfreq, labels)


@pytest.fixture(scope="module")
def quirk_root(tmp_path_factory) -> Path:
    """A CHB-MIT-shaped tree with every quirk: missing EDFs, unannotated EDFs, chb21, a+ names."""
    root = tmp_path_factory.mktemp("chbmit")
    layout = {
        "chb06": {"chb06_01.edf": STD, "chb06_02.edf": STD,  # chb06_03.edf missing on disk
                  "chb06_04.edf": ["FP1-F7", "F7-T7", "T7-P7", "P7-O1"]},  # not in the summary
        "chb04": {"chb04_01.edf": STD, "chb04_02.edf": CHANGED1,
                  "chb04_03.edf": STD,  # the summary says CHANGED1 applies: warned
                  "chb04_04.edf": CHANGED2},
        "chb17": {"chb17a_03.edf": STD, "chb17b_63.edf": STD, "chb17c_13.edf": STD},
        "chb02": {"chb02_16.edf": STD, "chb02_16+.edf": STD},
    }
    for subject, files in layout.items():
        (root / subject).mkdir()
        shutil.copyfile(QUIRKS / f"{subject}-summary.txt", root / subject / f"{subject}-summary.txt")
        for name, labels in files.items():
            _edf(root / subject / name, labels)
    (root / "chb06" / "._chb06_01.edf").write_bytes(b"\0" * 4096)  # macOS copy debris
    # chb21 is chb01 recorded later.
    (root / "chb21").mkdir()
    (root / "chb21" / "chb21-summary.txt").write_text(
        (QUIRKS / "chb02-summary.txt").read_text().replace("chb02_16+", "chb21_02").replace("chb02_16", "chb21_01"))
    _edf(root / "chb21" / "chb21_01.edf", STD)
    _edf(root / "chb21" / "chb21_02.edf", STD)
    (root / "RECORDS").write_text("chb02/chb02_16.edf\nchb02/chb02_16+.edf\nchb22/chb22_01.edf\n")
    (root / "RECORDS-WITH-SEIZURES").write_text("chb02/chb02_16.edf\nchb17/chb17b_63.edf\n")
    return root


@pytest.fixture(scope="module")
def quirk_index(quirk_root):
    issues: list[str] = []
    recs = {r.recording_id: r for r in read_chbmit(quirk_root, issues=issues)}
    return recs, issues


def test_dataset_seizures_and_names(quirk_index):
    recs, _ = quirk_index
    assert recs["chb06_01"].seizures == ((2.0, 4.0), (8.0, 11.0), (15.0, 18.0))
    assert recs["chb04_01"].seizures == ((3.0, 6.0), (12.0, 16.0))
    assert recs["chb17a_03"].subject == "chb17" and recs["chb17a_03"].patient == "chb17"
    assert recs["chb17c_13"].seizures == ((1.0, 19.0),)
    assert recs["chb02_16+"].seizures == ((2.0, 8.0),) and recs["chb02_16+"].patient == "chb02"
    assert (recs["chb21_01"].patient, recs["chb21_01"].subject) == ("chb01", "chb21")
    # Matching clocks (including 23:59:50 -> 24:00:10) and durations give no clock warning.
    assert not any("span" in w for w in recs["chb06_01"].warnings)
    assert all(r.duration_s == 20.0 and r.sfreq == 256.0 for r in recs.values())


def test_channels_come_from_the_header_and_are_cross_checked(quirk_index):
    recs, _ = quirk_index
    assert recs["chb04_02"].channels == tuple(CHANGED1)
    assert not any("channels differ" in w for w in recs["chb04_02"].warnings)
    assert recs["chb04_03"].channels == tuple(STD)
    assert any("channels differ" in w and "chb04_03.edf" in w for w in recs["chb04_03"].warnings)
    assert recs["chb04_04"].channels == tuple(CHANGED2)
    assert montage_problem(recs["chb04_02"]) is None  # dummies and ECG dropped by name
    assert montage_problem(recs["chb04_04"]) is None


def test_unannotated_and_missing_files(quirk_index):
    recs, issues = quirk_index
    r = recs["chb06_04"]
    assert not r.annotated and r.seizures == ()
    assert any("chb06_04.edf" in w and "unannotated" in w for w in r.warnings)
    assert any("chb06_03.edf" in w and "no EDF file" in w for w in issues)
    assert "chb06_03" not in recs and "._chb06_01" not in recs
    assert any("RECORDS lists 1 EDF file(s) not on disk: chb22/chb22_01.edf" in w for w in issues)
    assert any("not in RECORDS-WITH-SEIZURES" in w for w in recs["chb02_16+"].warnings)
    assert any("listed in RECORDS-WITH-SEIZURES" in w for w in recs["chb17b_63"].warnings)
    assert not any("SEIZURES" in w for w in recs["chb02_16"].warnings)


def test_discover_attaches_soz_sorts_and_checks_montage(quirk_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(quirk_root, root)
    write_soz_tsv(root / "soz.tsv", {"chb01": (["T3", "F7"], "left temporal"),
                                     "chb99": (["O1"], None)})
    index = scan(root)
    ids = [r.recording_id for r in index.recordings]
    assert ids == sorted(ids, key=lambda i: (patient_of(i), i))
    recs = {r.recording_id: r for r in index.recordings}
    assert recs["chb21_01"].soz == ("T7", "F7") and recs["chb21_01"].soz_region == "left temporal"
    assert recs["chb06_01"].soz is None
    assert any("chb99" in w for w in index.warnings)
    # Four channels cannot give the double banana: reported on the recording, not raised.
    assert any("cannot build" in w and "chb06_04.edf" in w for w in recs["chb06_04"].warnings)
    assert discover(root) == list(index.recordings)


def test_corrupt_edf_kept_with_warning(quirk_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(quirk_root, root)
    (root / "chb06" / "chb06_01.edf").write_bytes(b"not an edf at all" * 10)
    recs = {r.recording_id: r for r in discover(root)}
    r = recs["chb06_01"]
    assert r.channels == () and r.duration_s == 0.0
    assert r.seizures == ((2.0, 4.0), (8.0, 11.0), (15.0, 18.0))  # annotations stay visible
    assert any("unreadable EDF" in w and "chb06_01.edf" in w for w in r.warnings)
    assert montage_problem(r) is not None


def test_count_mismatch_stops_the_index(tmp_path):
    (tmp_path / "chb09").mkdir()
    shutil.copyfile(QUIRKS / "count_mismatch-summary.txt", tmp_path / "chb09" / "chb09-summary.txt")
    _edf(tmp_path / "chb09" / "chb09_01.edf", STD, seconds=2)
    with pytest.raises(DatasetError, match="chb09_01.edf"):
        discover(tmp_path)


def test_subject_folder_as_root():
    recs = discover(REAL / "chb05")
    assert len(recs) == 39 and recs[0].recording_id == "chb05_01"
