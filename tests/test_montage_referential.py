"""Referential (single-electrode) montages: derivation by name, named montages, SOZ masks, the
data module's ``montage`` key and the onset-map panels on electrode channels."""
from __future__ import annotations

import numpy as np
import pytest

from eeg.head import scalp_positions
from eeg.montage import (
    DOUBLE_BANANA,
    MONTAGES,
    REFERENTIAL_19,
    MontageError,
    derive,
    montage_channels,
    soz_channel_mask,
)

TUSZ_LIKE = tuple(f"EEG {e}-REF" for e in ("FP1 FP2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T3 T4 T5 T6 "
                                             "A1 A2 FZ CZ PZ").split()) + ("EEG EKG1-REF", "PHOTIC-REF")


def test_referential_19_from_ref_labels_in_any_order():
    d = derive(TUSZ_LIKE, REFERENTIAL_19)
    assert d.how == ("direct",) * 19
    x = np.arange(len(TUSZ_LIKE), dtype=np.float32)[:, None] * np.ones((1, 5), np.float32)
    out = d.apply(x)
    # each target row is exactly its electrode's referential channel (T3 is T7, T5 is P7...)
    for k, e in enumerate(REFERENTIAL_19):
        old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}.get(e, e)
        assert out[k, 0] == TUSZ_LIKE.index(f"EEG {old}-REF")
    # non-EEG channels are never read
    assert TUSZ_LIKE.index("EEG EKG1-REF") not in d.used


@pytest.mark.parametrize("suffix", ["-LE", "-AVG", "-CS2", ""])
def test_other_common_references(suffix):
    found = [f"{e}{suffix}" for e in REFERENTIAL_19]
    assert derive(found, REFERENTIAL_19).how == ("direct",) * 19


def test_bipolar_only_file_cannot_give_electrodes():
    with pytest.raises(MontageError) as e:
        derive(DOUBLE_BANANA, REFERENTIAL_19)
    msg = str(e.value)
    assert "19 of 19" in msg and "FP1" in msg and "O2" in msg
    assert "referential" in msg and "bipolar" in msg
    # one electrode missing from a referential file: named, no bipolar hint
    with pytest.raises(MontageError, match=r"1 of 19 montage channels \(PZ\)") as e:
        derive([f"EEG {c}-REF" for c in REFERENTIAL_19 if c != "PZ"], REFERENTIAL_19)
    assert "bipolar" not in str(e.value)


def test_mixed_target_and_the_double_banana_unchanged():
    ref = [f"EEG {c}-REF" for c in REFERENTIAL_19]
    d = derive(ref, ("FP1", "FP1-F7"))
    assert d.how == ("direct", "referential")
    assert derive(ref, DOUBLE_BANANA).how == ("referential",) * 18
    assert derive(DOUBLE_BANANA, DOUBLE_BANANA).how == ("direct",) * 18


def test_montage_names_and_lists():
    assert montage_channels("referential_19") == REFERENTIAL_19
    assert montage_channels("Double_Banana") == DOUBLE_BANANA
    assert montage_channels(["FP1", "FP1-F7"]) == ("FP1", "FP1-F7")
    assert set(MONTAGES) >= {"double_banana", "referential_19"}
    with pytest.raises(MontageError, match="unknown montage 'banana'.*referential_19"):
        montage_channels("banana")
    with pytest.raises(MontageError, match="'ECG'"):
        montage_channels(["FP1", "ECG"])
    with pytest.raises(MontageError, match="at least one"):
        montage_channels([])


def test_soz_mask_and_scalp_positions_of_electrodes():
    mask = soz_channel_mask(REFERENTIAL_19, ["right temporal"])
    assert [c for c, m in zip(REFERENTIAL_19, mask) if m] == ["F8", "T8", "P8"]
    assert soz_channel_mask(REFERENTIAL_19, ["T4"]).sum() == 1  # old name of T8
    xyz = scalp_positions(REFERENTIAL_19)
    assert xyz.shape == (19, 3) and np.isfinite(xyz).all()


