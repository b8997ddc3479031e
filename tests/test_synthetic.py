"""The synthetic CHB-MIT-shaped corpus: layout, bytes, annotations, presets, reuse and the CLI.

Corpora here are tiny (1-2 patients, minutes of EEG) and built once per module; what the signals
hold is tested in ``test_synthetic_physiology.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from datamodules import synthetic as S
from datamodules.recording import DatasetError
from datamodules.synthetic import params as P
from datamodules.synthetic import seizures as Z
from datamodules.synthetic.annotations import clock
from datamodules.synthetic.corpus import _recording_lengths
from datamodules.synthetic.primitives import rng_for, subject_name
from eeg.montage import CHBMIT_23

REAL = Path(__file__).parent / "data" / "chbmit"
SEED = 11


def _build(root, **kw):
    kw = {"preset": "easy", "n_patients": 2, "n_recordings": 1, "minutes": 3.0, "seed": SEED, **kw}
    return S.generate_corpus(root, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "corpus"
    return root, _build(root)


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """One 7-minute recording that must hold three seizures (numbered summary form)."""
    root = tmp_path_factory.mktemp("synth") / "busy"
    return root, S.generate_corpus(root, preset="easy", n_patients=1, n_recordings=1, minutes=7.0, seed=3,
                                   seizures_per_patient=(3, 3), seizure_s=(10, 20))


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    """Two patients of the realistic preset, 2 recordings each, shortened to 7-10 minutes."""
    root = tmp_path_factory.mktemp("synth") / "realistic"
    return root, S.generate_corpus(root, n_patients=2, n_recordings=2, minutes=8.0, seed=5)


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
def test_same_seed_same_bytes_other_seed_other_bytes(corpus, realistic, tmp_path):
    root, _ = corpus
    again = _build(tmp_path / "again")
    assert _files(root) == _files(Path(again.root))
    other = _build(tmp_path / "other", seed=SEED + 1)
    assert _files(root)["chb01/chb01_01.edf"] != _files(Path(other.root))["chb01/chb01_01.edf"]
    # the realistic preset too (sleep, artifacts, propagation, marking error)
    r_root, r_truth = realistic
    one = S.generate_corpus(tmp_path / "r1", n_patients=1, n_recordings=2, minutes=8.0, seed=5)
    assert (r_root / "chb01/chb01_02.edf").read_bytes() == (Path(one.root) / "chb01/chb01_02.edf").read_bytes()
    assert one.patients[0] == r_truth.patients[0]


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
    assert [subject_name(k) for k in (0, 19, 20, 21)] == ["chb01", "chb20", "chb22", "chb23"]


# ------------------------------------------------------------------ EDF bytes
def test_edf_header_and_the_12_bit_grid(corpus):
    """Written through datamodules.edf.write_edf: plain EDF, 1 s records at 256 Hz, -800..800 uV,
    and the values on the real CHB-MIT amplifier's 12-bit steps."""
    from datamodules.edf import read_edf_header

    root, truth = corpus
    rec = truth.recordings[0]
    path = root / rec.path
    data = path.read_bytes()
    h = data[:256]
    assert h[8:88].decode().strip() == "chb01"
    assert h[192:236] == b" " * 44  # plain EDF: no "EDF+C" in the reserved field
    assert h[176:184].decode() == rec.start_time.replace(":", ".")  # hh.mm.ss of the summary
    head = read_edf_header(path)
    assert head.labels == CHBMIT_23 and head.n_records == rec.duration_s and head.record_duration_s == 1.0
    assert set(head.physical_min) == {-800.0} and set(head.physical_max) == {800.0}
    assert set(head.sfreqs) == {256.0} and set(head.units) == {"uV"}
    assert len(data) == 256 * 24 + rec.duration_s * 23 * 256 * 2
    x, names, sfreq = _read(path)
    assert sfreq == 256.0 and x.shape == (23, rec.duration_s * 256)
    steps = (x + 800.0) / S.QUANTUM_UV
    # multiples of 1600/4095 uV, up to half a step of the 16-bit storage (1600/65535 uV)
    assert np.abs(steps - np.round(steps)).max() <= 0.5 * 4095 / 65535 + 1e-6
    assert np.abs(x).max() <= 800.0 + 1e-6


