"""KernelPruning: kernel ranking, schedule, masks during fine-tuning, resume, compaction."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from callbacks.pruning import KernelPruning, compact, kernel_mask, kernel_scores, sparse_macs, unpruned_params
from lightning_modules.checkpoints import describe, load_module
from lightning_modules.cost import count_macs, count_params
from lightning_modules.detection import SeizureDetectionModule
from lightning_modules.lsn import LightSeizureNet, SparseKernelConv, TemporalConv2d

torch.set_num_threads(1)
C, T, SFREQ = 18, 512, 256.0
#: Pruning mechanics are checked (and their figures written) on the 16-wide network; the
#: default is narrower (see test_lsn), the mechanics are the same.
WIDE = (8, 16, 16, 16, 16, 16, 16)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Windows(Dataset):
    """Batch-contract windows; seizure = 6 Hz, 100 uV rhythm on 2 random channels."""

    def __init__(self, n: int, seed: int):
        g = np.random.default_rng(seed)
        t = np.arange(T) / SFREQ
        self.y = g.integers(0, 2, n)
        self.x = g.normal(0, 15, (n, C, T)).astype(np.float32)
        for i in np.flatnonzero(self.y):
            self.x[i, g.choice(C, 2, replace=False)] += 100 * np.sin(2 * np.pi * 6 * t + g.uniform(0, 6))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.x[i]), "y": torch.tensor(int(self.y[i])),
                "boundary_dist_s": torch.tensor(1e9), "onset_dist_s": torch.tensor(1e9),
                "soz": torch.zeros(C), "has_soz": torch.tensor(False),
                "recording": f"r{i}", "patient": "p0", "start_s": torch.tensor(0.0)}


@pytest.fixture(scope="module")
def loader():
    return DataLoader(Windows(64, 0), batch_size=16, shuffle=True)


def _trainer(**kw) -> pl.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
    defaults.update(kw)
    return pl.Trainer(**defaults)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """BatchNorm statistics and shifts far from identity, so folding constants matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.2)  # mostly positive: ReLU passes it


# -- ranking -------------------------------------------------------------------------------
def test_l1_layer_scope_prunes_smallest_kernels_per_layer():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    before = {n: kernel_scores(m.weight, "l1").clone()
              for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    cb = KernelPruning(target_sparsity=0.5, amount=1.0, scope="layer", criterion="l1")
    cb.attach(model)
    n = cb.prune_round()
    total = sum(s.numel() for s in before.values())
    assert n == total // 2 and cb.sparsity == pytest.approx(0.5, abs=0.01)
    for name, scores in before.items():
        mask = cb.masks[name]
        assert (~mask).float().mean() == pytest.approx(0.5, abs=1.0 / mask.numel() + 1e-6)
        assert scores[~mask].max() <= scores[mask].min()  # pruned are the weakest of the layer
        assert torch.equal(kernel_mask(dict(model.named_modules())[name].weight), mask)
    # The schedule never overshoots: a second round at the target prunes nothing.
    assert cb.prune_round() == 0


def test_global_scope_and_random_criterion():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    cb = KernelPruning(target_sparsity=0.6, amount=1.0, scope="global")
    cb.attach(model)
    cb.prune_round()
    assert cb.sparsity == pytest.approx(0.6, abs=1e-3)
    per_layer = [float((~m).float().mean()) for m in cb.masks.values()]
    assert max(per_layer) - min(per_layer) > 0.05  # layers end at different sparsities
    assert all(int(m.sum()) >= 1 for m in cb.masks.values())
    masks = []
    for _ in range(2):
        cb = KernelPruning(scope="filter_balanced", target_sparsity=0.3, amount=1.0, criterion="random", seed=7)
        cb.attach(LightSeizureNet(C, n_filters=WIDE))
        cb.prune_round()
        masks.append(cb.masks)
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


def test_l1_bn_prunes_whole_weak_filters():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    model.blocks[3].bn.weight.data[[2, 5]] = 1e-3  # two filters the network barely uses
    cb = KernelPruning(target_sparsity=0.2, amount=1.0, criterion="l1_bn", scope="layer")
    cb.attach(model)
    cb.prune_round()
    mask = cb.masks["blocks.3.conv"]
    assert not mask[[2, 5]].any()  # their kernels go first: whole rows
    nxt = cb.masks["blocks.4.conv"]
    assert not nxt[:, [2, 5]].any()  # and the kernels reading them
    # Balanced scope keeps every filter's row count equal, but every filter of the next layer
    # drops its inputs from the weak filters first: nobody reads them, compaction removes them.
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    model.blocks[3].bn.weight.data[[2, 5]] = 1e-3
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.2, amount=1.0, criterion="l1_bn")
    cb.attach(model)
    cb.prune_round()
    assert cb.masks["blocks.3.conv"].sum(1).unique().tolist() == [13]
    assert not cb.masks["blocks.4.conv"][:, [2, 5]].any()
    assert compact(model.eval()).widths_after[3] == 14


