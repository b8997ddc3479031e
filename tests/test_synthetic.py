"""The synthetic CHB-MIT-shaped corpus: layout, bytes, annotations and the physiology behind them.

Corpora here are tiny (1-2 patients x 1 recording x 3-6 min) and built once per module.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from datamodules import synthetic as S
from datamodules.recording import DatasetError
from eeg.montage import CHBMIT_23, DOUBLE_BANANA, derive, soz_channel_mask

REAL = Path(__file__).parent / "data" / "chbmit"
SEED = 11


def _build(root, **kw):
    kw = {"n_patients": 2, "n_recordings": 1, "minutes": 3.0, "seed": SEED, **kw}
    return S.generate_corpus(root, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "corpus"
    return root, _build(root)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """One 6-minute recording that must hold three seizures (numbered summary form)."""
    root = tmp_path_factory.mktemp("synth") / "busy"
    return root, S.generate_corpus(root, n_patients=1, n_recordings=1, minutes=6.0, seed=3,
                                   seizures_per_patient=(3, 3))


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read(path) -> tuple[np.ndarray, list[str], float]:
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated T8-P8 label
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    return raw.get_data() * 1e6, raw.ch_names, raw.info["sfreq"]


# ------------------------------------------------------------------ determinism and layout
def test_same_seed_same_bytes_other_seed_other_bytes(corpus, tmp_path):
    root, _ = corpus
    again = _build(tmp_path / "again")
    assert _files(root) == _files(Path(again.root))
    other = _build(tmp_path / "other", seed=SEED + 1)
    a, b = _files(root), _files(Path(other.root))
    assert a["chb01/chb01_01.edf"] != b["chb01/chb01_01.edf"]


def test_patient_does_not_depend_on_how_many_patients(corpus, tmp_path):
    root, _ = corpus
    one = _build(tmp_path / "one", n_patients=1)
    assert (root / "chb01/chb01_01.edf").read_bytes() == (Path(one.root) / "chb01/chb01_01.edf").read_bytes()


def test_layout_is_chbmit(corpus):
    root, truth = corpus
    names = set(_files(root))
    expected = {"SUBJECT-INFO", "RECORDS", "RECORDS-WITH-SEIZURES", "soz.tsv", S.TRUTH_FILE,
                "chb01/chb01_01.edf", "chb01/chb01-summary.txt",
                "chb02/chb02_01.edf", "chb02/chb02-summary.txt"}
    assert names == expected
    assert (root / "RECORDS").read_text() == "chb01/chb01_01.edf\nchb02/chb02_01.edf\n"
    with_seizures = [r.path for r in truth.recordings if r.seizure_details]
    assert (root / "RECORDS-WITH-SEIZURES").read_text().splitlines() == with_seizures
    assert truth.n_seizures >= 2  # every patient has at least one seizure


def test_subject_info_has_the_real_format(corpus):
    root, truth = corpus
    row = re.compile(r"^chb\d\d\t[FM]\t[ \d]\d(\.\d)?$")
    for text in ((REAL / "SUBJECT-INFO").read_text(), (root / "SUBJECT-INFO").read_text()):
        lines = text.splitlines()
        assert lines[0] == "Case\tGender\tAge (years)" and lines[1] == ""
        assert lines[2:] and all(row.match(line) for line in lines[2:]), lines[2:]
    ours = (root / "SUBJECT-INFO").read_text().splitlines()[2:]
    assert [line.split("\t")[0] for line in ours] == [p.patient for p in truth.patients]


def test_subject_numbers_skip_chb21():
    # CHB-MIT's chb21 is chb01 recorded later; sources merge them into one patient
    assert [S._subject_name(k) for k in (0, 19, 20, 21)] == ["chb01", "chb20", "chb22", "chb23"]


# ------------------------------------------------------------------ EDF bytes
def test_edf_header_bytes(corpus):
    root, truth = corpus
    rec = truth.recordings[0]
    data = (root / rec.path).read_bytes()
    ns = 23
    h = data[:256]
    assert h[0:8] == b"0       "
    assert h[8:88].decode().strip() == "chb01"
    assert h[184:192] == str(256 * (ns + 1)).ljust(8).encode()
    assert h[192:236] == b" " * 44  # plain EDF: no "EDF+C" in the reserved field
    assert int(h[236:244]) == rec.duration_s  # one record per second
    assert h[244:252] == b"1       "
    assert h[252:256] == b"23  "
    assert h[176:184].decode() == rec.start_time.replace(":", ".")  # hh.mm.ss of the summary
    assert re.fullmatch(rb"\d\d\.\d\d\.\d\d", h[168:176])

    sig = data[256:256 * (ns + 1)]

    def field(offset, width):
        return [sig[offset + i * width: offset + (i + 1) * width].decode() for i in range(ns)], offset + ns * width

    labels, o = field(0, 16)
    transducer, o = field(o, 80)
    dim, o = field(o, 8)
    pmin, o = field(o, 8)
    pmax, o = field(o, 8)
    dmin, o = field(o, 8)
    dmax, o = field(o, 8)
    prefilter, o = field(o, 80)
    samples, o = field(o, 8)
    reserved, o = field(o, 32)
    assert o == len(sig)
    assert [s.rstrip() for s in labels] == list(CHBMIT_23) and len(labels[0]) == 16
    assert set(dim) == {"uV      "}
    assert set(pmin) == {"-800    "} and set(pmax) == {"800     "}
    assert set(dmin) == {"-2048   "} and set(dmax) == {"2047    "}
    assert set(samples) == {"256     "}
    assert set(transducer) == set(prefilter) == {" " * 80} and set(reserved) == {" " * 32}
    assert len(data) == 256 * (ns + 1) + rec.duration_s * ns * 256 * 2


def test_mne_reads_the_files(corpus):
    root, truth = corpus
    for rec in truth.recordings:
        x, names, sfreq = _read(root / rec.path)
        assert sfreq == 256.0
        assert x.shape == (23, rec.duration_s * 256)
        assert names[:14] == list(CHBMIT_23[:14]) and names[15:22] == list(CHBMIT_23[15:22])
        # what MNE decodes is the file's int16 samples on the -800..800 uV scale
        raw = np.frombuffer((root / rec.path).read_bytes()[256 * 24:], dtype="<i2")
        digital = raw.reshape(rec.duration_s, 23, 256).transpose(1, 0, 2).reshape(23, -1)
        phys = (digital.astype(float) + 2048) * S.QUANTUM_UV - 800.0
        assert np.allclose(x, phys, atol=1e-6)


def test_values_round_trip_within_the_quantization_step(tmp_path):
    import datetime as dt

    rng = np.random.default_rng(0)
    x = rng.uniform(-790, 790, (23, 3 * 256))
    x[0, :10] = [-900, -800, 800, 900, 0, 0.1, -0.1, 799.9, -799.9, 400]
    path = tmp_path / "t.edf"
    S.write_edf(path, x, dt.datetime(2059, 3, 13, 23, 59, 58), "p", "r")
    y, _, _ = _read(path)
    inside = np.abs(x) <= 800
    assert np.abs(y - x)[inside].max() <= S.QUANTUM_UV / 2 + 1e-9
    assert y[0, 0] == pytest.approx(-800) and y[0, 3] == pytest.approx(800)  # saturates, never wraps
    with pytest.raises(ValueError, match="t.edf"):
        S.write_edf(path, x[:, :100], dt.datetime(2059, 1, 1), "p", "r")


# ------------------------------------------------------------------ summary
_ENTRY = re.compile(
    r"File Name: (?P<name>chb\d\d_\d\d\.edf)\n"
    r"File Start Time: (?P<start>\d\d:\d\d:\d\d)\n"
    r"File End Time: (?P<end>\d{1,2}:\d\d:\d\d)\n"
    r"Number of Seizures in File: (?P<n>\d+)\n"
    r"(?P<seizures>(?:Seizure(?: \d+)? (?:Start|End) Time: \d+ seconds\n)*)"
)
_SEIZURE = re.compile(r"Seizure(?: (\d+))? (Start|End) Time: (\d+) seconds")


def _parse_summary(text: str) -> dict[str, dict]:
    head = ("Data Sampling Rate: 256 Hz\n*************************\n\n"
            "Channels in EDF Files:\n**********************\n"
            + "".join(f"Channel {i}: {c}\n" for i, c in enumerate(CHBMIT_23, 1)) + "\n")
    assert text.startswith(head)
    entries = {}
    body = text[len(head):]
    pos = 0
    while pos < len(body):
        m = _ENTRY.match(body, pos)
        assert m, f"unparsed summary text at {body[pos:pos + 80]!r}"
        lines = _SEIZURE.findall(m["seizures"])
        n = int(m["n"])
        assert len(lines) == 2 * n
        numbers = {num for num, _, _ in lines}
        assert numbers == ({""} if n == 1 else {str(i) for i in range(1, n + 1)} if n else set())
        starts = [int(v) for _, kind, v in lines if kind == "Start"]
        ends = [int(v) for _, kind, v in lines if kind == "End"]
        entries[m["name"]] = {"start": m["start"], "end": m["end"], "seizures": list(zip(starts, ends))}
        pos = m.end()
        if body.startswith("\n", pos):
            pos += 1
    return entries


def _clock(text):
    h, m, s = map(int, text.split(":"))
    return h * 3600 + m * 60 + s


def test_summary_parses_like_the_real_one(corpus, busy):
    real = _parse_summary((REAL / "chb05" / "chb05-summary.txt").read_text())
    assert real["chb05_06.edf"]["seizures"] == [(417, 532)]
    assert real["chb05_08.edf"]["end"] == "1:21:39"  # what our end times imitate
    for root, truth in (corpus, busy):
        for p in truth.patients:
            ours = _parse_summary((root / p.patient / f"{p.patient}-summary.txt").read_text())
            assert list(ours) == [Path(r.path).name for r in p.recordings]
            for r in p.recordings:
                e = ours[Path(r.path).name]
                assert e["seizures"] == [(s.onset_s, s.offset_s) for s in r.seizure_details]
                assert _clock(e["end"]) - _clock(e["start"]) == r.duration_s
    text = (busy[0] / "chb01" / "chb01-summary.txt").read_text()
    assert "Seizure 3 End Time:" in text and "Seizure Start Time" not in text


def test_end_times_pass_midnight_like_the_real_files():
    rec = S.RecordingTruth("chb01_01", "chb01/chb01_01.edf", 3600, S._clock(23 * 3600 + 1292, True),
                           S._clock(23 * 3600 + 1292 + 3600, False), (), ())
    assert (rec.start_time, rec.end_time) == ("23:21:32", "24:21:32")
    assert S._clock(21 * 60 + 39, True) == "00:21:39" and S._clock(3600 + 21 * 60 + 39, False) == "1:21:39"


# ------------------------------------------------------------------ annotations
def _check_plan(truth: S.CorpusTruth, per_patient=(2, 4)):
    lo, hi = S.SEIZURE_DURATION_RANGE_S
    for p in truth.patients:
        assert 1 <= p.n_seizures <= per_patient[1]
        for r in p.recordings:
            spans = [(s.onset_s, s.offset_s) for s in r.seizure_details]
            assert len(spans) <= S.MAX_SEIZURES_PER_RECORDING
            edges = [0] + [v for span in spans for v in span] + [r.duration_s]
            gaps = [b - a for a, b in zip(edges[::2], edges[1::2])]
            assert min(gaps) >= S.MARGIN_S, (r.recording_id, spans)
            assert all(lo <= off - on <= hi for on, off in spans)


def test_seizures_never_overlap_and_keep_margins(corpus, busy):
    _check_plan(corpus[1])
    _check_plan(busy[1], (3, 3))
    assert busy[1].n_seizures == 3
    # and over many plans, without writing signals
    for k in range(300):
        rng = S._rng(99, k)
        phys = S._draw_physiology(rng)
        durations = [int(rng.integers(130, 1200)) for _ in range(int(rng.integers(1, 4)))]
        plans = S._plan_seizures(rng, phys, durations, (2, 4))
        recs = tuple(S.RecordingTruth("x", "x", dur, "", "", tuple(
            S.SeizureTruth(on, off, 0, 0, 0, 0, 0, 0) for on, off in plan), ()) for dur, plan in zip(durations, plans))
        patient = S.PatientTruth("p", (), "", (), "F", 1, recs)
        _check_plan(S.CorpusTruth("", S.GenerationParams(), (patient,)))


def test_soz_tsv_holds_the_truth(corpus):
    from datamodules.sources.soz import read_soz_tsv

    root, truth = corpus
    lines = (root / "soz.tsv").read_text().splitlines()
    assert lines[0] == "patient\telectrodes\tregion"
    assert read_soz_tsv(root / "soz.tsv") == truth.soz()
    for p in truth.patients:
        assert 2 <= len(p.soz) <= 3 and p.soz_weights[0] == 1.0
        assert len(set(p.soz_weights)) == len(p.soz)  # unequal, so bipolar pairs do not cancel
    assert len({p.soz for p in truth.patients}) == len(truth.patients)


def test_discover_returns_exactly_what_was_written(corpus, busy):
    from datamodules.sources import discover

    for root, truth in (corpus, busy):
        recs = discover(root)
        assert [r.recording_id for r in recs] == [r.recording_id for r in truth.recordings]
        for r in recs:
            p = truth.patient(r.patient)
            assert r.seizures == truth.seizures()[r.recording_id]
            assert (r.soz, r.soz_region) == (p.soz, p.region)
            assert r.channels == CHBMIT_23 and r.sfreq == 256.0 and r.annotated and not r.warnings
            assert r.duration_s == next(t.duration_s for t in p.recordings if t.recording_id == r.recording_id)


# ------------------------------------------------------------------ physiology
def _band_power(x, lo, hi):
    """Mean square (uV^2) of ``x`` between ``lo`` and ``hi`` Hz, per row (Parseval)."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1 / 256)
    p = 2 * np.abs(np.fft.rfft(x, axis=-1)) ** 2 / n ** 2
    return p[..., (f >= lo) & (f < hi)].sum(-1)


