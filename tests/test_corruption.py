"""Bad input never corrupts a signal or a label silently: each case of issue 13 with the file that
reproduces it, followed from the index through the cache (and the CLI where a user meets it)."""
from __future__ import annotations

import codecs
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from datamodules.cache import CacheLockTimeout, build_cache, list_recordings, read_signal
from datamodules.edf import read_edf_header, read_edf_signals, write_edf
from datamodules.preprocessing import PreprocessingConfig, preprocess
from datamodules.recording import DatasetError
from datamodules.sources import discover, montage_problem, scan
from datamodules.sources.bids import read_events
from eeg.montage import CHBMIT_23, DOUBLE_BANANA

REPO = Path(__file__).resolve().parents[1]
SUMMARY = "Data Sampling Rate: 256 Hz\n\nChannels in EDF Files:\n{channels}\n\n{entries}"
ENTRY = "File Name: {name}\nFile Start Time: 10:00:00\nFile End Time: 10:01:00\nNumber of Seizures in File: {n}\n{sz}\n"


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "datamodules", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def chb_root(tmp_path: Path, files: dict[str, list[tuple[int, int]]], seconds: int = 60) -> Path:
    """A CHB-MIT-layout patient chb01 with the standard 23 bipolar channels."""
    root = tmp_path / "chbmit"
    folder = root / "chb01"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries = []
    for name, seizures in files.items():
        write_edf(folder / name, rng.normal(0, 30, (23, seconds * 256)), 256, list(CHBMIT_23),
                  physical_range=(-800, 800))
        sz = "".join(f"Seizure {k + 1} Start Time: {a} seconds\nSeizure {k + 1} End Time: {b} seconds\n"
                     for k, (a, b) in enumerate(seizures))
        entries.append(ENTRY.format(name=name, n=len(seizures), sz=sz))
    channels = "\n".join(f"Channel {k + 1}: {c}" for k, c in enumerate(CHBMIT_23))
    (folder / "chb01-summary.txt").write_text(SUMMARY.format(channels=channels, entries="\n".join(entries)))
    return root


def patch_field(path: Path, field: str, channel: int, text: str) -> None:
    """Overwrite one per-signal header field of one channel, as a broken writer would leave it."""
    widths = dict(label=16, transducer=80, unit=8, physical_min=8, physical_max=8, digital_min=8,
                  digital_max=8, prefiltering=80, samples_per_record=8, reserved=32)
    data = bytearray(path.read_bytes())
    ns = int(data[252:256])
    offset = 256
    for name, width in widths.items():
        if name == field:
            raw = text.encode("utf-8") if isinstance(text, str) else text
            data[offset + channel * width: offset + (channel + 1) * width] = raw.ljust(width)
            break
        offset += width * ns
    path.write_bytes(bytes(data))


def flatten_channel(path: Path, channel: int, value: int = 7) -> None:
    """Every sample of one channel set to the same digital value (an electrode that recorded nothing)."""
    h = read_edf_header(path)
    data = np.fromfile(path, dtype="<i2", offset=h.header_bytes).reshape(h.n_records, h.record_samples)
    o, n = h.record_offsets[channel], h.samples_per_record[channel]
    data[:, o:o + n] = value
    with open(path, "r+b") as fh:
        fh.seek(h.header_bytes)
        fh.write(data.tobytes())


# ----------------------------------------------------------------------------- EDF scaling
def test_physical_range_1e308_is_refused_not_cached_as_nan(tmp_path):
    root = chb_root(tmp_path, {"chb01_01.edf": [(10, 20)], "chb01_02.edf": [(30, 40)]})
    bad = root / "chb01" / "chb01_01.edf"
    patch_field(bad, "physical_min", 0, "-1e308")
    patch_field(bad, "physical_max", 0, "1e308")
    recs = {r.recording_id: r for r in scan(root).recordings}
    r = recs["chb01_01"]
    assert r.bad_channels == (0,) and r.seizures == ((10.0, 20.0),)  # the labels stay visible
    assert any(str(bad) in w and "'FP1-F7'" in w and "no finite scale" in w for w in r.warnings)
    problem = montage_problem(r)
    assert "FP1-F7" in problem and "unusable" in problem
    report = build_cache(list(recs.values()), tmp_path / "cache", root, progress=False, n_jobs=1)
    assert dict(report.skipped)["chb01_01"] == problem
    (kept,) = list_recordings(report.files["chb01"])
    assert kept.recording_id == "chb01_02" and np.isfinite(read_signal(kept.h5_path, "chb01_02")).all()
    p = cli("cache", str(root), "--cache-dir", str(tmp_path / "cli-cache"), "--jobs", "1")
    assert p.returncode == 0 and "skipped chb01_01" in p.stdout and "'FP1-F7'" in p.stdout
    with pytest.raises(DatasetError, match="no finite scale"):
        read_edf_signals(bad, [0])