def test_mne_reads_every_file(corpus, realistic):
    for root, truth in (corpus, realistic):
        for rec in truth.recordings:
            x, names, sfreq = _read(root / rec.path)
            assert x.shape == (23, rec.duration_s * 256) and sfreq == 256.0
            assert names[:14] == list(CHBMIT_23[:14])


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


def test_summary_parses_like_the_real_one(corpus, busy, realistic):
    real = _parse_summary((REAL / "chb05" / "chb05-summary.txt").read_text())
    assert real["chb05_06.edf"]["seizures"] == [(417, 532)]
    assert real["chb05_08.edf"]["end"] == "1:21:39"  # what our end times imitate
    for root, truth in (corpus, busy, realistic):
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
    assert clock(23 * 3600 + 1292, True) == "23:21:32" and clock(23 * 3600 + 1292 + 3600, False) == "24:21:32"
    assert clock(21 * 60 + 39, True) == "00:21:39" and clock(3600 + 21 * 60 + 39, False) == "1:21:39"


def test_inspect_returns_exactly_the_annotated_seizures_and_onset_zones(corpus, realistic):
    from datamodules.__main__ import main

    for root, truth in (corpus, realistic):
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(["inspect", str(root), "--json"]) == 0
        index = json.loads(out.getvalue())
        recs = index["recordings"]
        assert [r["recording_id"] for r in recs] == [r.recording_id for r in truth.recordings]
        for r in recs:
            t = truth.recording(r["recording_id"])
            p = truth.patient(r["patient"])
            assert [tuple(s) for s in r["seizures"]] == list(t.seizures)
            assert tuple(r["soz"]) == p.soz and r["soz_region"] == p.region
            assert not r["warnings"]


# ------------------------------------------------------------------ annotations and plans
def _check_plan(truth: S.CorpusTruth, per_patient=(2, 4)):
    for p in truth.patients:
        assert 1 <= p.n_seizures <= per_patient[1]
        for r in p.recordings:
            spans = [(s.true_onset_s, s.true_offset_s) for s in r.seizure_details]
            assert len(spans) <= Z.MAX_SEIZURES_PER_RECORDING
            assert all(on >= P.MARGIN_S and r.duration_s - off >= P.MARGIN_S for on, off in spans)
            assert all(b[0] - a[1] >= Z.SEIZURE_GAP_S for a, b in zip(spans, spans[1:]))
            assert all(0 < s.onset_s < s.offset_s < r.duration_s for s in r.seizure_details)


def test_seizures_never_overlap_and_keep_margins(corpus, busy, realistic):
    _check_plan(corpus[1])
    _check_plan(busy[1], (3, 3))
    _check_plan(realistic[1])
    assert busy[1].n_seizures == 3


