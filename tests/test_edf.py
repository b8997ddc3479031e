"""EDF header parsing and sample reading, checked against MNE and edfio on real and written files."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import mne
import numpy as np
import pytest

from datamodules.edf import (
    EdfHeader,
    continuous_parts,
    read_edf_annotations,
    read_edf_header,
    read_edf_signals,
    write_edf,
)
from datamodules.recording import DatasetError
from eeg.montage import CHBMIT_23

FIXTURES = Path(__file__).parent / "data" / "chbmit" / "chb05"
REAL = sorted(FIXTURES.glob("chb05_*.edf"))


def mne_microvolts(path) -> np.ndarray:
    return mne.io.read_raw_edf(path, preload=True, verbose="error").get_data() * 1e6


def patch(path: Path, offset: int, text: str) -> None:
    """Overwrite header bytes in place (the way a broken writer would have left them)."""
    data = bytearray(path.read_bytes())
    data[offset:offset + len(text)] = text.encode("latin-1")
    path.write_bytes(bytes(data))


@pytest.fixture
def written(tmp_path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 40, size=(4, 256 * 5))
    path = tmp_path / "w.edf"
    write_edf(path, x, 256, ["FP1-F7", "F7-T7", "-", "T8-P8"], start=dt.datetime(2001, 2, 3, 4, 5, 6))
    return path, x


def test_real_header_fields():
    h = read_edf_header(FIXTURES / "chb05_06.edf")
    assert isinstance(h, EdfHeader)
    assert h.labels == CHBMIT_23  # duplicated T8-P8 kept, EDF Annotations skipped
    assert h.annotation_signals == 1
    assert h.file_type == "EDF+C"
    assert h.n_records == 2 and h.record_duration_s == 1.0 and h.duration_s == 2.0
    assert set(h.sfreqs) == {256.0} and set(h.samples_per_record) == {256}
    assert set(h.units) == {"uV"}
    assert set(h.physical_min) == {-800.0} and set(h.physical_max) == {800.0}
    assert set(h.digital_min) == {-2048} and set(h.digital_max) == {2047}
    assert h.start == dt.datetime(2059, 3, 13, 22, 21, 25)
    assert h.warnings == ()


@pytest.mark.parametrize("path", REAL[::6], ids=lambda p: p.name)
def test_real_signals_equal_mne(path):
    h = read_edf_header(path)
    ours = read_edf_signals(path, range(h.n_channels))
    assert ours.dtype == np.float32 and ours.shape == (23, 512)
    np.testing.assert_allclose(ours, mne_microvolts(path), rtol=0, atol=1e-3)


def test_written_file_equal_mne_and_source(written):
    path, x = written
    h = read_edf_header(path)
    assert h.labels == ("FP1-F7", "F7-T7", "-", "T8-P8")
    assert h.start == dt.datetime(2001, 2, 3, 4, 5, 6)
    assert h.file_type == "EDF" and h.duration_s == 5.0
    ours = read_edf_signals(path, range(4))
    np.testing.assert_allclose(ours, mne_microvolts(path), rtol=0, atol=1e-3)
    step = (x.max() - x.min() + 2) / 65535  # one digital step in uV
    np.testing.assert_allclose(ours, x, rtol=0, atol=step)


def test_sample_ranges_and_channel_order(written):
    path, _ = written
    full = read_edf_signals(path, range(4))
    for start, stop in [(0, 1), (100, 900), (255, 257), (256, 512), (1000, 1280), (7, 7)]:
        part = read_edf_signals(path, [3, 0], start, stop)
        np.testing.assert_array_equal(part, full[[3, 0], start:stop])
    assert read_edf_signals(path, [1], 1200).shape == (1, 80)


def test_edfio_file_with_units_rates_and_annotations(tmp_path):
    import edfio

    rng = np.random.default_rng(1)
    eeg = rng.normal(0, 50, 256 * 4)
    millivolt = rng.normal(0, 0.05, 256 * 4)  # 50 uV written in mV
    volt = rng.normal(0, 5e-5, 256 * 4)  # 50 uV written in V
    slow = rng.normal(0, 50, 64 * 4)
    edf = edfio.Edf(
        [edfio.EdfSignal(eeg, 256, label="Fp1-F7", physical_dimension="uV"),
         edfio.EdfSignal(millivolt, 256, label="F7-T3", physical_dimension="mV"),
         edfio.EdfSignal(volt, 256, label="T3-T5", physical_dimension="V"),
         edfio.EdfSignal(slow, 64, label="ECG", physical_dimension="uV")],
        annotations=[edfio.EdfAnnotation(1.0, 2.0, "sz")],
    )
    path = tmp_path / "edfio.edf"
    edf.write(path)
    h = read_edf_header(path)
    assert h.labels == ("Fp1-F7", "F7-T3", "T3-T5", "ECG")
    assert h.file_type == "EDF+C" and h.annotation_signals == 1
    assert h.sfreqs == (256.0, 256.0, 256.0, 64.0)
    fast = read_edf_signals(path, [0, 1, 2])
    reference = mne_microvolts(path)[:3]  # MNE upsamples the 64 Hz channel; compare 256 Hz ones
    np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-3)
    back = edfio.read_edf(path)
    np.testing.assert_allclose(fast[1], back.signals[1].data * 1e3, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(read_edf_signals(path, [3])[0], back.signals[3].data, rtol=1e-5, atol=1e-3)
    with pytest.raises(DatasetError, match="different sampling rates"):
        read_edf_signals(path, [0, 3])


def test_record_count_minus_one_taken_from_file_size(written):
    path, _ = written
    patch(path, 236, "-1      ")
    h = read_edf_header(path)
    assert h.n_records == 5
    assert any("-1 data records" in w and str(path) in w for w in h.warnings)


def test_truncated_data_uses_whole_records(written):
    path, x = written
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 300])  # cut into the last record
    h = read_edf_header(path)
    assert h.n_records == 4
    assert any("truncated" in w for w in h.warnings)
    np.testing.assert_allclose(read_edf_signals(path, [0], header=h)[0], x[0, :1024], atol=0.01)


def test_trailing_bytes_warned(written):
    path, _ = written
    path.write_bytes(path.read_bytes() + b"\0" * 10)
    h = read_edf_header(path)
    assert h.n_records == 5 and any("10 bytes after" in w for w in h.warnings)


def test_edf_plus_d_record_onsets_parts_and_annotations(tmp_path):
    import edfio

    x = np.random.default_rng(4).normal(0, 30, (2, 256 * 6))
    path = tmp_path / "d.edf"
    write_edf(path, x, 256, ["Fp1-F7", "F7-T3"], record_onsets=[0, 1, 2, 10.5, 11.5, 12.5],
              annotations=[(1.5, 2.0, "sz"), (11.0, None, "Résumé")])
    h = read_edf_header(path)
    assert h.file_type == "EDF+D" and h.annotation_signals == 1 and h.labels == ("Fp1-F7", "F7-T3")
    ann = read_edf_annotations(path, h)
    np.testing.assert_array_equal(ann.record_onsets, [0, 1, 2, 10.5, 11.5, 12.5])
    assert [(e.onset_s, e.duration_s, e.text) for e in ann.events] == [(1.5, 2.0, "sz"), (11.0, None, "Résumé")]
    parts = continuous_parts(h, ann.record_onsets)
    assert [(p.first, p.stop, p.onset_s, p.duration_s) for p in parts] == [(0, 3, 0.0, 3.0), (3, 6, 10.5, 3.0)]
    back = edfio.read_edf(path)  # an independent reader agrees on annotations and samples
    assert [(a.onset, a.duration, a.text) for a in back.annotations] == [(1.5, 2.0, "sz"), (11.0, None, "Résumé")]
    np.testing.assert_allclose(read_edf_signals(path, [0, 1], header=h), x, atol=0.01)


def test_edf_plus_records_out_of_order_raise(tmp_path):
    path = tmp_path / "bad.edf"
    write_edf(path, np.zeros((1, 256 * 3)), 256, ["Fp1-F7"], record_onsets=[0, 5, 4.5])
    with pytest.raises(DatasetError, match="record 2 starts at 4.5 s, before record 1"):
        read_edf_annotations(path)


def test_plain_edf_has_back_to_back_records(written):
    path, _ = written
    ann = read_edf_annotations(path)
    np.testing.assert_array_equal(ann.record_onsets, np.arange(5.0))
    assert ann.events == ()


@pytest.mark.parametrize("pmin, pmax, message", [
    ("-1e308", "1e308", "no finite scale"), ("800", "800", "physical minimum = maximum = 800"),
    ("-1e38", "1e38", "no finite scale"),
])
def test_scales_that_are_not_finite_or_flat_are_refused(written, pmin, pmax, message):
    path, _ = written
    ns = 4
    base = 256 + ns * (16 + 80 + 8)
    patch(path, base, pmin.ljust(8))
    patch(path, base + ns * 8, pmax.ljust(8))
    h = read_edf_header(path)
    assert message in h.channel_problem(0) and h.channel_problem(1) is None
    with pytest.raises(DatasetError, match=message) as err:
        read_edf_signals(path, [0], header=h)
    assert str(path) in str(err.value) and "'FP1-F7'" in str(err.value)


def test_empty_and_recordless_files(tmp_path, written):
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="empty file \\(0 bytes\\)"):
        read_edf_header(empty)
    path, _ = written
    h = read_edf_header(path)
    path.write_bytes(path.read_bytes()[:h.header_bytes])
    h = read_edf_header(path)
    assert h.n_records == 0 and any("no data records (0 s of signal)" in w for w in h.warnings)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:100], "truncated EDF header"),
        (lambda b: b[:256 + 100], "truncated EDF header"),
        (lambda b: b"\x00garbage" * 64, "not an EDF file"),
        (lambda b: b[:252] + b"xx  " + b[256:], "number of signals"),
        (lambda b: b[:244] + b"abc     " + b[252:], "data record duration"),
        (lambda b: b"\xffBIOSEMI" + b[8:], "BDF"),
    ],
    ids=["short-fixed", "short-signals", "garbage", "ns", "duration", "bdf"],
)
def test_corrupt_headers_raise_naming_file(written, mutate, message):
    path, _ = written
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(DatasetError, match=message) as err:
        read_edf_header(path)
    assert str(path) in str(err.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_edf_header(tmp_path / "nope.edf")


def test_units_unknown_and_empty(written):
    path, x = written
    ns = 4
    unit_offset = 256 + ns * (16 + 80)
    patch(path, unit_offset, "mmHg    ")  # channel 0
    patch(path, unit_offset + 8, "        ")  # channel 1: no unit
    h = read_edf_header(path)
    assert any("'F7-T7' has no unit" in w for w in h.warnings)
    with pytest.raises(DatasetError, match="not a voltage"):
        read_edf_signals(path, [0], header=h)
    np.testing.assert_allclose(read_edf_signals(path, [1])[0], x[1], atol=0.01)  # taken as uV


def test_bad_ranges_raise(written):
    path, _ = written
    with pytest.raises(DatasetError, match="outside"):
        read_edf_signals(path, [0], 10, 5)
    with pytest.raises(DatasetError, match="outside"):
        read_edf_signals(path, [0], 0, 5 * 256 + 1)
    with pytest.raises(DatasetError, match="out of range"):
        read_edf_signals(path, [4])


def test_write_edf_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="whole records"):
        write_edf(tmp_path / "x.edf", np.zeros((1, 300)), 256, ["A"])
    with pytest.raises(ValueError, match="labels"):
        write_edf(tmp_path / "x.edf", np.zeros((2, 256)), 256, ["A"])
