"""LightSeizureNet: shapes, cost budget, channel-resolved ECAM, dominant frequency."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_modules.cost import count_macs, count_params
from lightning_modules.lsn import ECAM, LightSeizureNet, _asinh, dominant_frequency

torch.set_num_threads(1)


@pytest.fixture
def lsn() -> LightSeizureNet:
    torch.manual_seed(0)
    m = LightSeizureNet(18)
    # Non-trivial BatchNorm statistics, so eval mode is not the identity.
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.bias.data.uniform_(-0.3, 0.3)
    return m.eval()


def test_output_shapes():
    x = torch.randn(3, 18, 512) * 40
    assert LightSeizureNet(18)(x).shape == (3, 2)
    assert LightSeizureNet(18, n_outputs=1)(x).shape == (3, 1)
    # Any window length works (4 s windows at 256 Hz).
    assert LightSeizureNet(18, n_times=1024)(torch.randn(2, 18, 1024)).shape == (2, 2)
    # Other montages: 19 referential channels at 200 Hz, 1 s.
    assert LightSeizureNet(19, n_times=200, sfreq=200.0)(torch.randn(2, 19, 200)).shape == (2, 2)


def test_cost_within_paper_budget():
    m = LightSeizureNet(18, n_times=512, sfreq=256.0)
    macs = count_macs(m, m.example_input())
    assert macs <= 6.2e6, macs  # Qiu et al.: 6.2 M MACs patient-independent
    assert macs == 6_156_320  # measured with torch.utils.flop_counter; changes if layers change
    assert count_params(m) == 4_778
    assert m.receptive_field == 263 and m.total_stride == 8


def test_bad_input_and_config_errors():
    m = LightSeizureNet(18)
    with pytest.raises(ValueError, match=r"18 channels.*\(2, 23, 512\)"):
        m(torch.randn(2, 23, 512))
    with pytest.raises(ValueError, match="got shape"):
        m(torch.randn(18, 512))
    with pytest.raises(ValueError, match="same non-zero length"):
        LightSeizureNet(18, n_filters=(8, 8), kernel_sizes=(3,), strides=(1,), dilations=(1,))
    with pytest.raises(ValueError, match="odd"):
        LightSeizureNet(18, n_filters=(8,), kernel_sizes=(4,), strides=(1,), dilations=(1,))
    with pytest.raises(ValueError, match="n_outputs"):
        LightSeizureNet(18, n_outputs=3)


def test_input_scaling_compresses_large_amplitudes():
    z = torch.cat([torch.logspace(-6, 4, 50), -torch.logspace(-6, 4, 50), torch.zeros(1)])
    torch.testing.assert_close(_asinh(z), torch.asinh(z), rtol=1e-6, atol=1e-12)
    # Inside the model: 100 uV -> asinh(1), 5 mV -> asinh(50) ~ 4.6, not 50.
    assert float(_asinh(torch.tensor(50.0))) == pytest.approx(math.asinh(50.0), rel=1e-6)


def test_ecam_shapes_and_logit_identity(lsn):
    x = torch.randn(4, 18, 512) * 50
    with torch.no_grad():
        out = lsn.ecam(x)
        logits = lsn(x)
    assert isinstance(out, ECAM)
    assert out.cam.shape == (4, 18, 512)
    assert out.cam_features.shape == (4, 18, 64)
    assert out.freq.shape == (4, 18)
    assert bool(((out.freq >= 1.0) & (out.freq <= 30.0)).all())
    torch.testing.assert_close(out.logits, logits)
    # The pool is a mean: the mean of the CAM over (channel, time) is the seizure logit.
    torch.testing.assert_close(out.cam_features.mean(dim=(1, 2)), logits[:, 1] - logits[:, 0],
                               atol=1e-5, rtol=1e-5)
    # One-output model: the CAM averages to the single logit.
    m1 = LightSeizureNet(18, n_outputs=1).eval()
    with torch.no_grad():
        o1 = m1.ecam(x, with_freq=False)
    assert o1.freq is None
    torch.testing.assert_close(o1.cam_features.mean(dim=(1, 2)), o1.logits[:, 0], atol=1e-5, rtol=1e-5)


def test_ecam_is_per_channel(lsn):
    """Changing one EEG channel changes that channel's CAM only (no cross-channel mixing)."""
    x = torch.randn(2, 18, 512) * 50
    x2 = x.clone()
    x2[:, 7] += 200 * torch.sin(torch.arange(512) / 256 * 2 * math.pi * 5)
    with torch.no_grad():
        a, b = lsn.ecam(x).cam, lsn.ecam(x2).cam
    diff = (a - b).abs().amax(dim=(0, 2))
    assert float(diff[7]) > 1e-3
    others = torch.cat([diff[:7], diff[8:]])
    assert float(others.max()) == 0.0