@pytest.mark.parametrize("preset", ["realistic", "easy"])
def test_many_plans_follow_the_preset(preset):
    """Without writing signals: recordings, hours, seizure counts, durations and seizure-free files."""
    params = P.resolve(preset)
    durations_all, shortest = [], []
    for k in range(300):
        rng = rng_for(99, k)
        style = Z.draw_style(rng, params)
        lengths = _recording_lengths(rng, params)
        lo_r, hi_r = params.n_recordings
        assert lo_r <= len(lengths) <= hi_r
        if params.hours is not None:
            assert params.hours[0] * 3600 - 2 <= sum(lengths) <= params.hours[1] * 3600 + 2
        plans = Z.plan_seizures(rng, style, lengths, params)
        n = sum(len(p) for p in plans)
        assert params.seizures_per_patient[0] <= n <= params.seizures_per_patient[1]
        assert sum(not p for p in plans) >= min(params.seizure_free_recordings, len(plans) - 1)
        for t, plan in zip(lengths, plans):
            for (on, off), nxt in zip(plan, plan[1:] + [(t + Z.SEIZURE_GAP_S, None)]):
                assert on >= P.MARGIN_S and nxt[0] - off >= min(Z.SEIZURE_GAP_S, P.MARGIN_S)
                durations_all.append(off - on)
        shortest.append(min((off - on for p in plans for on, off in p), default=np.inf))
    d = np.array(durations_all)
    assert d.min() >= params.seizure_s[0] - 1e-6 and d.max() <= params.seizure_s[1] + 1e-6
    if preset == "realistic":
        assert 0.05 < np.mean(d < 10) < 0.35  # heavy tail with some very short seizures
        assert np.percentile(d, 95) > 60


def test_marking_error_follows_the_preset(corpus, realistic):
    for s in corpus[1].patients[0].seizure_details:  # easy: exact marks
        assert (s.onset_s, s.offset_s) == (s.true_onset_s, s.true_offset_s)
    params = P.resolve("realistic")
    errs_on, errs_off = [], []
    for k in range(400):
        rng = rng_for(1, k)
        on, dur = 100.0 + rng.uniform(0, 1), float(rng.uniform(6, 150))
        a, b = Z.mark(rng, on, on + dur, 3600, params)
        assert isinstance(a, int) and isinstance(b, int) and b > a
        errs_on.append(a - on)
        errs_off.append(b - (on + dur))
    errs_on, errs_off = np.array(errs_on), np.array(errs_off)
    assert -3.5 <= errs_on.min() and errs_on.max() <= 10.5 and np.mean(errs_on > 0) > 0.6  # late, mostly
    assert np.abs(errs_off).max() <= 10.5 + 0.5 * 150 and np.median(np.abs(errs_off)) > 2
    for s in realistic[1].patients[0].seizure_details:
        assert -3.5 <= s.onset_s - s.true_onset_s <= 10.5


def test_soz_tsv_and_truth_file(corpus, realistic):
    from datamodules.sources.soz import read_soz_tsv

    for root, truth in (corpus, realistic):
        assert (root / "soz.tsv").read_text().splitlines()[0] == "patient\telectrodes\tregion"
        assert read_soz_tsv(root / "soz.tsv") == truth.soz()
        for p in truth.patients:
            assert 2 <= len(p.soz) <= 3 and p.soz_weights[0] == 1.0
            assert len(set(p.soz_weights)) == len(p.soz)  # unequal, so bipolar pairs do not cancel
            for s in p.seizure_details:
                assert s.morphology in S.MORPHOLOGIES and 0.5 <= s.band_hz[0] < s.band_hz[1] <= 12
        assert len({p.soz for p in truth.patients}) == len(truth.patients)
    # the truth file keeps true and annotated times side by side
    body = json.loads((realistic[0] / S.TRUTH_FILE).read_text())
    sz = [s for r in body["patients"][0]["recordings"] for s in r["seizure_details"]]
    assert {"onset_s", "offset_s", "true_onset_s", "true_offset_s", "band_hz", "morphology"} <= set(sz[0])


def test_realistic_patients_keep_a_seizure_free_recording(realistic):
    for p in realistic[1].patients:
        assert sum(not r.seizure_details for r in p.recordings) >= 1
        assert 1 <= p.n_seizures <= 4


