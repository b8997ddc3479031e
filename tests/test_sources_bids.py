"""SzCORE BIDS source, the soz.tsv table, and layout detection in sources.discover."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datamodules.edf import write_edf
from datamodules.recording import DatasetError
from datamodules.sources import detect_layout, discover, montage_problem, scan
from datamodules.sources.bids import read_bids, read_events
from datamodules.sources.soz import read_soz_tsv, write_soz_tsv

#: The 18 double-banana channels as SzCORE BIDS files spell them (old names, mixed case).
SZCORE_18 = ["Fp1-F7", "F7-T3", "T3-T5", "T5-O1", "Fp2-F8", "F8-T4", "T4-T6", "T6-O2",
             "Fp1-F3", "F3-C3", "C3-P3", "P3-O1", "Fp2-F4", "F4-C4", "C4-P4", "P4-O2",
             "Fz-Cz", "Cz-Pz"]
HEADER = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"


def _edf(path: Path, labels=SZCORE_18, seconds: int = 30, sfreq: int = 256) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_edf(path, np.random.default_rng(3).normal(0, 20, (len(labels), seconds * sfreq)), sfreq, labels)


def _events(path: Path, rows: list[str], duration: float = 30.0) -> None:
    lines = [r.format(d=duration) for r in rows]
    path.write_text(HEADER + "".join(line + "\n" for line in lines))


@pytest.fixture
def bids_root(tmp_path) -> Path:
    eeg1 = tmp_path / "sub-01" / "ses-01" / "eeg"
    run0 = "sub-01_ses-01_task-szMonitoring_run-00"
    run1 = "sub-01_ses-01_task-szMonitoring_run-01"
    _edf(eeg1 / f"{run0}_eeg.edf")
    _events(eeg1 / f"{run0}_events.tsv", [
        "3.5\t6.0\tsz_foc_ia\tn/a\tFp1-F7,F7-T3\t2020-01-01 10:00:00\t{d}",
        "20\t4\tsz\tn/a\tn/a\t2020-01-01 10:00:00\t{d}",
    ])
    _edf(eeg1 / f"{run1}_eeg.edf")
    _events(eeg1 / f"{run1}_events.tsv", ["0\t{d}\tbckg\tn/a\tn/a\t2020-01-01 11:00:00\t{d}"])
    # sub-02: no session folder, and one recording without events.
    eeg2 = tmp_path / "sub-02" / "eeg"
    _edf(eeg2 / "sub-02_task-szMonitoring_run-00_eeg.edf")
    _events(eeg2 / "sub-02_task-szMonitoring_run-00_events.tsv",
            ["10\t5\tsz\tn/a\tT4-T6\t2020-01-01 10:00:00\t{d}"], duration=99.0)
    _edf(eeg2 / "sub-02_task-szMonitoring_run-01_eeg.edf", labels=SZCORE_18[:5])
    (tmp_path / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n")
    return tmp_path


def test_bids_recordings(bids_root):
    recs = {r.recording_id: r for r in read_bids(bids_root)}
    assert sorted(recs) == ["sub-01_ses-01_task-szMonitoring_run-00", "sub-01_ses-01_task-szMonitoring_run-01",
                            "sub-02_task-szMonitoring_run-00", "sub-02_task-szMonitoring_run-01"]
    r = recs["sub-01_ses-01_task-szMonitoring_run-00"]
    assert r.patient == r.subject == "sub-01"
    assert r.seizures == ((3.5, 9.5), (20.0, 24.0))
    assert r.channels == tuple(SZCORE_18)  # as found: T3, Fp1 kept
    assert r.duration_s == 30.0 and r.sfreq == 256.0 and r.annotated
    assert r.warnings == ()
    assert montage_problem(r) is None  # derive maps T3 -> T7, Fp1 -> FP1
    assert recs["sub-01_ses-01_task-szMonitoring_run-01"].seizures == ()
    # Onset zone from the seizure events' channel column, pooled over the patient.
    assert r.soz == ("FP1", "F7", "T7") and recs["sub-01_ses-01_task-szMonitoring_run-01"].soz == r.soz
    assert recs["sub-02_task-szMonitoring_run-00"].soz == ("T8", "P8")


def test_bids_duration_check_unannotated_and_montage(bids_root):
    recs = {r.recording_id: r for r in discover(bids_root)}
    r = recs["sub-02_task-szMonitoring_run-00"]
    assert any("recordingDuration 99 s" in w for w in r.warnings)
    assert not any("end after" in w for w in r.warnings)
    missing = recs["sub-02_task-szMonitoring_run-01"]
    assert not missing.annotated
    assert any("no sub-02_task-szMonitoring_run-01_events.tsv" in w for w in missing.warnings)
    assert any("cannot build" in w for w in missing.warnings)


def test_soz_tsv_takes_precedence_over_event_channels(bids_root):
    write_soz_tsv(bids_root / "soz.tsv", {"sub-02": ((), "left occipital")})
    index = scan(bids_root)
    assert index.layout == "bids"
    recs = {r.recording_id: r for r in index.recordings}
    assert recs["sub-02_task-szMonitoring_run-00"].soz == ("O1",)
    assert recs["sub-02_task-szMonitoring_run-00"].soz_region == "left occipital"
    assert recs["sub-01_ses-01_task-szMonitoring_run-00"].soz == ("FP1", "F7", "T7")
    assert [r.patient for r in index.recordings] == ["sub-01", "sub-01", "sub-02", "sub-02"]


def test_events_errors_name_file_and_line(tmp_path):
    p = tmp_path / "x_events.tsv"
    p.write_text("onset\tduration\n1\t2\n")
    with pytest.raises(DatasetError, match="lacks column.*eventType") as err:
        read_events(p)
    assert str(p) in str(err.value)
    _events(p, ["0\t{d}\tbckg\tn/a\tn/a\tn/a\t{d}", "abc\t3\tsz\tn/a\tn/a\tn/a\t{d}"])
    with pytest.raises(DatasetError, match="line 3"):
        read_events(p)
    _events(p, ["5\t-3\tsz\tn/a\tn/a\tn/a\t{d}"])
    with pytest.raises(DatasetError, match="negative"):
        read_events(p)


def test_unknown_event_channel_is_warned(tmp_path):
    eeg = tmp_path / "sub-05" / "eeg"
    _edf(eeg / "sub-05_run-00_eeg.edf")
    _events(eeg / "sub-05_run-00_events.tsv", ["1\t2\tsz\tn/a\tECG,Fp2-F8\tn/a\t{d}"])
    (r,) = read_bids(tmp_path)
    assert r.soz == ("FP2", "F8")
    assert any("'ECG' is not an EEG channel" in w for w in r.warnings)


# ----------------------------------------------------------------------------- soz.tsv
def test_soz_round_trip_and_canonical_names(tmp_path):
    p = tmp_path / "soz.tsv"
    write_soz_tsv(p, {"chb01": (["T3", "Fp1", "T3"], "left temporal"), "sub-02": (("O2",), None),
                      "chb05": ((), "right frontal")})
    assert p.read_text().splitlines()[0] == "patient\telectrodes\tregion"
    rows = read_soz_tsv(p)
    assert rows == {"chb01": (("T7", "FP1"), "left temporal"), "sub-02": (("O2",), None),
                    "chb05": (("FP2", "F4", "F8"), "right frontal")}


@pytest.mark.parametrize(
    "text, message",
    [("patient\tzone\n", "header"),
     ("patient\telectrodes\tregion\nchb01\tT7,XX9\t\n", "line 2.*'XX9' is not a 10-20"),
     ("patient\telectrodes\tregion\nchb01\tT7\t\nchb01\tO1\t\n", "line 3.*already given on line 2"),
     ("patient\telectrodes\tregion\nchb01\t\tsomewhere\n", "line 2.*region 'somewhere'"),
     ("patient\telectrodes\tregion\nchb01\n", "line 2.*neither electrodes nor a region"),
     ("patient\telectrodes\tregion\nchb01\tT7\tx\ty\n", "line 2.*4 tab-separated fields"),
     ("", "empty")],
)
def test_soz_errors_name_file_and_line(tmp_path, text, message):
    p = tmp_path / "soz.tsv"
    p.write_text(text)
    with pytest.raises(DatasetError, match=message) as err:
        read_soz_tsv(p)
    assert str(p) in str(err.value)


def test_soz_two_column_header_and_comments(tmp_path):
    p = tmp_path / "soz.tsv"
    p.write_text("# from clinical notes\npatient\telectrodes\n\nchb03\tF8, T8\n")
    assert read_soz_tsv(p) == {"chb03": (("F8", "T8"), None)}


def test_write_soz_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="not a 10-20"):
        write_soz_tsv(tmp_path / "s.tsv", {"p": (["Q7"], None)})
    with pytest.raises(ValueError, match="neither"):
        write_soz_tsv(tmp_path / "s.tsv", {"p": ((), None)})
    with pytest.raises(ValueError, match="tabs"):
        write_soz_tsv(tmp_path / "s.tsv", {"p\tq": (["O1"], None)})


# ----------------------------------------------------------------------------- detection
def test_layout_detection_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "absent")
    with pytest.raises(DatasetError, match="no recognizable dataset"):
        discover(tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a directory"):
        discover(tmp_path / "f.txt")


def test_corrupt_bids_edf_is_a_warning(bids_root):
    edf = bids_root / "sub-01" / "ses-01" / "eeg" / "sub-01_ses-01_task-szMonitoring_run-00_eeg.edf"
    edf.write_bytes(b"0       " + b"\x00" * 100)
    recs = {r.recording_id: r for r in discover(bids_root)}
    r = recs["sub-01_ses-01_task-szMonitoring_run-00"]
    assert r.channels == () and r.seizures == ((3.5, 9.5), (20.0, 24.0))
    assert any("truncated EDF header" in w and edf.name in w for w in r.warnings)