def test_bad_arguments():
    with pytest.raises(ValueError, match="target_sparsity"):
        KernelPruning(target_sparsity=1.0)
    with pytest.raises(ValueError, match="criterion"):
        KernelPruning(criterion="taylor")
    with pytest.raises(ValueError, match="scope"):
        KernelPruning(scope="block")
    with pytest.raises(ValueError, match="no convolution.*matching 'nothing'"):
        KernelPruning(include="nothing").attach(LightSeizureNet(C, n_filters=WIDE))


# -- compaction ----------------------------------------------------------------------------
def _pruned_lsn() -> tuple[LightSeizureNet, KernelPruning]:
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    _randomize_bn(model)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    # Force whole-filter cases: dead filters (all their kernels pruned: a constant map to fold
    # into the next layer) and an unread filter (all kernels reading it pruned).
    cb.masks["blocks.2.conv"][3] = False
    cb.masks["blocks.4.conv"][[5, 6]] = False
    cb.masks["blocks.6.conv"][:, 2] = False
    cb.masks["blocks.6.conv"][9] = False  # last block: folded into the classifier bias
    cb.apply_masks()
    return model.eval(), cb


def test_compaction_matches_masked_model():
    model, _ = _pruned_lsn()
    x = torch.randn(5, C, T) * 50
    with torch.no_grad():
        ref, ref_ecam = model(x), model.ecam(x)
    dense_macs = count_macs(model, model.example_input())
    assert sparse_macs(model, model.example_input()) < 0.55 * dense_macs
    n_pruned_weights = sum(int((~kernel_mask(m.weight)).sum()) * m.weight.shape[-1]
                           for m in model.modules() if isinstance(m, nn.Conv2d))
    assert unpruned_params(model) == count_params(model) - n_pruned_weights > 0
    small = copy.deepcopy(model)
    report = compact(small)
    assert report.params_after < report.params_before == count_params(model)
    assert report.macs_after < report.macs_before == dense_macs
    assert report.widths_after[2] <= 15 and report.widths_after[4] <= 14 and report.widths_after[5] <= 15
    assert small.n_filters == report.widths_after
    with torch.no_grad():
        out, ecam = small(x), small.ecam(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.cam, ref_ecam.cam, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.freq, ref_ecam.freq, atol=1e-3, rtol=0, equal_nan=True)
    # The compacted shape is rebuilt from init_kwargs (what a checkpoint reload does).
    rebuilt = LightSeizureNet(**small.init_kwargs)
    rebuilt.load_state_dict(small.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ref, atol=1e-5, rtol=1e-5)
    # Forced whole rows and columns leave some filters with fewer kernels than others: those
    # layers are compacted to the largest count, the missing kernels padded with zeros.
    assert isinstance(small.blocks[6].conv, SparseKernelConv)
    assert report.kernels_per_filter[6] < report.widths_after[5]
    # Compacting again removes nothing more and changes nothing.
    again = compact(small)
    assert again.widths_after == again.widths_before
    assert again.kernels_per_filter == report.kernels_per_filter
    assert again.macs_after == report.macs_after and again.params_after == report.params_after
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref, atol=1e-5, rtol=1e-5)