def test_ecam_time_alignment(lsn):
    """The upsampled CAM equals the feature-grid CAM at the feature centres j * stride."""
    x = torch.randn(2, 18, 512) * 50
    with torch.no_grad():
        out = lsn.ecam(x, with_freq=False)
    s = lsn.total_stride
    torch.testing.assert_close(out.cam[..., ::s], out.cam_features)
    # Halfway between two centres: the average of the two.
    torch.testing.assert_close(out.cam[..., s // 2:-s:s],
                               0.5 * (out.cam_features[..., :-1] + out.cam_features[..., 1:]))
    # Beyond the last centre the value is held.
    torch.testing.assert_close(out.cam[..., -1], out.cam_features[..., -1])


def test_dominant_frequency_sinusoid_and_weighting():
    sfreq = 256.0
    t = torch.arange(int(4 * sfreq)) / sfreq
    x = 50 * torch.sin(2 * math.pi * 7.3 * t) + torch.randn_like(t)
    f = dominant_frequency(x[None], torch.ones(1, t.numel()), sfreq)
    assert float(f[0]) == pytest.approx(7.3, abs=0.2)
    # 4 Hz in the first half, 12 Hz in the second: the weight picks the activated half.
    half = t.numel() // 2
    y = torch.cat([40 * torch.sin(2 * math.pi * 4 * t[:half]), 40 * torch.sin(2 * math.pi * 12 * t[half:])])
    w_second = torch.cat([torch.zeros(half), torch.ones(half)])
    assert float(dominant_frequency(y, w_second, sfreq)) == pytest.approx(12.0, abs=0.3)
    assert float(dominant_frequency(y, 1 - w_second, sfreq)) == pytest.approx(4.0, abs=0.3)
    # No activation at all: the unweighted spectrum, still a finite frequency in the band.
    f0 = dominant_frequency(y, torch.zeros_like(y), sfreq)
    assert math.isfinite(float(f0)) and 1.0 <= float(f0) <= 30.0
    # Outside the band (45 Hz line noise residue) is ignored.
    z = 80 * torch.sin(2 * math.pi * 45 * t) + 10 * torch.sin(2 * math.pi * 9 * t)
    assert float(dominant_frequency(z, torch.ones_like(z), sfreq)) == pytest.approx(9.0, abs=0.3)
    with pytest.raises(ValueError, match="differ in shape"):
        dominant_frequency(z, torch.ones(5), sfreq)


def test_ecam_frequency_of_rhythmic_channel(lsn):
    t = torch.arange(512) / 256.0
    x = torch.randn(1, 18, 512) * 5
    x[0, 3] += 100 * torch.sin(2 * math.pi * 6.0 * t)
    with torch.no_grad():
        out = lsn.ecam(x)
    # Whatever the (untrained) CAM weights, channel 3's activated signal is a 6 Hz rhythm.
    assert float(out.freq[0, 3]) == pytest.approx(6.0, abs=0.5)


def test_init_kwargs_rebuild(lsn):
    clone = LightSeizureNet(**lsn.init_kwargs)
    clone.load_state_dict(lsn.state_dict())
    clone.eval()
    x = torch.randn(2, 18, 512) * 30
    with torch.no_grad():
        torch.testing.assert_close(clone(x), lsn(x))
    assert np.array_equal(lsn.init_kwargs["n_filters"], [8, 16, 16, 16, 16, 16, 16])


def test_backward_and_train_mode():
    m = LightSeizureNet(18)
    x = torch.randn(4, 18, 512) * 30
    out = m.ecam(x, with_freq=False)
    (out.logits.sum() + out.cam_features.mean()).backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_inference_mode_folds_batchnorm_with_the_same_outputs():
    torch.manual_seed(0)
    model = LightSeizureNet(18).eval()
    for block in model.blocks:  # non-trivial running statistics
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.weight.data.uniform_(0.5, 1.5)
        block.bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(8, 18, 512) * 50
    with torch.no_grad():
        ref = model(x)
    with torch.inference_mode():
        folded = model(x)
    torch.testing.assert_close(folded, ref, atol=1e-5, rtol=1e-5)