def test_physical_min_equal_max_drops_a_duplicate_else_the_recording(tmp_path):
    root = chb_root(tmp_path, {"chb01_01.edf": [(10, 20)], "chb01_02.edf": [(30, 40)]})
    first_t8p8 = CHBMIT_23.index("T8-P8")  # CHB-MIT files carry T8-P8 twice (channels 15 and 23)
    patch_field(root / "chb01" / "chb01_01.edf", "physical_min", first_t8p8, "800")
    patch_field(root / "chb01" / "chb01_02.edf", "physical_min", 0, "800")  # FP1-F7: no substitute
    recs = {r.recording_id: r for r in scan(root).recordings}
    assert montage_problem(recs["chb01_01"]) is None
    assert any("physical minimum = maximum = 800" in w and "'T8-P8'" in w for w in recs["chb01_01"].warnings)
    assert "FP1-F7" in montage_problem(recs["chb01_02"])
    report = build_cache(list(recs.values()), tmp_path / "cache", root, progress=False, n_jobs=1)
    assert [s[0] for s in report.skipped] == ["chb01_02"]
    cached = read_signal(report.files["chb01"], "chb01_01")
    duplicate = read_edf_signals(recs["chb01_01"].path, [22])  # the second T8-P8
    expected, _ = preprocess(duplicate, 256.0, PreprocessingConfig())
    np.testing.assert_allclose(cached[DOUBLE_BANANA.index("T8-P8")], expected[0], atol=0.2)


def test_flat_channel_is_dropped_where_the_montage_can_else_the_recording(tmp_path):
    root = chb_root(tmp_path, {"chb01_01.edf": [(10, 20)], "chb01_02.edf": [(30, 40)]})
    flatten_channel(root / "chb01" / "chb01_01.edf", CHBMIT_23.index("T8-P8"))
    flatten_channel(root / "chb01" / "chb01_02.edf", CHBMIT_23.index("P3-O1"))
    recs = discover(root)  # the header is fine: only the samples tell
    report = build_cache(recs, tmp_path / "cache", root, progress=False, n_jobs=1)
    notes, skipped = dict(report.notes), dict(report.skipped)
    assert "channel 'T8-P8' is flat (every sample 7); the montage is built without it" in notes["chb01_01"]
    assert "chb01_02.edf" in skipped["chb01_02"] and "'P3-O1' is flat" in skipped["chb01_02"]
    assert "unusable" in skipped["chb01_02"]
    x = read_signal(report.files["chb01"], "chb01_01")
    assert np.isfinite(x).all() and x.std(axis=1).min() > 1.0  # no flat montage channel cached
    with h5py.File(report.files["chb01"], "r") as f:  # and the notes stay with the file
        assert json.loads(f.attrs["notes"])[0][0] == "chb01_01"


# ----------------------------------------------------------------------------- zero-length EDFs
def test_zero_length_edfs_report_the_real_cause(tmp_path):
    root = chb_root(tmp_path, {"chb01_01.edf": [(10, 20)], "chb01_02.edf": [], "chb01_03.edf": []})
    empty = root / "chb01" / "chb01_02.edf"
    empty.write_bytes(b"")
    header_only = root / "chb01" / "chb01_03.edf"
    h = read_edf_header(header_only)
    header_only.write_bytes(header_only.read_bytes()[:h.header_bytes])
    recs = {r.recording_id: r for r in scan(root).recordings}
    assert montage_problem(recs["chb01_02"]) == f"{empty}: empty file (0 bytes), not an EDF recording; " \
        "recording unusable"
    assert "no data records (0 s of signal)" in montage_problem(recs["chb01_03"])
    report = build_cache(list(recs.values()), tmp_path / "cache", root, progress=False, n_jobs=1)
    reasons = dict(report.skipped)
    assert "empty file (0 bytes)" in reasons["chb01_02"] and "no data records" in reasons["chb01_03"]
    assert not any("cannot build" in why for why in reasons.values())
    p = cli("inspect", str(root), "--warnings")
    assert p.returncode == 0 and "empty file (0 bytes)" in p.stdout


