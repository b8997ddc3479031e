"""LightSeizureNet: shapes, cost budget, channel-resolved ECAM, dominant frequency."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightning_modules.cost import count_macs, count_params
from lightning_modules.lsn import (
    ECAM,
    LightSeizureNet,
    TemporalConv2d,
    _asinh,
    dominant_frequency,
    reference_execution,
    temporal_conv,
)

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
    # Qiu et al.: 6.2 M MACs patient-independent, on the 21 bipolar CHB-MIT channels of their
    # figures (the double banana plus T7-FT9, FT9-FT10, FT10-T8), 2 s at 256 Hz
    paper = LightSeizureNet(21, n_times=512, sfreq=256.0)
    assert count_macs(paper, paper.example_input()) == 5_757_724 <= 6.2e6
    m = LightSeizureNet(18, n_times=512, sfreq=256.0)
    macs = count_macs(m, m.example_input())
    assert macs == 4_935_196  # measured with torch.utils.flop_counter; changes if layers change
    assert count_params(m) == 3_770
    wide = LightSeizureNet(23, n_times=512, sfreq=256.0)  # every channel of a CHB-MIT file
    assert count_macs(wide, wide.example_input()) == 6_306_076
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
    # a frequency in the band where a channel is activated, none (NaN) where it is not
    activated, f = (out.cam > 0).any(-1), out.freq
    assert bool(((f >= 1.0) & (f <= 30.0))[activated].all()) and bool(torch.isnan(f[~activated]).all())
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
    # No activation at all: no dominant frequency (not the background's 1/f low edge).
    assert math.isnan(float(dominant_frequency(y, torch.zeros_like(y), sfreq)))
    # Outside the band (45 Hz line noise residue) is ignored.
    z = 80 * torch.sin(2 * math.pi * 45 * t) + 10 * torch.sin(2 * math.pi * 9 * t)
    assert float(dominant_frequency(z, torch.ones_like(z), sfreq)) == pytest.approx(9.0, abs=0.3)
    with pytest.raises(ValueError, match="differ in shape"):
        dominant_frequency(z, torch.ones(5), sfreq)


def test_ecam_frequency_of_rhythmic_channel(lsn):
    t = torch.arange(512) / 256.0
    x = torch.randn(1, 18, 512) * 5
    x[0, 3] += 100 * torch.sin(2 * math.pi * 6.0 * t)
    model = copy.deepcopy(lsn)
    with torch.no_grad():
        model.classifier.bias[-1] += 1e3  # every channel activated, whatever the untrained weights
        out = model.ecam(x)
        assert (out.cam > 0).all()
        # channel 3's activated signal is a 6 Hz rhythm
        assert float(out.freq[0, 3]) == pytest.approx(6.0, abs=0.5)
        model.classifier.bias[-1] -= 2e3  # nothing activated: no frequency
        assert torch.isnan(model.ecam(x).freq).all()


def test_init_kwargs_rebuild(lsn):
    clone = LightSeizureNet(**lsn.init_kwargs)
    clone.load_state_dict(lsn.state_dict())
    clone.eval()
    x = torch.randn(2, 18, 512) * 30
    with torch.no_grad():
        torch.testing.assert_close(clone(x), lsn(x))
    assert np.array_equal(lsn.init_kwargs["n_filters"], [8, 14, 14, 14, 14, 14, 14])


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


# -- fast execution: the same function as the modules read ------------------------------------
@pytest.mark.parametrize("n_in, groups", [(1, 1), (4, 1), (6, 2), (4, 4)])
@pytest.mark.parametrize("kernel, stride, dilation", [(7, 2, 1), (5, 2, 1), (3, 1, 8), (3, 2, 2), (1, 1, 1)])
@pytest.mark.parametrize("length", [2, 9, 64])
def test_temporal_conv_equals_replicate_padded_conv(n_in, groups, kernel, stride, dilation, length):
    g = torch.Generator().manual_seed(0)
    pad = dilation * (kernel - 1) // 2
    w = torch.randn(4 * groups, n_in // groups, 1, kernel, generator=g)
    b = torch.randn(4 * groups, generator=g)
    x = torch.randn(3, n_in, 5, length, generator=g) * 2 + 1
    ref = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="replicate"), w, b, (1, stride), 0, (1, dilation), groups)
    for layout in (torch.contiguous_format, torch.channels_last):
        out = temporal_conv(x.contiguous(memory_format=layout), w, b, stride, dilation, pad, groups)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_in, groups, kernel, stride, dilation, length", [
    (4, 1, 3, 1, 1, 6), (4, 2, 5, 2, 1, 7), (2, 2, 3, 1, 4, 9), (3, 1, 3, 2, 2, 2), (1, 1, 7, 2, 1, 11)])
def test_temporal_conv_gradients(n_in, groups, kernel, stride, dilation, length):
    """The hand-written backward of the edge terms (and the patch product of one input map)."""
    g = torch.Generator().manual_seed(1)
    pad = dilation * (kernel - 1) // 2
    x = torch.randn(2, n_in, 3, length, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(4, n_in // groups, 1, kernel, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: temporal_conv(x, w, b, stride, dilation, pad, groups), (x, w, b))
    xl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, b: temporal_conv(x, w, b, stride, dilation, pad, groups), (xl, w, b))


def _step(model, x, reference: bool):
    """Output, parameter gradients and BatchNorm running statistics after one training step."""
    model.zero_grad()
    ctx = reference_execution() if reference else torch.enable_grad()
    with ctx:
        out = model(x)
        (out.square().sum() + out[:, 0].sum()).backward()
    stats = [t.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
             for t in (m.running_mean, m.running_var, m.num_batches_tracked)]
    return out.detach(), [p.grad.clone() for p in model.parameters()], stats


@pytest.mark.parametrize("offset_uv", [0.0, 800.0])
def test_training_step_equals_the_modules(offset_uv):
    """Channels-last maps, edge terms instead of padded copies, and the first block's conv +
    BatchNorm as one product: outputs, every gradient and the running statistics are those of
    the plain modules (float64, so equality is tight)."""
    import copy

    torch.manual_seed(0)
    fast = LightSeizureNet(18, dropout=0.0).double().train()
    ref = copy.deepcopy(fast)
    x = (torch.randn(6, 18, 512) * 40 + offset_uv).double()
    for _ in range(2):  # two steps: the running statistics move twice
        out_f, grads_f, stats_f = _step(fast, x, reference=False)
        out_r, grads_r, stats_r = _step(ref, x, reference=True)
    torch.testing.assert_close(out_f, out_r, atol=1e-10, rtol=1e-9)
    for gf, gr in zip(grads_f, grads_r):
        torch.testing.assert_close(gf, gr, atol=1e-9, rtol=1e-7)
    for sf, sr in zip(stats_f, stats_r):
        torch.testing.assert_close(sf, sr, atol=1e-12, rtol=1e-9)
    # float32, as trained: the fast path is no less accurate than the modules (vs float64)
    fast32, ref32 = copy.deepcopy(fast).float(), copy.deepcopy(ref).float()
    out32, _, _ = _step(fast32, x.float(), reference=False)
    ref_out32, _, _ = _step(ref32, x.float(), reference=True)
    truth, _, _ = _step(copy.deepcopy(fast), x, reference=True)
    assert (out32.double() - truth).abs().max() <= 2 * (ref_out32.double() - truth).abs().max() + 1e-6


def test_inference_paths_agree_and_export_sees_the_modules(lsn):
    x = torch.randn(5, 18, 512) * 60
    with torch.no_grad():
        plain = lsn(x)  # eval without inference mode: the modules as they read
    with torch.inference_mode():
        fast = lsn(x)
        with reference_execution():
            ref = lsn(x)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref, plain, atol=1e-6, rtol=1e-6)
    assert all(isinstance(b.conv, TemporalConv2d) for b in lsn.blocks)
    with pytest.raises(ValueError, match="replicate padding"):
        TemporalConv2d(2, 2, (1, 3), padding=(0, 1))


def test_dropout_keeps_the_mask_distribution():
    torch.manual_seed(0)
    m = LightSeizureNet(18, dropout=0.25)
    z = torch.ones(200_000)
    m.dropout.train()
    out = m.dropout(z)
    kept = out != 0
    assert abs(float(kept.float().mean()) - 0.75) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.75))
    m.dropout.eval()
    assert m.dropout(z) is z
    m.dropout.train()
    with reference_execution():  # nn.Dropout's own mask
        assert abs(float((m.dropout(z) != 0).float().mean()) - 0.75) < 0.005


def test_asinh_with_and_without_gradient():
    z = torch.linspace(-300, 300, 2001, dtype=torch.float64)
    torch.testing.assert_close(_asinh(z), torch.asinh(z))
    zg = z.clone().requires_grad_()
    y = _asinh(zg)
    y.sum().backward()
    torch.testing.assert_close(y.detach(), torch.asinh(z))
    torch.testing.assert_close(zg.grad, 1 / torch.sqrt(z * z + 1))


def test_mixed_precision_runs_the_modules():
    """Under autocast (bf16 on CPU here) training takes the plain modules, scoring still folds."""
    m = LightSeizureNet(18).train()
    x = torch.randn(4, 18, 512) * 30
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and all(p.grad is not None for p in m.parameters())
    m.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert m(x).dtype == torch.bfloat16


def test_training_forward_fuses_dropout_and_pool_exactly():
    """forward() in training draws the same dropout mask as features() and gives the same
    logits and gradients as pooling features() (the fused backward writes one map)."""
    import copy

    torch.manual_seed(0)
    fused = LightSeizureNet(18, dropout=0.3).double().train()
    split = copy.deepcopy(fused)
    x = torch.randn(4, 18, 512, dtype=torch.float64) * 30
    torch.manual_seed(5)
    a = fused(x)
    (a ** 2).sum().backward()
    torch.manual_seed(5)
    b = split.classifier(split.features(x).mean((2, 3)))
    (b ** 2).sum().backward()
    torch.testing.assert_close(a, b)
    for p, q in zip(fused.parameters(), split.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_frequency_track_follows_the_simulated_ictal_rhythm(tiny_corpus):
    """Ideal weights (1 over each true seizure, 0 over the 30 s before it): the onset zone's
    per-second frequency follows the generator's sweep (``freq_start_hz`` falling to
    ``freq_end_hz``) where one frequency per seizure could not, and channels never activated
    give NaN."""
    import numpy as np

    from datamodules.edf import read_edf_header, read_edf_signals
    from datamodules.preprocessing import PreprocessingConfig, preprocess
    from eeg.montage import soz_channel_mask
    from lightning_modules.lsn import frequency_track

    root, truth = tiny_corpus
    errors, n_seizures = [], 0
    for patient in truth.patients:
        for rec in patient.recordings:
            header = read_edf_header(root / rec.path)
            labels = list(header.labels)
            soz = np.flatnonzero(soz_channel_mask(labels, patient.soz))
            for sz in rec.seizure_details:
                onset = sz.true_onset_s + sz.lvfa_s  # the rhythm, after low-voltage fast activity
                a, b = int((onset - 30) * 256), int(sz.true_offset_s * 256)
                if a < 0 or b - int(onset * 256) < 6 * 256:
                    continue
                x = read_edf_signals(root / rec.path, range(len(labels)), a, b, header=header)
                x = preprocess(x, 256.0, PreprocessingConfig())[0]
                w = np.zeros_like(x)
                w[soz, 30 * 256:] = 1.0
                freq, t = frequency_track(torch.from_numpy(x), torch.from_numpy(w), 256.0)
                freq, t = freq.numpy(), t.numpy() - 30.0
                assert np.isnan(freq[np.setdiff1d(np.arange(len(labels)), soz)]).all()
                length = (b - a) / 256 - 30
                keep = (t > 1.0) & (t < length - 2.0)
                u = t[keep] / length
                true_hz = sz.freq_end_hz + (sz.freq_start_hz - sz.freq_end_hz) * np.exp(-3.0 * u)
                est = np.median(freq[soz][:, keep], axis=0)
                errors.extend(np.abs(est - true_hz) / true_hz)
                n_seizures += 1
    errors = np.asarray(errors)
    assert n_seizures >= 5 and errors.size >= 100
    assert np.median(errors) < 0.1 and np.mean(errors < 0.25) > 0.8, (np.median(errors), np.mean(errors < 0.25))


@pytest.mark.parametrize("pooling,context", [("mean", True), ("max", False), ("lse", False), ("attention", False),
                                             ("attention", True)])
def test_channel_pooling_keeps_the_cam_exact_per_channel(pooling, context):
    """Every pooling variant: a channel's time-averaged CAM is its own seizure logit, and the
    window's seizure logit is the pool of those (max, log mean exp, attention-weighted sum)."""
    from lightning_modules.lsn import POOLINGS

    assert pooling in POOLINGS
    torch.manual_seed(0)
    m = LightSeizureNet(18, pooling=pooling, channel_context=context).eval()
    with torch.no_grad():
        m.classifier.bias.normal_()  # the context and attention rows matter
    x = torch.randn(3, 18, 512) * 40
    x[0, 4] += 150 * torch.sin(2 * math.pi * 6.0 * torch.arange(512) / 256.0)
    with torch.no_grad():
        out = m.ecam(x)
        z = out.cam_features.mean(2)  # (B, C): each channel's own logit
        seizure_logit = out.logits[:, 1] - out.logits[:, 0]
        f = m.features(x)
        weights = m.channel_weights(z, f)
    expected = {"mean": z.mean(1), "max": z.amax(1), "lse": torch.logsumexp(z, 1) - math.log(18),
                "attention": (weights * z).sum(1)}[pooling]
    torch.testing.assert_close(seizure_logit, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    torch.testing.assert_close(m(x), out.logits)
    # rebuilt from init_kwargs: the same network
    clone = LightSeizureNet(**m.init_kwargs).eval()
    clone.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(clone(x), m(x))
    # trains: every parameter gets a gradient
    m.train()
    m(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    with pytest.raises(ValueError, match="pooling must be one of"):
        LightSeizureNet(18, pooling="median")


def test_attention_pooled_network_compacts_and_keeps_its_outputs():
    from callbacks.pruning import KernelPruning, compact

    torch.manual_seed(1)
    m = LightSeizureNet(18, pooling="attention").eval()
    cb = KernelPruning(target_sparsity=0.5, amount=0.5, scope="filter")
    cb.attach(m)
    cb.prune_round()
    x = torch.randn(2, 18, 512) * 40
    with torch.no_grad():
        before = m(x)
    compact(m)
    with torch.no_grad():
        torch.testing.assert_close(m(x), before, atol=1e-4, rtol=1e-4)
    assert m.classifier.out_features == 3  # two class rows and the attention row, narrower inputs


def test_frequency_track_leaves_weakly_activated_seconds_out():
    from lightning_modules.lsn import frequency_track

    t = torch.arange(20 * 256) / 256.0
    x = (40 * torch.sin(2 * math.pi * 6.0 * t) * (t >= 10) + 5 * torch.randn_like(t))[None]  # a rhythm from 10 s
    w = torch.zeros_like(x)
    w[0, 10 * 256:] = 1.0
    w[0, 2 * 256] = 0.05  # a stray sample of faint activation
    f, times = frequency_track(x, w, 256.0)
    assert torch.isfinite(f[0, times.numpy() < 4]).any()  # any positive weight counts by default
    f, times = frequency_track(x, w, 256.0, min_weight=0.1)
    assert torch.isnan(f[0, times.numpy() < 9]).all() and torch.isfinite(f[0, times.numpy() > 11]).all()
    assert float(f[0, -1]) == pytest.approx(6.0, abs=0.3)
