"""SZLoc network and its loss ensemble (lightning_modules/szloc.py, szloc_losses.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_modules.cost import count_macs, count_params
from lightning_modules.szloc import FusionLayer, MultiHeadAttention, SZLoc, SZLocOutput, onset_maps
from lightning_modules.szloc_losses import NO_ONSET, SZLocLoss, SZLocLossWeights, detection_mask, spatial_terms

torch.set_num_threads(1)


def tiny(**kw) -> SZLoc:
    args = dict(n_chans=6, n_windows=10, window_samples=32, sfreq=32.0, d_model=16, n_heads=2,
                dim_feedforward=24)
    args.update(kw)
    return SZLoc(**args)


def batch_for(model: SZLoc, b: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n, c = model.n_windows, model.n_chans
    x = 30 * torch.randn(b, c, model.n_times, generator=g)
    onset = torch.tensor([4, 6, 0][:b])
    centres = torch.arange(n) + 0.5
    dist = centres[None] - onset[:, None].float()
    dist[-1] = NO_ONSET  # last clip: background
    y = (dist >= 0).long() & (dist < 1e8).long()
    soz = torch.zeros(b, c)
    soz[0, :2] = 1
    soz[1, 3] = 1
    return {"x": x, "y": y, "onset_dist_s": dist, "soz": soz,
            "has_soz": torch.tensor([True, True, False][:b]),
            "is_seizure_clip": torch.tensor([True, True, False][:b])}


def run_loss(loss_fn, out, batch):
    return loss_fn(out, batch["y"], batch["onset_dist_s"], batch["soz"], batch["has_soz"],
                   batch["is_seizure_clip"])


# -- the network ------------------------------------------------------------------------------
def test_default_shapes_size_and_cost():
    model = SZLoc(18).eval()
    assert (model.n_windows, model.window_samples, model.sfreq, model.n_times) == (45, 256, 256.0, 45 * 256)
    n_params = count_params(model)
    # the DeepSOZ re-implementation (ctg_11_8) has ~0.49 M parameters
    assert 0.45e6 < n_params < 0.50e6
    with torch.no_grad():
        out = model(50 * torch.randn(2, 18, 45 * 256))
    assert isinstance(out, SZLocOutput)
    assert out.channel_logits.shape == (2, 18, 45)
    assert out.global_logits.shape == (2, 45)
    assert out.attention.shape == (2, 45)
    assert out.attention_map.shape == out.rise_map.shape == (2, 18)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2))
    for m in (out.attention_map, out.rise_map):
        assert bool(((m >= 0) & (m <= 1)).all())


def test_macs_count_every_layer():
    """count_macs must see the convolutions, linears, GRUs and the attention products (fused
    attention kernels would be invisible to torch.utils.flop_counter)."""
    model = tiny().eval()
    x = model.example_input()
    expected = 0
    hooks = []

    def conv_hook(mod, inp, out):
        nonlocal expected
        expected += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0]

    def linear_hook(mod, inp, out):
        nonlocal expected
        expected += out.numel() * mod.in_features

    def gru_hook(mod, inp, out):
        nonlocal expected
        batch, seq = inp[0].shape[:2]
        h = mod.hidden_size
        dirs = 2 if mod.bidirectional else 1
        for layer in range(mod.num_layers):
            i = mod.input_size if layer == 0 else h * dirs
            expected += dirs * batch * seq * 3 * (i * h + h * h)

    def attn_hook(mod, inp, out):
        nonlocal expected
        b, t, d = inp[0].shape
        expected += 2 * b * t * t * d  # scores and weighted values, all heads together

    for mod in model.modules():
        if isinstance(mod, nn.Conv1d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        elif isinstance(mod, nn.GRU):
            hooks.append(mod.register_forward_hook(gru_hook))
        elif isinstance(mod, FusionLayer):
            hooks.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    macs = count_macs(model, x)
    assert expected > 0
    # the rest (einsum of the onset maps) is a few hundred MACs
    assert expected <= macs <= expected * 1.01 + 1000


def test_no_float64_anywhere():
    model = tiny(cnn_dropout=0.1)
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        assert t.dtype in (torch.float32, torch.int64), name
    batch = batch_for(model)
    out = model(batch["x"])
    for t in out:
        assert t.dtype == torch.float32
    terms = run_loss(SZLocLoss(), out, batch)
    assert terms.total.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in terms.terms.values())


def test_eval_is_deterministic_train_is_not():
    model = tiny(cnn_dropout=0.3, transformer_dropout=0.3)
    x = batch_for(model)["x"]
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        c = model(x)
    assert not torch.allclose(a.channel_logits, c.channel_logits)


def test_gradient_reaches_every_parameter():
    model = tiny(n_fusion_layers=2)
    batch = batch_for(model)
    out = model(batch["x"])
    terms = run_loss(SZLocLoss(band_s=1.0), out, batch)
    terms.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), name
        if name == "attention_head.bias":
            continue  # shifts every logit of a softmax alike: its gradient is 0 up to rounding
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


def test_input_scaling_per_clip_and_fixed():
    model = tiny().eval()
    x = batch_for(model)["x"]
    with torch.no_grad():
        a, b = model(x), model(7.0 * x + 3.0)  # per-clip scaling: gain and offset do not matter
        torch.testing.assert_close(a.channel_logits, b.channel_logits, rtol=1e-4, atol=1e-4)
        fixed = tiny(scale_uv=100.0).eval()
        fixed.load_state_dict(model.state_dict())
        c, d = fixed(x), fixed(7.0 * x)
    assert not torch.allclose(c.channel_logits, d.channel_logits, atol=1e-3)
    with torch.no_grad():  # a flat clip gives finite outputs, not 0/0
        assert all(torch.isfinite(t).all() for t in model(torch.zeros(1, 6, model.n_times)))


def test_any_number_of_windows_and_bad_shapes():
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 6, 3 * 32))
        assert out.channel_logits.shape == (2, 6, 3)
        one = model(torch.randn(1, 6, 32))
        torch.testing.assert_close(one.rise_map, torch.sigmoid(one.channel_logits[:, :, 0]))
    with pytest.raises(ValueError, match="6 channels"):
        model(torch.randn(1, 5, 320))
    with pytest.raises(ValueError, match="32 samples"):
        model(torch.randn(1, 6, 321))
    with pytest.raises(ValueError, match="multiple of 8"):
        SZLoc(6, d_model=20)


def test_init_kwargs_rebuild_the_model():
    model = tiny(scale_uv=50.0)
    clone = SZLoc(**model.init_kwargs)
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    x = batch_for(model)["x"]
    with torch.no_grad():
        torch.testing.assert_close(model(x).attention_map, clone(x).attention_map)


def test_onset_maps_by_hand():
    # channel 2 becomes active at window 5, when the global probability rises
    logits = torch.full((1, 4, 10), -6.0)
    logits[0, 2, 5:] = 6.0
    logits[0, 0, :3] = 6.0  # active early, before the rise
    glob = torch.full((1, 10), -6.0)
    glob[0, 5:] = 6.0
    uniform = torch.full((1, 10), 0.1)
    att, rise = onset_maps(logits, glob, uniform)
    torch.testing.assert_close(att, torch.sigmoid(logits).mean(2))
    assert rise.argmax().item() == 2
    assert rise[0, 2] > 0.99 and rise[0, 0] < 0.01
    # attention focused on window 1 -> channel 0
    focus = torch.zeros(1, 10)
    focus[0, 1] = 1.0
    att, _ = onset_maps(logits, glob, focus)
    assert att.argmax().item() == 0
    # no rise at all: falls back to the mean over windows 1..N-1
    _, flat = onset_maps(logits, torch.zeros(1, 10), uniform)
    torch.testing.assert_close(flat, torch.sigmoid(logits[:, :, 1:]).mean(2))


# -- the losses -------------------------------------------------------------------------------
def fake_output(channel_logits, global_logits, attention_map, rise_map=None):
    b, _, n = channel_logits.shape
    return SZLocOutput(channel_logits, global_logits, torch.full((b, n), 1.0 / n), attention_map,
                       attention_map if rise_map is None else rise_map)


def test_margin_is_zero_when_soz_leads():
    soz = torch.tensor([[1.0, 0.0, 0.0]])
    keep = torch.tensor([True])
    leads = spatial_terms(torch.tensor([[1.0, 0.5, 0.2]]), soz, keep, margin=0.2)
    assert leads["margin"].item() == 0.0
    assert leads["pos"].item() == pytest.approx(0.0, abs=1e-6)
    assert leads["neg"].item() == pytest.approx((0.25 + 0.04) / 2, rel=1e-4)
    close = spatial_terms(torch.tensor([[1.0, 0.9, 0.0]]), soz, keep, margin=0.2)
    assert close["margin"].item() == pytest.approx(0.1, rel=1e-4)
    wrong = spatial_terms(torch.tensor([[0.5, 1.0, 0.0]]), soz, keep, margin=0.2)
    assert wrong["margin"].item() == pytest.approx(0.7, rel=1e-4)
    assert wrong["pos"].item() == pytest.approx(0.25, rel=1e-4)
    # the maps are normalized by their maximum: scale does not matter
    scaled = spatial_terms(torch.tensor([[0.05, 0.1, 0.0]]), soz, keep, margin=0.2)
    for k in wrong:
        assert scaled[k].item() == pytest.approx(wrong[k].item(), rel=1e-3)


def test_spatial_terms_only_where_defined():
    maps = torch.tensor([[0.2, 1.0, 0.1], [1.0, 0.3, 0.3], [0.4, 0.4, 1.0]])
    soz = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 1.0], [0, 0, 0]])
    t = spatial_terms(maps, soz, torch.tensor([True, True, True]))
    # clip 1 (all SOZ) has no "other" channel, clip 2 no SOZ channel: margin only from clip 0
    assert t["margin"].item() == pytest.approx(0.2 - (0.2 - 1.0), rel=1e-4)
    pos0 = (1 - 0.2) ** 2
    pos1 = (0 + 0.7 ** 2 + 0.7 ** 2) / 3
    assert t["pos"].item() == pytest.approx((pos0 + pos1) / 2, rel=1e-3)
    # masked clips do not count
    none = spatial_terms(maps, soz, torch.tensor([False, False, False]))
    assert all(v.item() == 0.0 for v in none.values())


def test_band_excludes_windows_near_onset():
    dist = torch.tensor([[-3.5, -1.5, -0.5, 0.5, 1.5, 3.5], [NO_ONSET] * 6])
    assert detection_mask(dist, 1.0).tolist() == [[True, True, False, False, True, True], [True] * 6]
    assert detection_mask(dist, None).all()

    y = (dist >= 0).long() & (dist < 1e8).long()
    logits = torch.where(y.bool(), 4.0, -4.0)
    inside = detection_mask(dist, 1.0).logical_not()
    wrong = torch.where(inside, -logits, logits)  # confidently wrong only inside the band
    soz = torch.zeros(2, 3)
    flags = torch.tensor([True, False])
    chan = lambda g: g[:, None, :].expand(2, 3, 6).contiguous()  # noqa: E731
    maps = torch.ones(2, 3)

    banded = SZLocLoss(band_s=1.0)
    a = banded(fake_output(chan(logits), logits, maps), y, dist, soz, flags, flags)
    b = banded(fake_output(chan(wrong), wrong, maps), y, dist, soz, flags, flags)
    torch.testing.assert_close(a.terms["det_global"], b.terms["det_global"])
    torch.testing.assert_close(a.terms["det_channel"], b.terms["det_channel"])
    assert int(a.n_detection_windows) == 10
    off = SZLocLoss(band_s=1.0, use_band=False)
    c = off(fake_output(chan(wrong), wrong, maps), y, dist, soz, flags, flags)
    assert c.terms["det_global"] > 5 * a.terms["det_global"]
    assert int(c.n_detection_windows) == 12


def test_channel_max_detection_uses_most_active_channel():
    y = torch.tensor([[0, 1]])
    dist = torch.tensor([[NO_ONSET, NO_ONSET]])
    logits = torch.tensor([[[-5.0, -5.0], [-5.0, 5.0], [-5.0, -5.0]]])  # only channel 1 fires
    out = fake_output(logits, torch.zeros(1, 2), torch.ones(1, 3))
    w = SZLocLossWeights(det_global=0, attn_pos=0, attn_neg=0, attn_margin=0, rise_pos=0,
                         rise_neg=0, rise_margin=0)
    terms = SZLocLoss(w)(out, y, dist, torch.zeros(1, 3), torch.tensor([False]), torch.tensor([False]))
    assert set(terms.terms) == {"det_channel"}
    assert terms.total.item() < 0.01


def test_spatial_terms_skip_clips_without_soz_or_seizure():
    model = tiny()
    batch = batch_for(model)
    out = model(batch["x"])
    loss_fn = SZLocLoss(SZLocLossWeights(det_channel=0, det_global=0))
    base = run_loss(loss_fn, out, batch)
    assert int(base.n_spatial_clips) == 2
    # changing the map of the background clip (no SOZ, not a seizure clip) changes nothing
    am = out.attention_map.clone()
    am[2] = torch.rand(6)
    moved = run_loss(loss_fn, out._replace(attention_map=am, rise_map=am.clone()), batch)
    changed = out.attention_map.clone()
    changed[0] = torch.rand(6)
    moved_seizure = run_loss(loss_fn, out._replace(attention_map=changed), batch)
    torch.testing.assert_close(moved.terms["attn_pos"], base.terms["attn_pos"])
    assert not torch.allclose(moved_seizure.terms["attn_pos"], base.terms["attn_pos"])


def test_weights_switch_terms_off():
    model = tiny()
    batch = batch_for(model)
    out = model(batch["x"])
    full = run_loss(SZLocLoss(), out, batch)
    assert set(full.terms) == {"det_channel", "det_global", "attn_pos", "attn_neg", "attn_margin",
                               "rise_pos", "rise_neg", "rise_margin"}
    torch.testing.assert_close(full.total, torch.stack(list(full.terms.values())).sum())
    no_rise = run_loss(SZLocLoss(SZLocLossWeights(rise_pos=0, rise_neg=0, rise_margin=0)), out, batch)
    assert not any(k.startswith("rise") for k in no_rise.terms)
    doubled = run_loss(SZLocLoss(SZLocLossWeights(attn_pos=4.0)), out, batch)
    torch.testing.assert_close(doubled.terms["attn_pos"], 2 * full.terms["attn_pos"])
    off = SZLocLossWeights(**{k: 0.0 for k in SZLocLossWeights().as_dict()})
    nothing = run_loss(SZLocLoss(off), out, batch)
    assert nothing.terms == {} and nothing.total.item() == 0.0
    nothing.total.backward()  # still differentiable (e.g. for DDP)
    with pytest.raises(ValueError, match="attn_pos"):
        SZLocLossWeights(attn_pos=-1.0)
    with pytest.raises(ValueError, match="band_s"):
        SZLocLoss(band_s=-1.0)


def test_bf16_autocast_forward_and_loss():
    model = tiny()
    batch = batch_for(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch["x"])
        terms = run_loss(SZLocLoss(), out, batch)
    assert terms.total.dtype == torch.float32
    assert torch.isfinite(terms.total)
    terms.total.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    assert np.isfinite(terms.total.item())


# -- the reference configuration (DeepSOZ ctg_11_8) --------------------------------------------
def reference(**kw) -> SZLoc:
    return tiny(fusion="reference", rise_from="channels", **kw)


def test_reference_fusion_leaves_the_global_stream_raw():
    """Reference wiring: only channel tokens come out of the transformer; the global GRU (and so
    detection and attention) reads the global CNN output. Joint wiring: both read the fusion."""
    x = batch_for(tiny())["x"]
    for kind, global_depends in (("reference", False), ("joint", True)):
        model = tiny(fusion=kind).eval()
        fusion = model.reference_fusion if kind == "reference" else model.fusion
        with torch.no_grad():
            a = model(x)
            for p in fusion.parameters():
                p.add_(0.5 * torch.randn_like(p))
            b = model(x)
        assert not torch.allclose(a.channel_logits, b.channel_logits, atol=1e-4)
        assert torch.allclose(a.global_logits, b.global_logits, atol=1e-6) != global_depends
        assert torch.allclose(a.attention, b.attention, atol=1e-6) != global_depends
    assert not hasattr(reference(), "global_token_type")


def test_reference_gradients_kwargs_and_sizes():
    model = reference(n_fusion_layers=2)
    batch = batch_for(model)
    run_loss(SZLocLoss(margin_kind="reference", detection_exclude="windows", exclude_windows=(3, 6)),
             model(batch["x"]), batch).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        # a softmax ignores a shift: the attention head's bias gets (numerically) no gradient
        assert name == "attention_head.bias" or p.grad.abs().sum() > 0, f"zero gradient for {name}"
    clone = SZLoc(**model.init_kwargs)
    assert clone.init_kwargs["fusion"] == "reference" and clone.init_kwargs["rise_from"] == "channels"
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch["x"]).rise_map, clone(batch["x"]).rise_map)
    # the re-implementation's input (19 electrodes, 1 s at 200 Hz, stride-1 embedding, d_model 80,
    # 8 heads): DeepSOZ's ctg_11_8 has 490,791 trainable parameters; ours 549,929 (see the docstring)
    big = SZLoc(19, window_samples=200, sfreq=200.0, d_model=80, n_heads=8, fusion="reference",
                rise_from="channels", embed_stride=1)
    assert count_params(big) == 549_929
    with pytest.raises(ValueError, match="fusion"):
        tiny(fusion="late")
    with pytest.raises(ValueError, match="rise_from"):
        tiny(rise_from="max")
    with pytest.raises(ValueError, match="embed_stride"):
        tiny(embed_stride=0)


def test_reference_macs_count_the_attention():
    model = reference().eval()
    x = model.example_input()
    attn = 0

    def hook(mod, inp, out):
        nonlocal attn
        b, t, d = inp[0].shape
        attn += 2 * b * t * inp[1].shape[1] * d

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, MultiHeadAttention)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    c, d, n = model.n_chans, model.d_model, model.n_windows
    # encoder self-attention over C + 1 tokens, decoder self (C) and cross (C x C + 1) attention
    assert attn == 2 * n * d * ((c + 1) ** 2 + c * c + c * (c + 1))
    no_attn = count_macs(model, x) - attn
    assert no_attn > 0 and count_macs(model, x) > count_macs(tiny().eval(), x) - no_attn


def test_rise_map_from_the_most_active_channel():
    # the global probability never rises; the most active channel rises at window 5 (channel 2)
    logits = torch.full((1, 4, 10), -6.0)
    logits[0, 2, 5:] = 6.0
    logits[0, 0, :3] = 6.0
    glob = torch.full((1, 10), -6.0)
    uniform = torch.full((1, 10), 0.1)
    _, from_global = onset_maps(logits, glob, uniform)
    _, from_channels = onset_maps(logits, glob, uniform, rise_from="channels")
    torch.testing.assert_close(from_global, torch.sigmoid(logits[:, :, 1:]).mean(2))  # no rise: mean
    assert from_channels.argmax().item() == 2 and from_channels[0, 2] > 0.99


def test_reference_margin_by_hand():
    soz = torch.tensor([[1.0, 0.0, 0.0]])
    keep = torch.tensor([True])
    # SOZ leads by 0.3: the hinge is satisfied, the reference term still pushes the other down
    leads = torch.tensor([[1.0, 0.7, 0.0]])
    assert spatial_terms(leads, soz, keep, 0.2, "hinge")["margin"].item() == 0.0
    assert spatial_terms(leads, soz, keep, 0.2, "reference")["margin"].item() == pytest.approx(0.245, abs=1e-4)
    # the best other channel on top: (1 - 0.5^2 + 1^2) / 2
    wrong = torch.tensor([[0.5, 1.0, 0.0]])
    assert spatial_terms(wrong, soz, keep, 0.2, "reference")["margin"].item() == pytest.approx(0.875, abs=1e-4)
    # perfect map: (1 - 1 + 0) / 2 = 0; positive and negative terms are the same in both kinds
    perfect = torch.tensor([[1.0, 0.0, 0.0]])
    assert spatial_terms(perfect, soz, keep, 0.2, "reference")["margin"].item() == pytest.approx(0.0, abs=1e-5)
    for k in ("pos", "neg"):
        assert spatial_terms(wrong, soz, keep, 0.2, "reference")[k] == spatial_terms(wrong, soz, keep)[k]
    with pytest.raises(ValueError, match="margin_kind"):
        SZLocLoss(margin_kind="soft")


def test_detection_on_fixed_windows_of_onset_clips():
    """detection_exclude="windows": onset clips train detection on windows 0-14 and 30-44 only
    (DeepSOZ); other clips keep the band around any onset they hold; use_band=False: all."""
    n = 45
    dist = torch.stack([torch.arange(n) + 0.5 - 20.0,  # onset clip, onset in window 20
                        torch.arange(n) + 0.5 - 3.0,  # a clip drawn anywhere, onset in window 3
                        torch.full((n,), NO_ONSET)])  # background
    seizure_clip = torch.tensor([True, False, False])
    ref = SZLocLoss(detection_exclude="windows", band_s=2.0).detection_windows(dist, seizure_clip)
    assert ref[0].nonzero().flatten().tolist() == list(range(15)) + list(range(30, 45))
    assert ref[1].logical_not().nonzero().flatten().tolist() == [1, 2, 3, 4]  # |d| <= 2 s
    assert ref[2].all()
    band = SZLocLoss(band_s=2.0).detection_windows(dist, seizure_clip)
    assert band[0].logical_not().nonzero().flatten().tolist() == [18, 19, 20, 21]
    assert SZLocLoss(detection_exclude="windows", use_band=False).detection_windows(dist, seizure_clip).all()
    with pytest.raises(ValueError, match="exclude_windows"):
        SZLocLoss(detection_exclude="windows", exclude_windows=(15, 60)).detection_windows(dist, seizure_clip)
    with pytest.raises(ValueError, match="detection_exclude"):
        SZLocLoss(detection_exclude="ends")
