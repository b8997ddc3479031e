"""HDF5 cache: contents, reuse, invalidation, crash safety and concurrency with real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import h5py
import numpy as np
import pytest

from datamodules.cache import SCHEMA_VERSION, SignalReader, build_cache, is_valid, list_recordings, read_signal
from datamodules.preprocessing import PreprocessingConfig
from datamodules.sources import discover
from eeg.montage import DOUBLE_BANANA


@pytest.fixture()
def corpus(tiny_corpus):
    root, _ = tiny_corpus
    return root, discover(root)


def test_cache_holds_every_recording_harmonized(corpus, tmp_path):
    root, recs = corpus
    report = build_cache(recs, tmp_path, root, progress=False)
    assert sorted(report.built) == sorted({r.patient for r in recs}) and not report.reused
    for r in recs:
        cached = {c.recording_id: c for c in list_recordings(report.files[r.patient])}[r.recording_id]
        assert cached.channels == DOUBLE_BANANA
        assert cached.sfreq == 256.0
        assert cached.n_samples == int(round(r.duration_s * 256))
        assert cached.seizures == r.seizures
        assert cached.soz == r.soz
    with h5py.File(report.files[recs[0].patient], "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["complete"]
        assert json.loads(f.attrs["preprocessing"])["h_freq"] == 40.0
        ds = f["recordings"][recs[0].recording_id]
        assert ds.dtype == np.float32 and ds.shape[0] == 18


def test_cached_signal_is_the_filtered_bipolar_derivation(corpus, tmp_path):
    """Independent check of the whole path with MNE: read the EDF, pick FP1-F7, filter it the
    same way in float64, compare with what the cache holds (filtered in float32 where that stays
    within half the file's quantization step)."""
    import mne

    from datamodules.edf import read_edf_header
    from datamodules.preprocessing import preprocess

    root, recs = corpus
    rec = recs[0]
    report = build_cache([rec], tmp_path, root, progress=False)
    cached = read_signal(report.files[rec.patient], rec.recording_id)
    raw = mne.io.read_raw_edf(rec.path, preload=True, verbose="error")
    fp1f7 = raw.get_data(picks=[raw.ch_names.index("FP1-F7")]) * 1e6
    expected, _ = preprocess(fp1f7, 256.0, PreprocessingConfig())
    h = read_edf_header(rec.path)
    step = (h.physical_max[0] - h.physical_min[0]) / (h.digital_max[0] - h.digital_min[0])
    np.testing.assert_allclose(cached[0], expected[0], atol=step / 2)
    with h5py.File(report.files[rec.patient], "r") as f:
        # float32 wherever the predicted error stays below half a step (loud channels: float64)
        assert 0 < f["recordings"][rec.recording_id].attrs["float32_channels"] <= 18


def test_rerun_reuses_and_rebuilds_only_what_is_invalid(corpus, tmp_path):
    root, recs = corpus
    first = build_cache(recs, tmp_path, root, progress=False)
    again = build_cache(recs, tmp_path, root, progress=False)
    assert again.built == () and sorted(again.reused) == sorted(first.files)
    victim = sorted(first.files)[0]
    with open(first.files[victim], "r+b") as fh:  # corrupt it: a truncated file
        fh.truncate(1000)
    mtimes = {p: os.stat(f).st_mtime_ns for p, f in first.files.items()}
    third = build_cache(recs, tmp_path, root, progress=False)
    assert third.built == (victim,)
    assert all(os.stat(f).st_mtime_ns == mtimes[p] for p, f in first.files.items() if p != victim)
    assert is_valid(first.files[victim])


def test_new_preprocessing_gets_its_own_directory(corpus, tmp_path):
    root, recs = corpus
    a = build_cache(recs[:1], tmp_path, root, progress=False)
    b = build_cache(recs[:1], tmp_path, root, PreprocessingConfig(h_freq=30.0), progress=False)
    assert a.directory != b.directory and b.built


_BUILD = """
import sys
from datamodules.cache import build_cache
from datamodules.sources import discover
root, cache = sys.argv[1], sys.argv[2]
print(build_cache(discover(root), cache, root, progress=False).built, flush=True)
"""


def test_killed_build_leaves_nothing_mistaken_for_valid(tmp_path_factory, tmp_path):
    from datamodules.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("big") / "synthetic"
    generate_corpus(root, preset="easy", n_patients=1, n_recordings=3, minutes=12.0, seed=3)
    proc = subprocess.Popen([sys.executable, "-c", _BUILD, str(root), str(tmp_path)])
    deadline = time.time() + 60
    tmp_seen = None
    while time.time() < deadline and proc.poll() is None:
        tmps = list(tmp_path.glob("*/*.h5.tmp-*"))
        if tmps:
            tmp_seen = tmps[0]
            time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    assert tmp_seen is not None and proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    final = tmp_seen.with_name(tmp_seen.name.split(".tmp-")[0])
    assert not final.exists() or not is_valid(final)
    recs = discover(root)
    report = build_cache(recs, tmp_path, root, progress=False)
    assert report.built and is_valid(report.files[recs[0].patient])
    assert not list(tmp_path.glob("*/*.tmp-*")), "stale temporaries are cleaned up"


def test_concurrent_builders_end_with_one_valid_cache(tiny_corpus, tmp_path):
    root, _ = tiny_corpus
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD, str(root), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    recs = discover(root)
    files = sorted(tmp_path.glob("*/*.h5"))
    assert len(files) == len({r.patient for r in recs})
    assert all(is_valid(f) for f in files)
    assert not list(tmp_path.glob("*/*.tmp-*"))
    built = [eval(o.strip().splitlines()[-1]) for o in outs]
    # the lock makes the others wait and reuse: each patient is built exactly once
    assert sorted(p for b in built for p in b) == sorted({r.patient for r in recs})


def test_peak_memory_does_not_grow_with_recordings(tmp_path_factory, tmp_path):
    from datamodules.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("mem") / "synthetic"
    generate_corpus(root, preset="easy", n_patients=1, n_recordings=4, minutes=6.0, seed=5)
    recs = discover(root)
    peaks = []
    for n in (1, 4):
        tracemalloc.start()
        build_cache(recs[:n], tmp_path / str(n), root, progress=False, n_jobs=1)  # traced: in this process
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_signal_reader_memmaps_and_matches_h5py(corpus, tmp_path):
    root, recs = corpus
    report = build_cache(recs[:1], tmp_path, root, progress=False)
    path, rid = report.files[recs[0].patient], recs[0].recording_id
    reader = SignalReader()
    assert isinstance(reader.array(path, rid), np.memmap)
    np.testing.assert_array_equal(reader.window(path, rid, 1000, 512), read_signal(path, rid, 1000, 1512))


def test_load_harmonized_without_filtering_gives_every_channel(corpus):
    """Without filter or resampling, each montage channel is the file's own bipolar channel (the
    synthetic EDFs store the double banana first, in order): no row shares another's buffer."""
    from datamodules.cache import load_harmonized
    from datamodules.edf import read_edf_signals

    _, recs = corpus
    raw = PreprocessingConfig(l_freq=None, h_freq=None, notch_freq=None, sfreq=None)
    x, sfreq = load_harmonized(recs[0], DOUBLE_BANANA, raw)
    assert sfreq == 256.0
    np.testing.assert_allclose(x, read_edf_signals(recs[0].path, range(18)), atol=1e-3)
