"""``python -m datamodules convert``: every layout written and read back with the same seizures,
the same signals (to the quantization of the written file) and the same onset zones; a study
runs on the synthetic corpus written in each layout (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datamodules.cache import load_harmonized
from datamodules.convert import convert
from datamodules.edf import read_edf_header, read_edf_signals
from datamodules.preprocessing import PreprocessingConfig
from datamodules.recording import DatasetError
from datamodules.sources import scan
from eeg.montage import DOUBLE_BANANA

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = ("bids", "tusz", "siena", "seizeit")
RAW = PreprocessingConfig(l_freq=None, h_freq=None, notch_freq=None, sfreq=None)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def converted(tiny_corpus, tmp_path_factory):
    root, _ = tiny_corpus
    out = tmp_path_factory.mktemp("converted")
    return root, {layout: convert(root, out / layout, layout) for layout in LAYOUTS}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_same_seizures_soz_and_signals(converted, layout):
    root, reports = converted
    report = reports[layout]
    source = {r.recording_id: r for r in scan(root).recordings}
    back = scan(report.out)
    assert back.layout == layout and len(back.recordings) == len(source)
    # Siena lists seizures, not files: a seizure-free recording is the one file it cannot name
    expected_warnings = [(f"{r.path}: not in Seizures-list-{r.patient}.txt: taken as seizure-free",)
                         if layout == "siena" and not r.seizures else () for r in back.recordings]
    assert [r.warnings for r in back.recordings] == expected_warnings
    by_patient = {}
    for r in back.recordings:
        by_patient.setdefault(r.patient, []).append(r)
    for patient, name in report.patients.items():
        src = sorted((r for r in source.values() if r.patient == patient), key=lambda r: r.recording_id)
        got = sorted(by_patient[name], key=lambda r: r.recording_id)
        assert [r.seizures for r in got] == [r.seizures for r in src]  # whole seconds: exact, Siena too
        assert [r.duration_s for r in got] == [r.duration_s for r in src]
        assert {r.soz for r in got} == {src[0].soz} and got[0].soz_region == src[0].soz_region
        for a, b in zip(src, got):
            x, _ = load_harmonized(a, DOUBLE_BANANA, RAW)
            y, _ = load_harmonized(b, DOUBLE_BANANA, RAW)
            err = np.abs(x - y)
            if layout == "bids":  # the EDF is copied
                assert err.max() == 0.0
                continue
            # the others re-reference and re-quantize: within the source's quantization step
            # (0.39 uV), except where a source channel is clipped at its physical range (then the
            # bipolar channels disagree with each other and no referential file can hold them all)
            h = read_edf_header(a.path)
            raw = read_edf_signals(a.path, range(h.n_channels))
            top, bottom = np.array(h.physical_max)[:, None] - 1, np.array(h.physical_min)[:, None] + 1
            clipped = np.any((raw >= top) | (raw <= bottom), axis=0)
            assert err[:, ~clipped].max() <= 0.39
            assert clipped.mean() < 0.01


def test_layout_specific_files(converted):
    _, reports = converted
    tusz = Path(reports["tusz"].out)
    csv_bi = sorted(tusz.rglob("*.csv_bi"))
    assert csv_bi and all(p.parent.name == "01_tcp_ar" for p in csv_bi)
    assert {p.parents[3].name for p in csv_bi} == {"train", "dev", "eval"}
    assert "EEG FP1-REF" in scan(tusz).recordings[0].channels
    siena = Path(reports["siena"].out)
    assert (siena / "PN00" / "Seizures-list-PN00.txt").read_text().count("Seizure n ") >= 1
    assert scan(siena).recordings[0].channels[0] == "EEG Fp1"
    bids = Path(reports["bids"].out)
    tsv = sorted(bids.rglob("*_events.tsv"))[0].read_text().splitlines()
    assert tsv[0].split("\t") == ["onset", "duration", "eventType", "confidence", "channels", "dateTime",
                                  "recordingDuration"]
    assert (bids / "participants.tsv").is_file() and (bids / "soz.tsv").is_file()


def test_real_fixtures_to_bids_keep_types_and_seizures(tmp_path):
    for name in ("siena", "seizeit", "tuh"):
        src = scan(REPO / "tests" / "data" / name)
        report = convert(REPO / "tests" / "data" / name, tmp_path / name, "bids")
        back = {r.patient: r for r in scan(report.out).recordings}
        want = sorted((r.seizures, r.seizure_types) for r in src.recordings if r.annotated)
        got = sorted((r.seizures, r.seizure_types) for r in scan(report.out).recordings)
        assert got == want, name
        assert back
    siena = scan(tmp_path / "siena").recordings
    assert {r.seizure_types for r in siena if r.seizures} == {("sz_foc_ia",)}


def test_bids_to_tusz_to_bids(tmp_path, converted):
    _, reports = converted
    convert(reports["bids"].out, tmp_path / "tusz", "tusz")
    convert(tmp_path / "tusz", tmp_path / "bids", "bids")
    a = sorted((r.seizures, r.duration_s) for r in scan(reports["bids"].out).recordings)
    b = sorted((r.seizures, r.duration_s) for r in scan(tmp_path / "bids").recordings)
    assert a == b


def test_convert_cli_and_its_errors(tmp_path, tiny_corpus):
    root, _ = tiny_corpus
    p = cli("-m", "datamodules", "convert", str(root), "--to", "seizeit", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert "read back and checked" in p.stdout and "chb01 -> P_ID01" in p.stdout
    again = cli("-m", "datamodules", "convert", str(root), "--to", "seizeit", str(tmp_path / "out"))
    assert again.returncode == 2 and again.stderr.strip() == f"error: {tmp_path / 'out'} already exists; " \
        "choose a new folder (nothing is overwritten)"
    bad = cli("-m", "datamodules", "convert", str(tmp_path / "nope"), "--to", "bids", str(tmp_path / "o2"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not exist" in bad.stderr
    who = cli("-m", "datamodules", "convert", str(root), "--to", "bids", str(tmp_path / "o3"), "--patients", "x")
    assert who.returncode == 2 and "patient(s) x are not in" in who.stderr
    assert not (tmp_path / "o3").exists() and not list(tmp_path.glob(".o3*"))


def test_round_trip_check_catches_a_lost_seizure(tmp_path, tiny_corpus, monkeypatch):
    from datamodules.sources import WRITERS, bids

    root, _ = tiny_corpus

    def lossy(recordings, out):
        names = bids.write_bids(recordings, out)
        victim = next(p for p in sorted(Path(out).rglob("*_events.tsv")) if "\tsz\t" in p.read_text())
        lines = victim.read_text().splitlines()
        victim.write_text("\n".join(lines[:1] + [ln for ln in lines[1:] if "\tsz\t" not in ln][:0] +
                                    [f"0\t{lines[1].split()[-1]}\tbckg\tn/a\tn/a\tn/a\t{lines[1].split()[-1]}"])
                          + "\n")
        return names

    monkeypatch.setitem(WRITERS, "bids", lossy)
    with pytest.raises(DatasetError, match="reads back seizures"):
        convert(root, tmp_path / "lossy", "bids")


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_study_runs_on_the_synthetic_corpus_in_each_layout(tmp_path_factory, layout):
    base = tmp_path_factory.mktemp(f"study-{layout}")
    synth = cli("-m", "datamodules", "synth", str(base / "synthetic"), "--preset", "easy", "--patients", "3",
                "--recordings", "1", "--minutes", "5")  # the corpus of the smoke study
    assert synth.returncode == 0, synth.stderr
    conv = cli("-m", "datamodules", "convert", str(base / "synthetic"), "--to", layout, str(base / layout))
    assert conv.returncode == 0, conv.stderr
    run = cli("-m", "experiments", "run", "smoke", f"data_root={base / layout}", "run_id=conv",
              f"runs_dir={base / 'runs'}", f"cache_dir={base / 'cache'}", timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    summary = json.loads(next((base / "runs").rglob("summary.json")).read_text())
    patients = {r.patient for r in scan(base / layout).recordings}
    assert len(patients) == 3
    text = json.dumps(summary)
    assert all(p in text for p in patients)  # every held-out patient of the converted corpus was scored
