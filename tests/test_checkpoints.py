"""Self-describing, safe checkpoints: nothing in a file from someone else runs, and predict needs
nothing but the checkpoint."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from eeg.montage import DOUBLE_BANANA
from experiments.runner import save_model
from lightning_modules.checkpoints import SPEC_KEY, CheckpointError, load_module, read_checkpoint
from lightning_modules.detection import SeizureDetectionModule
from lightning_modules.lsn import LightSeizureNet

SF = 256.0


def _module(threshold=0.3) -> SeizureDetectionModule:
    torch.manual_seed(0)
    module = SeizureDetectionModule(LightSeizureNet(18, n_times=512, sfreq=SF, n_filters=(4, 8, 8, 8, 8, 8, 8)),
                                    lr=2e-3)
    module.run_spec = {"data": {"target": "windows", "channels": list(DOUBLE_BANANA), "sfreq": SF, "window_s": 2.0,
                                "preprocessing": {"l_freq": 0.5, "h_freq": 40.0, "notch_freq": 60.0, "sfreq": SF,
                                                  "filter_order": 4}},
                       "postprocess": {"smooth_s": 6.0, "threshold": threshold, "min_duration_s": 8.0,
                                       "merge_gap_s": 10.0}, "threshold": threshold}
    return module.eval()


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    save_model(_module(), path)
    return path


def test_a_checkpoint_rebuilds_itself_from_plain_values(model_ckpt):
    raw = torch.load(model_ckpt, weights_only=True)
    spec = raw[SPEC_KEY]
    assert spec["model"] == {"name": "lsn", "kwargs": spec["model"]["kwargs"]}
    assert spec["model"]["kwargs"]["n_filters"] == [4, 8, 8, 8, 8, 8, 8] and spec["module"]["kwargs"]["lr"] == 2e-3
    module = load_module(model_ckpt)
    x = torch.randn(3, 18, 512)
    with torch.no_grad():
        torch.testing.assert_close(module(x), _module()(x))
    assert module.run_spec["threshold"] == 0.3 and not module.training
    # the Lightning idiom goes through the same safe loader
    assert isinstance(SeizureDetectionModule.load_from_checkpoint(model_ckpt), SeizureDetectionModule)


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "payload.ckpt"
    torch.save({"state_dict": {}, SPEC_KEY: {"format": 1}, "x": Payload()}, bad)
    with pytest.raises(CheckpointError, match=r"refused: it holds Python objects .*\(it names posix.system\)"):
        load_module(bad)
    assert not marker.exists()


@pytest.mark.parametrize("part, name, kwargs, message", [
    ("model", "subprocess.Popen", {"args": ["touch", "PWNED"]}, "model 'subprocess.Popen' is not allowed"),
    ("model", "os.system", {"command": "touch PWNED"}, "model 'os.system' is not allowed"),
    ("module", "lightning_modules.detection.SeizureDetectionModule", None,
     "module 'lightning_modules.detection.SeizureDetectionModule' is not allowed"),
    ("model", "lsn", {"n_chans": 18, "evil": 1}, "model 'lsn' cannot be built from its stored arguments"),
])
def test_a_spec_naming_any_other_class_is_refused(model_ckpt, tmp_path, part, name, kwargs, message):
    raw = torch.load(model_ckpt, weights_only=True)
    raw[SPEC_KEY][part]["name"] = name
    if kwargs is not None:
        raw[SPEC_KEY][part]["kwargs"] = kwargs
    bad = tmp_path / "crafted.ckpt"
    torch.save(raw, bad)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError, match=message):
            load_module(bad)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "PWNED").exists()


def test_damaged_and_foreign_files_are_one_sentence(model_ckpt, tmp_path):
    trunc = tmp_path / "trunc.ckpt"
    trunc.write_bytes(model_ckpt.read_bytes()[:4000])
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    for path, message in ((trunc, "is damaged or not a PyTorch checkpoint"), (empty, "is empty (0 bytes)"),
                          (text, "is damaged or not a PyTorch checkpoint"), (tmp_path, "is a folder"),
                          (tmp_path / "missing.ckpt", "does not exist"),
                          (foreign, "does not describe its model")):
        with pytest.raises(CheckpointError, match=re.escape(message)) as e:
            load_module(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="no model weights"):
        torch.save([1, 2], tmp_path / "list.ckpt")
        read_checkpoint(tmp_path / "list.ckpt")


def test_user_model_needs_an_explicit_registration(tmp_path):
    from tests.support.models import TinyNet

    module = SeizureDetectionModule(TinyNet(18, 512, SF), model_spec={"name": "tiny", "kwargs":
                                                                      {"n_chans": 18, "n_times": 512, "sfreq": SF}})
    path = save_model(module, tmp_path / "tiny.ckpt")
    with pytest.raises(CheckpointError, match="model 'tiny' is not allowed"):
        load_module(path)
    reloaded = load_module(path, extra_models={"tiny": "tests.support.models.TinyNet"})
    assert isinstance(reloaded.model, TinyNet)


# -- predict takes everything from the checkpoint -------------------------------------------
def _write_mixed_rate_edf(path: Path, seconds: int = 60, rhythm_at=(20, 40)) -> None:
    """An ECG at 128 Hz first, then 19 referential EEG channels at 256 Hz (labels as TUH writes them)."""
    import edfio

    from eeg.montage import ELECTRODES

    electrodes = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
                  "P7", "P8", "FZ", "CZ", "PZ"]
    assert set(electrodes) <= ELECTRODES
    g = np.random.default_rng(0)
    t = np.arange(seconds * 256) / 256
    sigs = [edfio.EdfSignal(np.sin(2 * np.pi * 1.2 * np.arange(seconds * 128) / 128) * 500, 128,
                            label="ECG EKG", physical_dimension="uV", physical_range=(-3000, 3000))]
    for e in electrodes:
        x = g.normal(0, 15, t.size)
        if e in ("F8", "T8"):
            x += 80 * np.sin(2 * np.pi * 5 * t) * ((t >= rhythm_at[0]) & (t < rhythm_at[1]))
        sigs.append(edfio.EdfSignal(x, 256, label=f"EEG {e}-REF", physical_dimension="uV",
                                    physical_range=(-3000, 3000)))
    edfio.Edf(sigs, data_record_duration=1.0).write(path)


def test_predict_reads_the_eeg_rate_not_the_first_signal(model_ckpt, tmp_path, capsys):
    from experiments.__main__ import main

    edf = tmp_path / "mixed.edf"
    _write_mixed_rate_edf(edf)
    out = tmp_path / "events.tsv"
    assert main(["predict", "--ckpt", str(model_ckpt), "--edf", str(edf), "--out", str(out), "--threshold",
                 "0.01"]) == 0
    printed = capsys.readouterr().out
    assert "in 1.0 min" in printed  # 60 s at the EEG's 256 Hz (reading at the ECG's 128 Hz doubled it)
    rows = out.read_text().splitlines()[1:]
    assert rows and all(float(r.split("\t")[6]) == pytest.approx(60.0) for r in rows)


def test_predict_bad_inputs_are_one_sentence(model_ckpt, tmp_path, capsys):
    from datamodules.edf import write_edf
    from experiments.__main__ import main

    edf = tmp_path / "mixed.edf"
    _write_mixed_rate_edf(edf)
    partial = tmp_path / "partial.edf"
    write_edf(partial, np.zeros((3, 2560), np.float32), SF, ["FP1-F7", "F7-T7", "T7-P7"])
    cases = [
        (["--ckpt", str(tmp_path / "none.ckpt"), "--edf", str(edf)], "does not exist"),
        (["--ckpt", str(model_ckpt), "--edf", str(tmp_path / "none.edf")], "EDF file"),
        (["--ckpt", str(model_ckpt), "--edf", str(edf), "--out", str(tmp_path)], "is a folder"),
        (["--ckpt", str(model_ckpt), "--edf", str(partial), "--out", str(tmp_path / "o.tsv")],
         "cannot give the model's 18-channel montage"),
        (["--ckpt", str(model_ckpt), "--edf", str(edf), "--threshold", "2"], "--threshold must be"),
        (["--ckpt", str(model_ckpt), "--edf", str(edf), "--model", "oops"], "must be NAME=package.module.Class"),
    ]
    for args, needle in cases:
        code = main(["predict", *args])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (args, err)


def test_predict_places_each_part_of_an_edf_plus_d_file_at_its_own_time(model_ckpt, tmp_path, capsys):
    """EDF+D: two continuous parts of 60 s with a 100 s gap; probabilities and events are placed
    on the file's own clock, not concatenated over the gap."""
    from datamodules.edf import write_edf
    from experiments.__main__ import main

    g = np.random.default_rng(0)
    x = g.normal(0, 15, (18, 120 * 256)).astype(np.float32)
    onsets = [float(k) for k in range(60)] + [float(160 + k) for k in range(60)]
    edf = tmp_path / "gap.edf"
    write_edf(edf, x, SF, list(DOUBLE_BANANA), record_onsets=onsets)
    probs = tmp_path / "p.csv"
    assert main(["predict", "--ckpt", str(model_ckpt), "--edf", str(edf), "--out", str(tmp_path / "e.tsv"),
                 "--probabilities", str(probs)]) == 0
    starts = np.loadtxt(probs, delimiter=",", skiprows=1)[:, 0]
    assert len(starts) == 60 and starts[29] == 58.0 and starts[30] == 160.0  # the second part after the gap