def test_datamodule_montage_key_accepts_a_name(tmp_path):
    from datamodules.clip_datamodule import LOSOClipDataModule
    from datamodules.datamodule import LOSODataModule

    dm = LOSODataModule(str(tmp_path), "p1", montage="referential_19")
    assert dm.channels == REFERENTIAL_19
    assert LOSOClipDataModule(str(tmp_path), "p1", montage="referential_19").model_shape(256.0)["n_chans"] == 19
    with pytest.raises(ValueError, match="montage: unknown montage"):
        LOSODataModule(str(tmp_path), "p1", montage="nope")


def test_config_accepts_a_montage_name():
    from experiments.config import load_config
    from experiments.factory import check_buildable
    from experiments.instantiate import ConfigError

    cfg = load_config("chb_loso_szloc", ["data.montage=referential_19"])
    assert cfg.data.montage == "referential_19"
    check_buildable(cfg)
    with pytest.raises(ConfigError, match="data.montage: unknown montage 'banana'"):
        check_buildable(load_config("chb_loso_szloc", ["data.montage=banana"]))


def test_onset_map_panel_on_electrode_channels(tmp_path):
    from callbacks.panels import render_activation_panel, save_panel
    from lightning_modules.activation_maps import ActivationMaps

    rng = np.random.default_rng(0)
    sfreq, n = 64.0, 40
    sig = 20 * rng.standard_normal((19, int(n * sfreq))).astype(np.float32)
    act = rng.uniform(0, 0.2, (19, n))
    act[REFERENTIAL_19.index("T8"), 20:] = 0.95
    maps = ActivationMaps(activity=act, times_s=np.arange(n) + 0.5, channels=REFERENTIAL_19,
                          attention=np.full(n, 1.0 / n), probability=np.linspace(0, 1, n), kind="onset_map")
    fig = render_activation_panel(sig, sfreq, REFERENTIAL_19, maps, segment_start_s=100.0, onset_s=120.0,
                                  soz_channels=soz_channel_mask(REFERENTIAL_19, ["T8", "F8"]), soz=("T8", "F8"),
                                  patient="p1", recording_id="r1")
    out = tmp_path / "panel.png"
    save_panel(fig, out)
    assert out.stat().st_size > 10_000


def test_chbmit_21_and_23_montages_by_name():
    from eeg.montage import CHBMIT_23, DOUBLE_BANANA, derive, montage_channels

    m21, m23 = montage_channels("chbmit_21"), montage_channels("chbmit_23")
    assert m21[:18] == DOUBLE_BANANA and m21[18:] == ("T7-FT9", "FT9-FT10", "FT10-T8")
    assert m23 == CHBMIT_23
    for m in (m21, m23):
        d = derive(CHBMIT_23, m)  # a standard CHB-MIT file gives each of them
        assert d.matrix.shape == (len(m), len(CHBMIT_23))


def test_a_study_no_patient_can_montage_stops_with_one_sentence(tiny_corpus, tmp_path):
    """A bipolar-only dataset asked for electrode channels: exit 2 naming the dataset and montage,
    not an empty study that exits 0."""
    import os
    import subprocess
    import sys

    root, _ = tiny_corpus
    r = subprocess.run([sys.executable, "-m", "experiments", "run", "smoke", f"data_root={root}",
                        "data.montage=referential_19", f"runs_dir={tmp_path / 'runs'}",
                        f"cache_dir={tmp_path / 'cache'}", "wandb=null"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "WANDB_MODE": "disabled"})
    assert r.returncode == 2, r.stdout[-1000:] + r.stderr[-1000:]
    last = r.stderr.strip().splitlines()[-1]
    assert "no patient of" in last and "referential_19" in last and str(root) in last
    assert not list((tmp_path / "runs").rglob("summary.json"))