class ZeroPadChain(nn.Module):
    """A conv chain whose convolutions pad with zeros (a constant map is not constant there)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()
        for i, o in [(1, 4), (4, 4)]:
            blk = nn.Module()
            blk.conv, blk.bn, blk.act = nn.Conv2d(i, o, (1, 5), padding=(0, 2)), nn.BatchNorm2d(o), nn.ReLU()
            self.blocks.append(blk)
        self.head = nn.Linear(4, 2)

    def conv_chain(self):
        return list(self.blocks), self.head

    def forward(self, x):
        z = x.unsqueeze(1)
        for b in self.blocks:
            z = b.act(b.bn(b.conv(z)))
        return self.head(z.mean((2, 3)))


def test_compaction_keeps_unfoldable_filters_with_zero_padding():
    torch.manual_seed(0)
    model = ZeroPadChain()
    _randomize_bn(model)
    with torch.no_grad():
        model.blocks[0].conv.weight[1] = 0  # dead filter, but the next conv zero-pads: keep it
        model.blocks[0].conv.bias[1] = 0.7
        model.blocks[1].conv.weight[:, 3] = 0  # filter 3 of block 0 is read by nobody: remove
        model.blocks[1].conv.weight[2] = 0  # dead filter of the last block: fold into the head
    model.eval()
    x = torch.randn(3, 4, 64)
    ref = model(x)
    report = compact(model, x[:1])
    assert report.widths_after == (3, 3)
    torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="no conv_chain"):
        compact(nn.Sequential(nn.Conv1d(2, 2, 3)))


# -- balanced kernel-wise pruning and sparse-kernel compaction ----------------------------
def test_filter_balanced_scope_is_balanced():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    before = {n: kernel_scores(m.weight, "l1").clone()
              for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert KernelPruning().scope == "filter"  # the default: the structure that runs fastest
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.6, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    total = sum(m.numel() for m in cb.masks.values())
    # Never above the target, and short of it by less than one step (one kernel per filter).
    assert 0.6 - 16 / total < cb.sparsity <= 0.6
    assert not cb.can_prune_more() and cb.prune_round() == 0
    assert cb.masks["blocks.0.conv"].all()  # one input map per filter: nothing to choose from
    kept = {}
    for name, mask in cb.masks.items():
        if name == "blocks.0.conv":
            continue
        per_filter = mask.sum(1).unique().tolist()
        assert len(per_filter) == 1, (name, per_filter)  # every filter keeps the same number
        kept[name] = per_filter[0]
        scores = before[name]
        for o in range(mask.shape[0]):  # inside each filter, the weakest kernels went
            assert scores[o][~mask[o]].max() <= scores[o][mask[o]].min()
    # Each layer keeps ceil or floor of 40 % of its 8 or 16 inputs.
    assert kept["blocks.1.conv"] in (3, 4)
    assert all(v in (6, 7) for k, v in kept.items() if k != "blocks.1.conv")


def test_filter_balanced_rounds_progress_and_stay_balanced():
    torch.manual_seed(0)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=0.2)
    cb.attach(LightSeizureNet(C, n_filters=WIDE))
    seen = [cb.sparsity]
    while cb.prune_round() > 0:
        seen.append(cb.sparsity)
        assert all(len(m.sum(1).unique()) == 1 for m in cb.masks.values())
    assert len(seen) > 3 and seen == sorted(seen) and 0.49 < seen[-1] <= 0.5
    # A round smaller than one step (16 kernels) still takes the cheapest step.
    torch.manual_seed(0)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=0.001)
    cb.attach(LightSeizureNet(C, n_filters=WIDE))
    assert cb.prune_round() == 16 and cb.can_prune_more()


@pytest.mark.parametrize("target, macs, params", [(0.5, 3_207_200, 2_538),
                                                   (0.6, 2_580_512, 2_074),
                                                   (0.7, 2_009_120, 1_658)])
def test_balanced_compaction_really_drops_macs(target, macs, params):
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    _randomize_bn(model)
    model.eval()
    dense_macs = count_macs(model, model.example_input())
    cb = KernelPruning(scope="filter_balanced", target_sparsity=target, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    x = torch.randn(4, C, T) * 50
    with torch.no_grad():
        ref, ref_ecam = model(x), model.ecam(x)
    masked_sparse = sparse_macs(model, model.example_input())
    report = compact(model)
    # flop_counter on the compacted network counts exactly the surviving kernels.
    assert report.macs_before == dense_macs == 6_156_320
    assert report.macs_after == masked_sparse == count_macs(model, model.example_input()) == macs
    assert report.params_after == count_params(model) == params < 4_778
    if target >= 0.6:
        assert report.macs_after <= 0.5 * dense_macs
    per_filter = [kept for kept in report.kernels_per_filter]
    assert per_filter[0] == 1 and all(m < f for m, f in zip(per_filter[1:], report.widths_after))
    assert all(isinstance(b.conv, SparseKernelConv) for b in model.blocks[1:])
    with torch.no_grad():
        out, ecam = model(x), model.ecam(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.cam, ref_ecam.cam, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.cam_features, ref_ecam.cam_features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.freq, ref_ecam.freq, atol=1e-3, rtol=0, equal_nan=True)
    # init_kwargs carries the kept kernels: the compact network rebuilds from them.
    kwargs = model.init_kwargs
    assert [len(ki[0]) if ki else None for ki in kwargs["kernel_index"]] == [None] + per_filter[1:]
    rebuilt = LightSeizureNet(**kwargs)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ref, atol=1e-5, rtol=1e-5)


def test_compacted_network_can_be_pruned_and_compacted_again():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    _randomize_bn(model)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    first = compact(model.eval())
    # A second callback sees the grouped convolutions' (out, m) kernels and prunes inside them.
    cb2 = KernelPruning(scope="filter_balanced", target_sparsity=0.25, amount=1.0, criterion="l1_bn")
    cb2.attach(model)
    assert "blocks.3.conv.grouped" in cb2.masks and cb2.masks["blocks.3.conv.grouped"].shape == (16, 8)
    assert cb2.prune_round() > 0
    x = torch.randn(3, C, T) * 50
    with torch.no_grad():
        ref = model(x)
    second = compact(model)
    assert second.macs_after < first.macs_after
    assert all(m2 <= m1 for m1, m2 in zip(first.kernels_per_filter, second.kernels_per_filter))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padding, padding_mode, stride, dilation, dims", [
    ((0, 2), "replicate", (1, 2), (1, 1), 2),
    ((0, 4), "reflect", (1, 1), (1, 2), 2),
    ((1, 2), "zeros", (1, 1), (1, 1), 2),
    ("same", "replicate", (1, 1), (1, 3), 2),
    ("valid", "circular", (1, 2), (1, 1), 2),
    (3, "circular", 2, 2, 1),
])
def test_sparse_kernel_conv_equals_masked_dense_conv(padding, padding_mode, stride, dilation, dims):
    from torch.utils.flop_counter import FlopCounterMode

    g = torch.Generator().manual_seed(0)
    n_in, n_out, m = 6, 5, 3
    index = [sorted(torch.randperm(n_in, generator=g)[:m].tolist()) for _ in range(n_out)]
    ks = (1, 5) if dims == 2 else 4
    conv_cls = nn.Conv2d if dims == 2 else nn.Conv1d
    dense = conv_cls(n_in, n_out, ks, stride=stride, padding=padding, dilation=dilation,
                     padding_mode=padding_mode, bias=True)
    mask = torch.zeros(n_out, n_in, dtype=torch.bool)
    for o, row in enumerate(index):
        mask[o, row] = True
    with torch.no_grad():
        dense.weight.mul_(mask.view(mask.shape + (1,) * dims))
    sparse = SparseKernelConv(n_in, index, ks, stride=stride, padding=padding, dilation=dilation,
                              padding_mode=padding_mode, bias=True, dims=dims)
    sparse.load_dense_weight(dense.weight.detach(), dense.bias.detach())
    torch.testing.assert_close(sparse.dense_weight(), dense.weight.detach())
    x = torch.randn((2, n_in, 3, 40) if dims == 2 else (2, n_in, 40), generator=g)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = sparse(x)
    torch.testing.assert_close(out, dense(x).detach(), atol=1e-5, rtol=1e-5)
    k = 5 if dims == 2 else 4
    assert counter.get_total_flops() // 2 == out.numel() * m * k  # only the kept kernels
    assert sparse.padding_mode == padding_mode and sparse.kernels_per_filter == m


def test_sparse_kernel_conv_errors():
    with pytest.raises(ValueError, match="equally long"):
        SparseKernelConv(4, [[0, 1], [2]], (1, 3))
    with pytest.raises(ValueError, match="reads input maps 0..4 of a layer with 4 inputs"):
        SparseKernelConv(4, [[0, 4]], (1, 3))
    with pytest.raises(ValueError, match="twice"):
        SparseKernelConv(4, [[1, 1]], (1, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        SparseKernelConv(4, [[1, 2]], (1, 3), padding_mode="edge")
    conv = SparseKernelConv(4, [[0, 1], [2, 3]], (1, 3))
    w = torch.ones(2, 4, 1, 3)  # filter 0 also has a kernel on input 2: it would be lost
    with pytest.raises(ValueError, match="outside kernel_index"):
        conv.load_dense_weight(w)
    with pytest.raises(ValueError, match=r"does not fit \(2, 4, 1, 3\)"):
        conv.load_dense_weight(torch.ones(2, 5, 1, 3))
    with pytest.raises(ValueError, match="one entry .* per block, 7, got 2"):
        LightSeizureNet(C, n_filters=WIDE, kernel_index=[None, None])
    with pytest.raises(ValueError, match="block 1: kernel_index has 2 filters, the block 16"):
        LightSeizureNet(C, n_filters=WIDE, kernel_index=[None, [[0], [1]], None, None, None, None, None])


def test_sparse_macs_equals_flop_counter_on_dense_model():
    m = LightSeizureNet(C, n_filters=WIDE)
    assert sparse_macs(m, m.example_input()) == count_macs(m, m.example_input())
    assert unpruned_params(m) == count_params(m)


# -- whole filters -------------------------------------------------------------------------
CHAIN = [f"blocks.{i}.conv" for i in range(7)]


def test_filter_scope_prunes_whole_filters_evenly():
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    with torch.no_grad():  # a filter whose kernels, and the kernels reading it, are weak
        model.blocks[4].conv.weight[7] *= 0.05
        model.blocks[5].conv.weight[:, 7] *= 0.05
    cb = KernelPruning(target_sparsity=0.6, amount=1.0, scope="filter")
    cb.attach(model)
    n = cb.prune_round()
    total = sum(m.numel() for m in cb.masks.values())
    assert total == 8 + 16 * 8 + 5 * 16 * 16
    assert n == sum(int((~m).sum()) for m in cb.masks.values()) and 0.55 < cb.sparsity <= 0.6
    assert not cb.can_prune_more() and cb.prune_round() == 0  # the next filter would overshoot
    assert not cb.masks["blocks.4.conv"][7].any()
    for i, name in enumerate(CHAIN):
        mask = cb.masks[name]
        live = mask.any(1)
        # a filter is kept whole or removed whole, and the next layer stops reading a removed one
        assert torch.equal(mask, live[:, None] & mask.any(0)[None, :])
        if i + 1 < len(CHAIN):
            assert torch.equal(cb.masks[CHAIN[i + 1]].any(0), live)
        # every layer keeps about the same fraction of its filters (even thinning)
        assert abs(int(live.sum()) / mask.shape[0] - 0.63) < 0.1, (name, int(live.sum()))
    # pruned kernels are zero in the weights, and one filter at a time was the weakest of its layer
    assert all(torch.equal(kernel_mask(dict(model.named_modules())[n].weight), cb.masks[n]) for n in CHAIN)
    torch.manual_seed(0)
    one = KernelPruning(target_sparsity=0.015, amount=1.0, scope="filter")  # room for one filter
    one.attach(LightSeizureNet(C, n_filters=WIDE))
    one.prune_round()
    gone = [(i, j) for i, n in enumerate(CHAIN) for j in (~one.masks[n].any(1)).nonzero().flatten().tolist()]
    assert len(gone) == 1
    i, j = gone[0]
    torch.manual_seed(0)  # the weights the callback saw
    scores = {n: kernel_scores(m.weight, "l1")
              for n, m in LightSeizureNet(C, n_filters=WIDE).named_modules() if n in CHAIN}
    mass = scores[CHAIN[i]].sum(1) / scores[CHAIN[i]].mean()
    if i + 1 < len(CHAIN):
        mass = mass + scores[CHAIN[i + 1]].sum(0) / scores[CHAIN[i + 1]].mean()
    assert j == int(mass.argmin())


def test_filter_scope_rounds_and_criteria():
    torch.manual_seed(0)
    cb = KernelPruning(target_sparsity=0.6, amount=0.25, scope="filter")
    cb.attach(LightSeizureNet(C, n_filters=WIDE))
    seen = [0.0]
    while cb.prune_round() > 0:
        seen.append(cb.sparsity)
    assert len(seen) > 3 and seen == sorted(seen) and 0.55 < seen[-1] <= 0.6
    # l1_bn: a filter the network barely uses (tiny BatchNorm gain) goes first
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    model.blocks[3].bn.weight.data[2] = 1e-3
    cb = KernelPruning(target_sparsity=0.05, amount=1.0, scope="filter", criterion="l1_bn")
    cb.attach(model)
    cb.prune_round()
    assert not cb.masks["blocks.3.conv"][2].any() and not cb.masks["blocks.4.conv"][:, 2].any()
    # a round smaller than one filter still removes the cheapest one
    cb = KernelPruning(target_sparsity=0.5, amount=0.001, scope="filter")
    cb.attach(LightSeizureNet(C, n_filters=WIDE))
    assert 0 < cb.prune_round() <= 17 and cb.can_prune_more()
    # the scope needs the chain structure (which maps feed which filters)
    with pytest.raises(ValueError, match="scope 'filter' needs a conv chain"):
        cb = KernelPruning(target_sparsity=0.5, scope="filter")
        cb.attach(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3)))
        cb.prune_round()


@pytest.mark.parametrize("target, max_macs", [(0.5, 0.53), (0.6, 0.45), (0.7, 0.33)])
def test_filter_scope_compacts_to_a_narrower_dense_network(target, max_macs):
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    _randomize_bn(model)
    cb = KernelPruning(target_sparsity=target, amount=1.0, scope="filter")
    cb.attach(model)
    cb.prune_round()
    model.eval()
    live = [int(cb.masks[n].any(1).sum()) for n in CHAIN]
    x = torch.randn(4, C, T) * 50
    with torch.no_grad():
        ref, ref_ecam = model(x), model.ecam(x)
    report = compact(model)
    assert list(report.widths_after) == live and model.n_filters == tuple(live)
    assert all(type(b.conv) is TemporalConv2d for b in model.blocks)  # dense convolutions
    assert report.macs_after == count_macs(model, model.example_input()) <= max_macs * 6_156_320
    with torch.no_grad():
        out, ecam = model(x), model.ecam(x)
    with torch.inference_mode():
        fast = model(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.cam, ref_ecam.cam, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ecam.freq, ref_ecam.freq, atol=1e-3, rtol=0, equal_nan=True)
    kwargs = model.init_kwargs
    assert kwargs["kernel_index"] is None and kwargs["n_filters"] == live
    rebuilt = LightSeizureNet(**kwargs)
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ref, atol=1e-5, rtol=1e-5)


def test_callback_state_loads_with_weights_only(tmp_path):
    """Masks, epoch and history are plain types and tensors: ``torch.load(weights_only=True)``."""
    torch.manual_seed(0)
    model = LightSeizureNet(C, n_filters=WIDE)
    cb = KernelPruning(target_sparsity=0.5, amount=0.5, scope="filter")
    cb.attach(model)
    cb.prune_round()
    cb.history.append({"epoch": 1, "round": 1, "pruned": 3, "sparsity": cb.sparsity})
    torch.save(cb.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    cb2 = KernelPruning(target_sparsity=0.5, amount=0.5, scope="filter")
    cb2.load_state_dict(state)
    assert all(torch.equal(cb2.masks[k], cb.masks[k]) for k in cb.masks)
    assert cb2.history == cb.history and cb2.last_round_epoch == cb.last_round_epoch


# -- in the training loop ------------------------------------------------------------------
def test_schedule_masks_hold_and_compaction_at_fit_end(loader, tmp_path):
    pl.seed_everything(0)
    module = SeizureDetectionModule(LightSeizureNet(C, n_filters=WIDE), lr=3e-3)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=0.3, start_epoch=1, every_n_epochs=2,
                       compact_on_fit_end=False)
    trainer = _trainer(max_epochs=5, callbacks=[cb], logger=CSVLogger(tmp_path, name="p"))
    trainer.fit(module, loader)
    assert [h["epoch"] for h in cb.history] == [1, 3]
    assert cb.history[0]["sparsity"] == pytest.approx(0.3, abs=0.01)
    assert cb.history[1]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert cb.history[1]["macs_sparse"] < cb.history[0]["macs_sparse"] < count_macs(
        LightSeizureNet(C, n_filters=WIDE), LightSeizureNet(C, n_filters=WIDE).example_input())
    # Fine-tuning happened and pruned kernels stayed at exactly zero.
    for name, conv in cb._convs.items():
        assert torch.equal(kernel_mask(conv.weight), cb.masks[name]), name
    metrics = pd.read_csv(next(tmp_path.rglob("metrics.csv")))
    for col in ("prune/sparsity", "prune/params_unpruned", "prune/macs_sparse", "prune/params_compact",
                "prune/macs_compact"):
        assert col in metrics.columns, col
    assert metrics["prune/sparsity"].dropna().tolist() == pytest.approx([0, 0.3, 0.3, 0.5, 0.5], abs=0.01)

    # Now compact the trained module: cost drops, outputs and ECAM stay, hparams follow.
    module.eval()
    x = torch.from_numpy(loader.dataset.x[:6])
    with torch.no_grad():
        ref = module(x)
    report = cb.compact(module)
    assert report.macs_after < report.macs_before and report.params_after < report.params_before
    assert module.model.init_kwargs["n_filters"] == list(report.widths_after)
    with torch.no_grad():
        torch.testing.assert_close(module(x), ref, atol=1e-5, rtol=1e-5)
        assert module.model.ecam(x).cam.shape == (6, C, T)
    path = tmp_path / "compacted.ckpt"
    trainer.save_checkpoint(path)
    reloaded = SeizureDetectionModule.load_from_checkpoint(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), ref, atol=1e-5, rtol=1e-5)


def test_compaction_runs_on_fit_end(loader, tmp_path):
    pl.seed_everything(0)
    module = SeizureDetectionModule(LightSeizureNet(C, n_filters=WIDE))
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.6, amount=1.0)
    trainer = _trainer(max_epochs=1, callbacks=[cb], limit_train_batches=2)
    trainer.fit(module, loader)
    assert cb.compaction is not None
    assert module.model.n_filters == cb.compaction.widths_after
    assert count_macs(module.model, module.model.example_input()) == cb.compaction.macs_after
    assert cb.compaction.macs_after <= 0.5 * 6_156_320
    assert cb.history[-1]["macs_compact"] == cb.compaction.macs_after  # what the log promised
    # The checkpoint of the compacted module rebuilds the same sparse network.
    kernel_index = module.model.init_kwargs["kernel_index"]
    assert kernel_index == module.model.kernel_index and kernel_index[0] is None
    path = tmp_path / "compacted.ckpt"
    trainer.save_checkpoint(path)
    reloaded = SeizureDetectionModule.load_from_checkpoint(path).eval()
    assert isinstance(reloaded.model.blocks[3].conv, SparseKernelConv)
    assert count_macs(reloaded.model, reloaded.model.example_input()) == cb.compaction.macs_after
    x = torch.from_numpy(loader.dataset.x[:6])
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), module(x), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(reloaded.model.ecam(x).cam, module.model.ecam(x).cam,
                                   atol=1e-6, rtol=1e-6)


def test_filter_scope_in_the_loop_saves_a_checkpoint_of_the_narrow_network(loader, tmp_path):
    pl.seed_everything(0)
    module = SeizureDetectionModule(LightSeizureNet(C, n_filters=WIDE))
    cb = KernelPruning(target_sparsity=0.6, amount=0.4, scope="filter")
    trainer = _trainer(max_epochs=3, callbacks=[cb], limit_train_batches=2)
    trainer.fit(module, loader)
    assert cb.history[-1]["sparsity"] > 0.55
    assert module.model.n_filters == cb.compaction.widths_after and max(cb.compaction.widths_after[1:]) < 16
    assert cb.history[-1]["macs_compact"] == cb.compaction.macs_after <= 0.5 * 6_156_320
    assert describe(module)["model"]["kwargs"]["n_filters"] == list(cb.compaction.widths_after)
    path = tmp_path / "narrow.ckpt"
    trainer.save_checkpoint(path)
    reloaded = load_module(path)
    assert reloaded.model.n_filters == module.model.n_filters
    x = torch.from_numpy(loader.dataset.x[:6])
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), module(x), atol=1e-6, rtol=1e-6)


def test_resume_restores_masks_and_schedule(loader, tmp_path):
    pl.seed_everything(0)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    cb1 = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=0.3, start_epoch=1,
                        compact_on_fit_end=False)
    _trainer(max_epochs=2, callbacks=[cb1, ckpt], enable_checkpointing=True).fit(
        SeizureDetectionModule(LightSeizureNet(C, n_filters=WIDE)), loader)
    assert [h["epoch"] for h in cb1.history] == [1] and cb1.last_round_epoch == 1
    saved = torch.load(ckpt.last_model_path, weights_only=False)["callbacks"][cb1.state_key]
    assert all(torch.equal(saved["masks"][k], cb1.masks[k]) for k in cb1.masks)

    # A fresh module and callback resume from the checkpoint: round 2 comes at epoch 2 and
    # starts from the restored 30 % (a callback that forgot would prune 30 % again).
    class Spy(pl.Callback):
        seen: dict = {}

        def on_train_start(self, trainer, pl_module):
            Spy.seen = {k: v.clone() for k, v in cb2.masks.items()}

    cb2 = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=0.3, start_epoch=1,
                        compact_on_fit_end=False)
    module2 = SeizureDetectionModule(LightSeizureNet(C, n_filters=WIDE))
    _trainer(max_epochs=4, callbacks=[cb2, Spy()]).fit(module2, loader, ckpt_path=ckpt.last_model_path)
    assert all(torch.equal(Spy.seen[k], saved["masks"][k]) for k in saved["masks"])
    assert [h["epoch"] for h in cb2.history] == [1, 2]
    assert cb2.history[0] == cb1.history[0]
    assert cb2.sparsity == pytest.approx(0.5, abs=0.01)
    for name, conv in cb2._convs.items():
        assert bool((~saved["masks"][name] & cb2.masks[name]).any()) is False  # pruned stays pruned
        assert torch.equal(kernel_mask(conv.weight), cb2.masks[name])


def test_restored_masks_that_do_not_fit_are_an_error():
    cb = KernelPruning()
    cb.load_state_dict({"masks": {"blocks.0.conv": torch.ones(3, 1, dtype=torch.bool)},
                        "last_round_epoch": 0, "history": []})
    with pytest.raises(ValueError, match=r"masks do not fit the model: blocks.0.conv has kernels \(8, 1\)"):
        cb.attach(LightSeizureNet(C, n_filters=WIDE))