# ----------------------------------------------------------------------------- EDF+D and EDF+ labels
def _bids_edf(path: Path, onsets, annotations=None, seconds_per_part=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = ["Fp1-F7", "F7-T3", "T3-T5", "T5-O1", "Fp2-F8", "F8-T4", "T4-T6", "T6-O2", "Fp1-F3", "F3-C3",
              "C3-P3", "P3-O1", "Fp2-F4", "F4-C4", "C4-P4", "P4-O2", "Fz-Cz", "Cz-Pz"]
    n = len(onsets)
    # each second of signal carries its own record onset in channel 0: placement is checkable
    x = np.random.default_rng(5).normal(0, 10, (len(labels), n * 256))
    for k, onset in enumerate(onsets):
        x[0, k * 256:(k + 1) * 256] = onset
    write_edf(path, x, 256, labels, record_onsets=onsets, annotations=annotations, physical_range=(-500, 500))
    return x


def test_edf_plus_d_records_placed_at_their_onsets(tmp_path):
    eeg = tmp_path / "sub-01" / "ses-01" / "eeg"
    stem = "sub-01_ses-01_task-szMonitoring_run-00"
    onsets = list(range(0, 20)) + list(range(100, 120))  # 80 s gap after 20 s
    _bids_edf(eeg / f"{stem}_eeg.edf", onsets)
    (eeg / f"{stem}_events.tsv").write_text(
        "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"
        "105\t5\tsz\tn/a\tn/a\tn/a\t120\n"   # after the gap: at 5 s of part 2, not at 105 s of 40
        "15\t10\tsz\tn/a\tn/a\tn/a\t120\n"   # runs into the gap: cut at 20 s
        "50\t10\tsz\tn/a\tn/a\tn/a\t120\n")  # inside the gap: no signal
    index = scan(tmp_path)
    parts = {r.recording_id: r for r in index.recordings}
    one, two = parts[f"{stem}-part1"], parts[f"{stem}-part2"]
    assert (one.records, one.start_s, one.duration_s) == ((0, 20), 0.0, 20.0)
    assert (two.records, two.start_s, two.duration_s) == ((20, 40), 100.0, 20.0)
    assert one.seizures == ((15.0, 20.0),) and two.seizures == ((5.0, 10.0),)
    warnings = " ".join(one.warnings)
    assert "2 continuous part(s)" in warnings and "crosses a gap" in warnings and "falls in a gap" in warnings
    report = build_cache(list(index.recordings), tmp_path / "cache", tmp_path, progress=False, n_jobs=1,
                         preprocessing=PreprocessingConfig(l_freq=None, h_freq=None, notch_freq=None, sfreq=None))
    x = read_signal(report.files["sub-01"], f"{stem}-part2")
    assert x.shape == (18, 20 * 256)
    np.testing.assert_allclose(x[0, ::256], np.arange(100, 120), atol=0.02)  # its own records, in order
    assert read_edf_header(one.path).file_type == "EDF+D"


def test_labels_kept_in_edf_plus_annotations(tmp_path):
    eeg = tmp_path / "sub-02" / "eeg"
    _bids_edf(eeg / "sub-02_run-00_eeg.edf", list(range(60)),
              annotations=[(3.0, None, "eyes closed"), (10.0, 5.5, "sz_foc_ia"), (30.0, None, "Seizure start"),
                           (41.0, None, "Seizure end")])
    _bids_edf(eeg / "sub-02_run-01_eeg.edf", list(range(60)), annotations=[(0.0, 60.0, "bckg")])
    _bids_edf(eeg / "sub-02_run-02_eeg.edf", list(range(60)), annotations=[(2.0, None, "eyes open")])
    recs = {r.recording_id: r for r in scan(tmp_path).recordings}
    r = recs["sub-02_run-00"]
    assert r.annotated and r.seizures == ((10.0, 15.5), (30.0, 41.0))
    assert r.seizure_types == ("sz_foc_ia", "sz")
    assert any("labels read from the EDF+ annotation signal (2 seizure(s))" in w for w in r.warnings)
    assert recs["sub-02_run-01"].annotated and recs["sub-02_run-01"].seizures == ()
    assert not recs["sub-02_run-02"].annotated  # annotations, but no label among them


# ----------------------------------------------------------------------------- text encodings
def test_utf8_units_and_labels_are_not_mis_decoded(tmp_path):
    path = tmp_path / "u.edf"
    x = np.random.default_rng(0).normal(0, 30, (3, 256 * 2))
    write_edf(path, x, 256, ["Fp1-F7", "F7-T3", "T3-T5"])
    reference = read_edf_signals(path, [0, 1, 2])
    patch_field(path, "unit", 0, "µV")                 # UTF-8 (2 bytes), as modern tools write it
    patch_field(path, "unit", 1, b"\xb5V")              # latin-1, as older ones do
    patch_field(path, "label", 2, "EEG T3-Réf")
    h = read_edf_header(path)
    assert h.units[:2] == ("µV", "µV") and h.labels[2] == "EEG T3-Réf"
    np.testing.assert_array_equal(read_edf_signals(path, [0, 1, 2], header=h), reference)


def test_utf16_summary_read_with_its_bom_refused_without(tmp_path):
    real = REPO / "tests" / "data" / "chbmit"
    root = tmp_path / "chbmit"
    shutil.copytree(real, root)
    summary = root / "chb05" / "chb05-summary.txt"
    text = summary.read_text(encoding="latin-1")
    expected = {r.recording_id: r.seizures for r in scan(real).recordings}
    summary.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))  # Notepad's "Unicode"
    assert {r.recording_id: r.seizures for r in scan(root).recordings} == expected
    assert sum(len(s) for s in expected.values()) == 5
    summary.write_bytes(text.encode("utf-16-le"))  # no BOM: 39 garbage lines and 0 seizures before
    with pytest.raises(DatasetError, match="UTF-16") as err:
        scan(root)
    assert str(summary) in str(err.value)
    p = cli("inspect", str(root))
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1 and str(summary) in p.stderr