def test_seizures_are_focal_strong_and_evolving(corpus, busy):
    """Measured on the files: ictal power in onset-zone channels against their background and
    against the other channels, fast activity at onset, frequency falling during the seizure."""
    d = derive(CHBMIT_23)
    ratios = []
    for root, truth in (corpus, busy):
        for p in truth.patients:
            soz = soz_channel_mask(DOUBLE_BANANA, p.soz).astype(bool)
            for rec in p.recordings:
                y = d.apply(_read(root / rec.path)[0]).astype(float)
                ictal = np.zeros(y.shape[1], bool)
                for s in rec.seizure_details:
                    ictal[s.onset_s * 256:(s.offset_s + 60) * 256] = True  # post-ictal too
                # background power of a typical second (a rare saturated pop would dominate a mean)
                quiet = y[:, ~ictal][:, :(~ictal).sum() // 256 * 256].reshape(len(y), -1, 256)
                bg = np.median(np.mean(quiet ** 2, axis=2), axis=1)
                rms = np.sqrt(bg)
                assert 8 < rms.min() and rms.max() < 60, rms  # bipolar EEG, not noise or clipping
                for s in rec.seizure_details:
                    seg = y[:, s.onset_s * 256:s.offset_s * 256]
                    power = np.mean(seg ** 2, axis=1)
                    r = (power[soz].mean() / bg[soz].mean(), power[soz].mean() / power[~soz].mean(),
                         (power / bg)[soz].max(), (power / bg)[~soz].mean())
                    ratios.append(r)
                    assert r[0] > 2.0 and r[1] > 1.5 and r[2] > 2.5 and r[3] < r[0], (r, s)
                    # low-voltage fast activity (15-25 Hz) opens the seizure in the onset zone
                    lv = y[soz, s.onset_s * 256:int((s.onset_s + s.lvfa_s) * 256)]
                    ref = y[soz][:, ~ictal]
                    ref = ref[:, :ref.shape[1] // 256 * 256].reshape(len(ref), -1, 256)
                    # against the typical second of background (muscle bursts are rare, not typical)
                    fast = _band_power(lv, 14, 27) / np.median(_band_power(ref, 14, 27), axis=1)
                    assert fast.max() > 3 and np.median(fast) > 1.5, (fast, s)
                    # the discharges slow down: dominant frequency early > late
                    best = np.argmax((power / bg) * soz)
                    start = int((s.onset_s + s.lvfa_s) * 256)
                    third = (s.offset_s * 256 - start) // 3
                    f = np.fft.rfftfreq(third, 1 / 256)
                    keep = (f > 1.5) & (f < 12)

                    def peak(a, f=f, keep=keep):
                        return f[keep][np.argmax(np.abs(np.fft.rfft(a))[keep])]

                    early, late = peak(y[best, start:start + third]), peak(y[best, start + 2 * third:start + 3 * third])
                    assert early > late + 0.5, (early, late, s)
    assert len(ratios) >= 4
    median = np.median(ratios, axis=0)
    assert median[0] > 4 and median[1] > 2.5 and median[2] > 5, median


def test_saturation_only_in_electrode_pops(corpus, busy):
    for root, truth in (corpus, busy):
        for rec in truth.recordings:
            x, _, _ = _read(root / rec.path)
            t = np.flatnonzero((np.abs(x) >= 800 - S.QUANTUM_UV).any(axis=0)) / 256
            pops = [(e.onset_s, e.onset_s + e.duration_s) for e in rec.events if e.kind == "pop"]
            assert all(any(a - 0.01 <= v <= b for a, b in pops) for v in t)


def test_artifacts_and_hard_negatives_are_written(corpus):
    root, truth = corpus
    kinds = {e.kind for r in truth.recordings for e in r.events}
    assert {"blink", "muscle", "rhythmic_burst", "interictal_spike"} <= kinds
    for r in truth.recordings:
        for e in r.events:
            assert 0 <= e.onset_s and e.onset_s + e.duration_s <= r.duration_s
            if e.hard_negative:  # never inside or right next to a seizure
                before, after = S._HARD_NEGATIVE_GUARD_S
                assert all(e.onset_s + e.duration_s < s.onset_s - before or e.onset_s > s.offset_s + after
                           for s in r.seizure_details)
    # blinks are large frontal deflections: FP1-F7 jumps during them
    d = derive(CHBMIT_23)
    rec = truth.recordings[0]
    y = d.apply(_read(root / rec.path)[0])
    blinks = [e for e in rec.events if e.kind == "blink"]
    assert blinks
    fp1_f7 = DOUBLE_BANANA.index("FP1-F7")
    during = [np.ptp(y[fp1_f7, int(e.onset_s * 256):int((e.onset_s + e.duration_s) * 256)]) for e in blinks]
    assert np.median(during) > 80


def test_clean_corpus_has_no_events(tmp_path):
    truth = _build(tmp_path / "clean", n_patients=1, artifacts=0.0)
    assert all(not r.events for r in truth.recordings)


# ------------------------------------------------------------------ reuse, errors, CLI
def test_truth_round_trip_and_reuse(corpus, tmp_path):
    root, truth = corpus
    assert S.load_truth(root) == truth
    edf = root / "chb01" / "chb01_01.edf"
    before = edf.stat().st_mtime_ns
    assert _build(root) == truth  # same parameters: reused, not rewritten
    assert edf.stat().st_mtime_ns == before
    with pytest.raises(DatasetError, match="other parameters"):
        _build(root, seed=SEED + 5)


def test_overwrite_replaces_a_synthetic_corpus_only(tmp_path):
    root = tmp_path / "c"
    first = _build(root, n_patients=1)
    second = _build(root, n_patients=1, seed=SEED + 1, overwrite=True)
    assert second.params.seed == SEED + 1 and S.load_truth(root) == second and first != second
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "chb01").mkdir()
    with pytest.raises(DatasetError, match="refusing"):
        _build(foreign, overwrite=True)
    assert (foreign / "chb01").is_dir()
    with pytest.raises(DatasetError, match="not a synthetic corpus"):
        S.load_truth(foreign)


def test_bad_parameters_are_named(tmp_path):
    with pytest.raises(ValueError, match="minutes"):
        _build(tmp_path / "a", minutes=2.0)
    with pytest.raises(ValueError, match="seizures per patient"):
        _build(tmp_path / "b", seizures_per_patient=(3, 2))
    with pytest.raises(ValueError, match="patient"):
        _build(tmp_path / "c", n_patients=0)
    assert not (tmp_path / "a").exists()


def test_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    S.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args([str(out), "--patients", "1", "--recordings", "1", "--minutes", "3",
                              "--seed", str(SEED), "--seizures", "1", "1", "--artifacts", "0.5"])
    assert S.run(args) == 0
    text = capsys.readouterr()
    assert "1 patients, 1 recordings" in text.out and "chb01_01.edf" in text.err
    truth = S.load_truth(out)
    assert truth.params == S.GenerationParams(1, 1, 3.0, SEED, (1, 1), 0.5)
    assert S.run(parser.parse_args([str(tmp_path / "x"), "--minutes", "1"])) == 2
    assert "minutes" in capsys.readouterr().err
