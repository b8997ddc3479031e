"""The synthetic corpus written with referential channels (``montage="referential"``): the same
simulated EEG as the bipolar corpus, read by name into electrode montages (SZLoc's reference
configuration) and into the double banana."""
from __future__ import annotations

import numpy as np
import pytest

from datamodules.edf import read_edf_header, read_edf_signals
from datamodules.sources import discover
from datamodules.synthetic import generate_corpus
from datamodules.synthetic.primitives import ELECTRODES, REFERENTIAL_LABELS
from eeg.montage import DOUBLE_BANANA, REFERENTIAL_19, derive, soz_channel_mask

KNOBS = dict(preset="easy", n_patients=2, minutes=3.0, seed=3)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    ref = generate_corpus(root / "ref", montage="referential", **KNOBS)
    bip = generate_corpus(root / "bip", **KNOBS)
    return root, ref, bip


def test_referential_files_and_summaries(corpora):
    root, ref, _ = corpora
    assert ref.params.montage == "referential"
    assert REFERENTIAL_LABELS[:3] == ("EEG FP1-REF", "EEG FP2-REF", "EEG F7-REF")
    assert "EEG T3-REF" in REFERENTIAL_LABELS and len(REFERENTIAL_LABELS) == len(ELECTRODES)
    rec = ref.recordings[0]
    head = read_edf_header(root / "ref" / rec.path)
    assert head.labels == REFERENTIAL_LABELS
    summary = (root / "ref" / rec.path).parent.glob("*-summary.txt")
    text = next(summary).read_text()
    assert "Channel 1: EEG FP1-REF" in text and "FP1-F7" not in text


def test_same_eeg_as_the_bipolar_corpus(corpora):
    root, ref, bip = corpora
    refs, bips = discover(root / "ref"), discover(root / "bip")
    assert [r.seizures for r in refs] == [r.seizures for r in bips]
    assert [r.soz for r in refs] == [r.soz for r in bips]
    r, b = refs[0], bips[0]
    x_ref = read_edf_signals(r.path, list(range(len(r.channels))))
    x_bip = read_edf_signals(b.path, list(range(len(b.channels))))
    # the double banana rebuilt from the referential channels is the bipolar file's, up to the
    # 12-bit quantization of each file (0.39 uV per step)
    banana_from_ref = derive(r.channels, DOUBLE_BANANA).apply(x_ref)
    banana = derive(b.channels, DOUBLE_BANANA).apply(x_bip)
    assert np.abs(banana_from_ref - banana).max() < 1.0
    electrodes = derive(r.channels, REFERENTIAL_19).apply(x_ref)
    assert electrodes.shape == (19, x_ref.shape[1]) and electrodes.std() > 1.0
    # the onset zone names simulated electrodes, each one a channel here
    assert soz_channel_mask(REFERENTIAL_19, r.soz).sum() == len(r.soz)


def test_montage_is_a_corpus_parameter(corpora):
    root, _, _ = corpora
    again = generate_corpus(root / "ref", montage="referential", **KNOBS)  # reused as it is
    assert again.params.montage == "referential"
    from datamodules.recording import DatasetError

    with pytest.raises(DatasetError, match="other parameters"):
        generate_corpus(root / "ref", **KNOBS)  # bipolar asked for where a referential one lies
    with pytest.raises(ValueError, match="montage must be 'bipolar' or 'referential'"):
        generate_corpus(root / "other", montage="average", **KNOBS)