# ----------------------------------------------------------------------------- BIDS events
HEADER = "onset\tduration\teventType\tconfidence\tchannels\tdateTime\trecordingDuration\n"


@pytest.mark.parametrize("row, message", [
    ("10\t5\tseizure\tn/a\tn/a\tn/a\t60", "line 2: eventType 'seizure' is not in the BIDS-score vocabulary.*'sz'"),
    ("nan\t5\tsz\tn/a\tn/a\tn/a\t60", "line 2: onset 'nan' is not a finite number"),
    ("10\tn/a\tsz\tn/a\tn/a\tn/a\t60", "line 2: duration 'n/a' is not a number"),
    ("0\tinf\tbckg\tn/a\tn/a\tn/a\t60", "line 2: duration 'inf' is not a finite number"),
    ("10\t5\tsz_foc_xyz\tn/a\tn/a\tn/a\t60", "eventType 'sz_foc_xyz' is not in the BIDS-score vocabulary"),
    ("10\t5\tsz\t7\tn/a\tn/a\t60", "confidence 7 is outside"),
])
def test_bids_events_outside_the_vocabulary_or_not_numbers_stop_the_index(tmp_path, row, message):
    eeg = tmp_path / "sub-01" / "eeg"
    _bids_edf(eeg / "sub-01_run-00_eeg.edf", list(range(60)))
    events = eeg / "sub-01_run-00_events.tsv"
    events.write_text(HEADER + row + "\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_events(events)
    assert str(events) in str(err.value)
    p = cli("inspect", str(tmp_path))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and str(events) in p.stderr


def test_bids_vocabulary_kept_types(tmp_path):
    p = tmp_path / "e_events.tsv"
    p.write_text(HEADER + "0\t60\tbckg\tn/a\tn/a\tn/a\t60\n10\t5\tsz_gen_m_tonicClonic\t0.5\tn/a\tn/a\t60\n")
    events = read_events(p)
    assert events.seizures == ((10.0, 15.0),) and events.types == ("sz_gen_m_tonicClonic",)


# ----------------------------------------------------------------------------- cache locks
_HOLD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from datamodules.cache import PatientLock
    lock = PatientLock(Path(sys.argv[1]))
    assert lock.try_acquire()
    print("locked", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # SLURM suspend
""")


def test_a_suspended_builder_is_named_and_waited_for_with_a_timeout(tmp_path, caplog, monkeypatch):
    import datamodules.cache as cache

    root = chb_root(tmp_path, {"chb01_01.edf": [(10, 20)]})
    recs = discover(root)
    directory = tmp_path / "cache" / cache.config_hash(root, PreprocessingConfig(), DOUBLE_BANANA)
    directory.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(directory / "chb01.h5")], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(cache, "LOCK_REPORT_S", 0.5)
        with caplog.at_level(logging.WARNING, logger="datamodules.cache"):
            with pytest.raises(CacheLockTimeout) as err:
                build_cache(recs, tmp_path / "cache", root, progress=False, n_jobs=1, lock_timeout_s=2.0)
        message = str(err.value)
        assert f"pid {holder.pid}" in message and "stopped (SIGSTOP, or a suspended SLURM job)" in message
        assert "gave up after 2 s waiting for patient chb01" in message and "chb01.h5.lock" in message
        assert any("waiting" in r.getMessage() and f"pid {holder.pid}" in r.getMessage() for r in caplog.records)
        p = cli("cache", str(root), "--cache-dir", str(tmp_path / "cache"), "--lock-timeout", "1")
        assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: ")
        assert f"pid {holder.pid}" in p.stderr and "Traceback" not in p.stderr
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()
    report = build_cache(recs, tmp_path / "cache", root, progress=False, n_jobs=1, lock_timeout_s=5.0)
    assert report.built == ("chb01",)  # the dead holder's lock is free: the build goes on


# ----------------------------------------------------------------------------- empty patients
@pytest.fixture(scope="module")
def four_patients(tmp_path_factory):
    from datamodules.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("four") / "synthetic"
    generate_corpus(root, n_patients=6, n_recordings=1, minutes=4.0, seed=11)
    return root


def test_patient_without_usable_recording_is_left_out_not_failing_folds(four_patients, tmp_path, caplog):
    from datamodules.datamodule import LOSODataModule

    root = tmp_path / "corpus"
    shutil.copytree(four_patients, root)
    (root / "chb04" / "chb04_01.edf").write_bytes(b"")  # found by the index
    flatten_channel(root / "chb03" / "chb03_01.edf", CHBMIT_23.index("FP1-F7"))  # found by the cache only
    with caplog.at_level(logging.WARNING):
        recs = discover(root)
    assert sorted({r.patient for r in recs}) == ["chb01", "chb02", "chb03", "chb05", "chb06"]
    assert any("patient chb04 has no usable recording, excluded" in r.getMessage() and "0 bytes" in r.getMessage()
               for r in caplog.records)
    dm = LOSODataModule(str(root), "chb01", cache_dir=str(tmp_path / "cache"), progress=False)
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "chb03" not in dm.split.train + dm.split.val and dm.split.train
    assert any("chb03 has no usable recording" in r.getMessage() for r in caplog.records)
    held_out = LOSODataModule(str(root), "chb03", cache_dir=str(tmp_path / "cache"), progress=False)
    with pytest.raises(DatasetError, match="held-out patient chb03 has no usable recording.*'FP1-F7' is flat"):
        held_out.setup("fit")


def test_start_date_kept_for_conversions():
    # meas_date is what converters write as dateTime; the 2 s fixtures keep the real header's
    r = next(r for r in scan(REPO / "tests" / "data" / "siena").recordings if r.recording_id == "PN00-1")
    assert dt.datetime.fromisoformat(r.meas_date).time() == dt.time(19, 39, 33)
