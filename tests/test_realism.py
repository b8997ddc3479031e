"""The realism check against the real recording in ``../shared/real/umich`` (read there, never copied).

The bounds are what the README's table claims: the typical synthetic background within a factor
of two of the real one in amplitude and line length (its loud tail, with sleep and artifacts,
within 2.5), the same 1/f slope within 0.5, delta-dominated spectra, and ictal rhythms in the
same 2-9 Hz range that stand out from their background.
"""
from __future__ import annotations

import math

import pytest

from datamodules import synthetic as S
from datamodules.synthetic import realism as R

pytestmark = pytest.mark.skipif(not (R.DEFAULT_REAL / "chbmit_layout").is_dir(),
                                reason=f"the real recording is not at {R.DEFAULT_REAL} (shared/real/umich "
                                       "beside the repository); it is never copied into it")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("realism")
    root = tmp / "corpus"
    S.generate_corpus(root, n_patients=2, n_recordings=2, minutes=8.0, seed=0, seizure_free_recordings=0)
    return R.compare(R.DEFAULT_REAL, {"synthetic": root}, tmp / "out"), tmp / "out"


def test_real_recording_reads_as_its_readme_says(result):
    real = result[0]["columns"]["real (umich)"]
    assert 8 < real["median_abs_uV"] < 12  # "median absolute value about 11 uV" after 0.5-40 Hz
    assert -2.8 < real["slope"] < -1.8
    assert real["n_seizures"] == 1 and 2 <= real["freq_early_hz"] <= 8
    assert real["rms_ratio_peak"] > 3  # the seizure (and its muscle artifact) stands out


def test_synthetic_background_and_seizures_are_close_to_the_real_ones(result):
    cols = result[0]["columns"]
    real, syn = cols["real (umich)"], cols["synthetic"]
    for key in ("median_abs_uV", "rms_p5_uV", "rms_p50_uV", "line_length_p50_uV_s"):
        assert 0.5 < syn[key] / real[key] < 2.0, (key, syn[key], real[key])
    # the loud tail: sleep (the real 5.5 min are awake), movement and muscle artifact
    assert 1.0 < syn["rms_p95_uV"] / real["rms_p95_uV"] < 2.5
    assert abs(syn["slope"] - real["slope"]) < 0.5
    assert syn["rel_delta"] > syn["rel_theta"] > syn["rel_beta"] > syn["rel_gamma"]
    assert 0.5 < syn["rel_delta"] < 0.9 and 0.03 < syn["rel_alpha"] < 0.25
    assert syn["n_seizures"] >= 2
    assert 2 <= syn["freq_early_hz"] <= 9 and 1.5 <= syn["freq_late_hz"] <= 9
    assert syn["rms_ratio_peak"] > 1.5 and syn["ll_ratio_peak"] > 1.2
    assert not math.isnan(syn["time_to_peak_s"])


def test_table_json_and_figure_are_written(result):
    out = result[1]
    text = (out / "realism.md").read_text()
    assert text.startswith("| measure | real (umich) | synthetic |") and "1/f slope" in text
    assert (out / "realism.json").stat().st_size > 100
    png = (out / "realism.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000


def test_command_line_refuses_a_missing_recording(tmp_path, capsys):
    assert R.main(["--real", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err and len(err.strip().splitlines()) == 1