# ------------------------------------------------------------------ presets and knobs
def test_presets_and_knobs():
    easy, real = P.resolve("easy"), P.resolve("realistic")
    assert real.hours == (1.5, 2.0) and real.n_recordings == (2, 4) and real.minutes is None
    assert real.ictal_gain == (1.2, 3.0) and real.seizure_s == (6.0, 150.0) and real.onset_error_s == (-3.0, 10.0)
    assert easy.minutes == 12.0 and easy.onset_error_s == (0.0, 0.0) and easy.propagation == 0.0
    p = P.resolve("realistic", hours=1, n_recordings=3, rates={"muscle": 5})
    assert p.hours == (1.0, 1.0) and p.n_recordings == (3, 3) and p.rate("muscle") == 5.0
    assert p.rate("chewing") == real.rate("chewing")
    assert P.resolve("easy", hours=0.5).minutes is None  # hours replace the preset's recording length
    assert P.GenerationParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("knobs, message", [
    ({"preset": "hard"}, "unknown synthetic corpus preset 'hard'"),
    ({"colour": 3}, "unknown synthetic corpus option 'colour'"),
    ({"n_patients": 0}, "n_patients"),
    ({"seizures_per_patient": (3, 2)}, "seizures_per_patient must be min <= max"),
    ({"minutes": 2.0}, "minutes 2 is too short"),
    ({"ictal_gain": (0, 2)}, "ictal_gain"),
    ({"morphologies": ("tonic",)}, "morphologies must be among"),
    ({"propagation": 1.5}, "propagation is a share"),
    ({"rates": {"sneezing": 3}}, "unknown artifact kind 'sneezing'"),
    ({"rates": {"muscle": -1}}, "rate of muscle"),
    ({"onset_error_s": (5, -3)}, "onset_error_s must be min <= max"),
    ({"n_recordings": 1.5}, "whole numbers"),
])
def test_bad_knobs_are_named(tmp_path, knobs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        S.generate_corpus(tmp_path / "x", **{"preset": "easy", **knobs}) if "preset" not in knobs \
            else S.generate_corpus(tmp_path / "x", **knobs)
    assert not (tmp_path / "x").exists()


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


def test_a_corpus_of_an_older_generator_is_replaced_only_with_overwrite(tmp_path):
    root = tmp_path / "old"
    root.mkdir()
    (root / S.TRUTH_FILE).write_text(json.dumps({"root": ".", "params": {"n_patients": 6}, "patients": []}))
    with pytest.raises(DatasetError, match="unreadable synthetic corpus truth"):
        _build(root)
    assert _build(root, n_patients=1, overwrite=True).params.n_patients == 1


def _cli(*argv):
    from datamodules.__main__ import build_parser

    return build_parser("synth").parse_args(["synth", *map(str, argv)])


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    args = _cli(out, "--preset", "easy", "--patients", "1", "--recordings", "1", "--minutes", "3", "--seed", SEED,
                "--seizures", "1", "1", "--artifacts", "0.5", "--rate", "muscle=30", "--ictal-gain", "3", "4")
    assert S.run(args) == 0
    text = capsys.readouterr()
    assert "easy preset, 1 patients, 1 recordings" in text.out and "chb01_01.edf" in text.err
    truth = S.load_truth(out)
    assert truth.params == P.resolve("easy", n_patients=1, n_recordings=1, minutes=3, seed=SEED,
                                     seizures_per_patient=1, artifacts=0.5, rates={"muscle": 30}, ictal_gain=(3, 4))
    # every knob has an option
    parser = argparse.ArgumentParser()
    S.add_arguments(parser)
    dests = {a.dest for a in parser._actions}
    knobs = set(P.GenerationParams.__dataclass_fields__) - {"preset", "version", "rates"}
    assert knobs <= dests and {"preset", "rate", "overwrite"} <= dests


@pytest.mark.parametrize("argv, message", [
    (["--minutes", "1"], "minutes 1 is too short"),
    (["--rate", "muscle"], "must read KIND=PER_HOUR"),
    (["--rate", "sneezing=3"], "unknown artifact kind"),
    (["--hours", "1", "2", "3"], "--hours takes one or two values"),
    (["--morphologies", "tonic"], "morphologies must be among"),
])
def test_command_line_errors_are_one_sentence(tmp_path, capsys, argv, message):
    assert S.run(_cli(tmp_path / "x", *argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
