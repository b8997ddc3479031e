"""Kernel-wise iterative pruning with fine-tuning, and physical compaction of the pruned network.

LightSeizureNet (Qiu et al., IEEE JBHI 2023) reaches its MAC budget by kernel-wise pruning: the
unit is one kernel ``weight[out, in, ...]`` of a convolution (the filter one input feature map
contributes to one output feature map). Kernels are ranked by a criterion (L1 norm by default),
the weakest are zeroed on a schedule, and the network is fine-tuned in between with the pruned
kernels held at zero. Lightning's ``ModelPruning`` has no kernel-wise unit and by default resets
the surviving weights (lottery ticket), so it is not used here.

Which kernels a round may take is the *scope*; it decides the structure compaction can turn into
speed. By default (``"filter"``) a round removes the kernels of whole filters together with the
kernels of the next layer that read those filters' maps, thinning every layer evenly and taking
the filters whose kernels carry the least (layer-normalized) score first: compaction then leaves
a narrower network of dense convolutions. On CPU that is the only structure measured to run
faster than the dense network (``python -m callbacks.pruning``, ``make bench``): at LSN's 8-16
feature maps a layer costs memory traffic over its maps about as much as multiply-accumulates,
and only removing maps removes traffic. ``"filter_balanced"`` prunes inside every filter, each
keeping the same number ``m`` of its input kernels (the finer kernel-level pattern): compaction
into :class:`~lightning_modules.lsn.SparseKernelConv` (gather the ``m`` maps each filter reads,
then a grouped convolution) cuts the MACs just as far but runs several times slower than dense
on CPU; ``sparse_kernels=False`` keeps such layers dense with the zeros (dense speed, dense
MACs). ``"layer"`` and ``"global"`` prune irregular patterns that compact least.

Compaction: a filter whose kernels are all pruned outputs a constant (its BatchNorm shift through
the activation), so it is removed together with the matching input kernels of the next layer,
its constant contribution folded into that layer's bias (exact when the next convolution pads by
replicating edges, as LightSeizureNet's do); a filter nobody reads any more (all kernels that
take it as input are pruned) is removed too. A layer whose surviving filters each keep at most
``m`` < ``in`` input kernels becomes a :class:`~lightning_modules.lsn.SparseKernelConv`
(filters keeping fewer than ``m`` are padded with zero kernels) unless ``sparse_kernels`` is
off. Parameters and MACs counted by ``torch.utils.flop_counter`` then really drop;
:func:`sparse_macs` is what a kernel-skipping implementation of the masked network costs.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from lightning_modules.cost import count_macs, count_params
from lightning_modules.lsn import SparseKernelConv

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
SCOPES = ("filter", "filter_balanced", "layer", "global")


# -- measuring -----------------------------------------------------------------------------
def kernel_scores(weight: torch.Tensor, criterion: str) -> torch.Tensor:
    """Importance of every kernel, shape (out, in): its L1 or L2 norm."""
    flat = weight.detach().flatten(2)
    if criterion == "l1":
        return flat.abs().sum(-1)
    if criterion == "l2":
        return flat.square().sum(-1).sqrt()
    raise ValueError(f"unknown criterion {criterion!r}: use 'l1', 'l2', 'l1_bn' or 'random'")


def _bn_scales(pl_module: nn.Module,
               convs: dict[str, nn.Module]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per conv of a conv chain: (output gain |gamma|/sigma of its BN, input gain |gamma| of the
    previous block's BN, 1 for the first block). Convs outside a chain are left out."""
    model = _chain_model(pl_module)
    if model is None:
        return {}
    names = {id(c): n for n, c in convs.items()}
    blocks, _ = model.conv_chain()
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    prev_gain = None
    for block in blocks:
        conv, bn = block.conv, getattr(block, "bn", None)
        n_out, n_in = _dense_weight(conv).shape[:2]
        if bn is not None and bn.affine and bn.track_running_stats:
            gain = bn.weight.detach().abs()
            g_out = gain / torch.sqrt(bn.running_var.detach() + bn.eps)
        else:
            gain = g_out = torch.ones(n_out)
        g_in = prev_gain
        if g_in is None or g_in.numel() != n_in:
            g_in = torch.ones(n_in)
        if id(conv) in names:
            out[names[id(conv)]] = (g_out.float().cpu(), g_in.float().cpu())
        prev_gain = gain
    return out


def kernel_mask(weight: torch.Tensor) -> torch.Tensor:
    """(out, in) bool mask of kernels with a non-zero weight."""
    return weight.detach().flatten(2).abs().sum(-1) > 0


def prunable_convs(module: nn.Module, include: str | None = None) -> dict[str, nn.Module]:
    """Convolutions of ``module`` by qualified name (those matching the ``include`` regex)."""
    pattern = re.compile(include) if include else None
    return {name: m for name, m in module.named_modules()
            if isinstance(m, _CONV) and (pattern is None or pattern.search(name))}


@torch.no_grad()
def sparse_macs(model: nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward pass counting only non-zero kernels of convolutions.

    Dense cost of each convolution (output elements x kernels per output x kernel size) times
    the fraction of its kernels that are non-zero, plus linear layers. On a dense network this
    equals :func:`lightning_modules.cost.count_macs` for conv/linear models.
    """
    total = 0
    n = example.shape[0]

    def conv_hook(mod, inp, out):
        nonlocal total
        w = mod.weight
        dense = out.numel() // n * w.shape[1] * math.prod(w.shape[2:])
        density = kernel_mask(w).float().mean().item()
        total += int(round(dense * density))

    def linear_hook(mod, inp, out):
        nonlocal total
        total += out.numel() // n * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, _CONV):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return total


def unpruned_params(model: nn.Module) -> int:
    """Parameters minus the weights of pruned (all-zero) convolution kernels."""
    pruned = sum(int((~kernel_mask(m.weight)).sum()) * math.prod(m.weight.shape[2:])
                 for m in model.modules() if isinstance(m, _CONV))
    return count_params(model) - pruned


# -- compaction ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Compaction:
    """What physical compaction removed."""

    widths_before: tuple[int, ...]
    widths_after: tuple[int, ...]
    params_before: int
    params_after: int
    macs_before: int | None
    macs_after: int | None
    kernels_per_filter: tuple[int, ...] = ()
    """Per block, the input kernels each filter computes after compaction (``m`` of a
    :class:`~lightning_modules.lsn.SparseKernelConv`, all inputs for a dense convolution)."""


def _replace_child(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in root.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
    raise ValueError(f"module {old!r} not found in {type(root).__name__}")


def _dense_weight(conv: nn.Module) -> torch.Tensor:
    """(out, in, *kernel) weight of a convolution, zeros where a sparse one reads nothing."""
    if isinstance(conv, SparseKernelConv):
        return conv.dense_weight()
    return conv.weight


def _kernel_index(alive: torch.Tensor) -> torch.Tensor:
    """(out, m) input maps each filter reads, m = most kernels any filter keeps: its surviving
    kernels, then (for filters keeping fewer) the lowest-numbered pruned ones, whose weights
    stay zero; sorted so the gather reads memory in order."""
    m = max(1, int(alive.sum(1).max()))
    # Stable sort puts surviving kernels first, each group in channel order.
    order = torch.sort((~alive).to(torch.int8), dim=1, stable=True).indices[:, :m]
    return order.sort(dim=1).values


def _build_conv(old: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None,
                sparse_kernels: bool) -> nn.Module:
    """A convolution like ``old`` holding ``weight`` (out, in, *kernel): a SparseKernelConv when
    the filters keep fewer kernels than there are inputs, a dense one otherwise."""
    n_out, n_in = weight.shape[:2]
    alive = kernel_mask(weight)
    m = max(1, int(alive.sum(1).max()))
    dims = weight.ndim - 2
    common = dict(stride=old.stride, padding=old.padding, dilation=old.dilation,
                  padding_mode=old.padding_mode, bias=bias is not None, device=weight.device,
                  dtype=weight.dtype)
    if sparse_kernels and m < n_in:
        new = SparseKernelConv(n_in, _kernel_index(alive).tolist(), old.kernel_size, dims=dims,
                               **common)
        new.load_dense_weight(weight, bias)
    else:
        cls = type(old) if isinstance(old, _CONV) else _CONV[dims - 1]
        new = cls(n_in, n_out, old.kernel_size, groups=1, **common)
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(old.training)
    return new


def _pads_constant(conv: nn.Module) -> bool:
    """Whether a constant input map gives a constant output (no zero padding at the edges)."""
    pad = conv.padding
    no_pad = pad == "valid" or (not isinstance(pad, str) and all(p == 0 for p in pad))
    return no_pad or conv.padding_mode in ("replicate", "reflect", "circular")


def _constant_output(bn: nn.Module | None, act: nn.Module | None, bias: torch.Tensor | None,
                     running_mean: torch.Tensor | None, n_out: int, ndim: int,
                     like: torch.Tensor) -> torch.Tensor:
    """Eval-mode output of each filter whose kernels are all zero, shape (n_out,).

    Such a filter outputs its bias (or 0) everywhere, then BatchNorm (with ``running_mean``,
    which may hold folded constants) and the element-wise activation.
    """
    shape = (1, n_out) + (1,) * (ndim - 2)
    z = torch.zeros(shape, dtype=like.dtype, device=like.device)
    if bias is not None:
        z = z + bias.view(shape)
    if bn is not None:
        z = F.batch_norm(z, running_mean, bn.running_var, bn.weight,
                         bn.bias, False, 0.0, bn.eps)
    if act is not None:
        z = act(z)
    return z.flatten()


@torch.no_grad()
def compact(model: nn.Module, example: torch.Tensor | None = None, *,
            sparse_kernels: bool = True) -> Compaction:
    """Physically remove pruned filters and kernels from a conv chain, in place.

    ``model.conv_chain()`` must return ``(blocks, head)``: blocks in order, each with ``conv``
    (groups = 1, or a :class:`~lightning_modules.lsn.SparseKernelConv` of an earlier
    compaction), optional ``bn`` and an element-wise ``act``, feeding the next block, the last
    one followed by a global average pool and ``head`` (``nn.Linear``), as LightSeizureNet is.
    The eval-mode outputs of the compacted network equal those of the pruned one (up to float
    rounding); ``model.n_filters`` is updated when the model has it (LightSeizureNet reads the
    kept kernels back from its blocks for ``init_kwargs["kernel_index"]``).

    Parameters
    ----------
    model : nn.Module
        A pruned network (pruned kernels are exactly zero).
    example : torch.Tensor or None
        Input for the MAC counts (``model.example_input()`` when the model has it).
    sparse_kernels : bool
        Turn convolutions whose filters each keep at most ``m`` < ``in`` kernels into
        :class:`~lightning_modules.lsn.SparseKernelConv` (exactly ``m`` kernels per filter,
        zero-padded where a filter keeps fewer). False removes whole filters only.
    """
    if not callable(getattr(model, "conv_chain", None)):
        raise TypeError(f"{type(model).__name__} has no conv_chain(): cannot compact it")
    if example is None and callable(getattr(model, "example_input", None)):
        example = model.example_input()
    blocks, head = model.conv_chain()
    if not isinstance(head, nn.Linear):
        raise TypeError(f"compaction needs an nn.Linear head after the pool, got {type(head).__name__}")
    for b in blocks:
        if not isinstance(b.conv, SparseKernelConv) and b.conv.groups != 1:
            raise TypeError("compaction handles groups=1 convolutions only")
        bn = getattr(b, "bn", None)
        if bn is not None and not bn.track_running_stats:
            raise TypeError("compaction needs BatchNorm with running statistics (eval mode is folded)")
    widths_before = tuple(_dense_weight(b.conv).shape[0] for b in blocks)
    params_before = count_params(model)
    macs_before = count_macs(model, example) if example is not None else None

    removed_const: torch.Tensor | None = None  # constants of the previous layer's removed filters
    keep_prev: torch.Tensor | None = None
    for i, block in enumerate(blocks):
        conv, bn = block.conv, getattr(block, "bn", None)
        w = _dense_weight(conv).detach().clone()
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        running_mean = bn.running_mean.detach().clone() if bn is not None else None
        if keep_prev is not None:
            # Fold the constant maps of removed inputs: each adds c_j * sum(kernel) everywhere.
            dropped = ~keep_prev
            delta = (w[:, dropped].flatten(2).sum(-1) * removed_const[dropped]).sum(1)
            if bias is not None:
                bias += delta
            elif bn is not None:
                running_mean -= delta  # eval BN: (z + delta) - rm == z - (rm - delta)
            elif bool((delta != 0).any()):
                raise TypeError("cannot fold a removed filter: the next conv has neither bias nor BN")
            w = w[:, keep_prev]

        n_out = w.shape[0]
        dead = ~kernel_mask(w).any(1)
        if i + 1 < len(blocks):
            nxt_w = _dense_weight(blocks[i + 1].conv)
            unused = ~kernel_mask(nxt_w).any(0)
            foldable = _pads_constant(blocks[i + 1].conv)
        else:
            unused = head.weight.detach().abs().sum(0) == 0
            foldable = True  # the global average of a constant map is that constant
        remove = unused | (dead & foldable)
        if bool(remove.all()):  # keep the strongest filter so the chain stays connected
            remove[kernel_scores(w, "l1").sum(1).argmax()] = False
        keep = ~remove

        # Build the smaller conv and BN (the new BN carries the folded running mean).
        new_conv = _build_conv(conv, w[keep], bias[keep] if bias is not None else None,
                               sparse_kernels)
        const = _constant_output(bn, getattr(block, "act", None), bias, running_mean, n_out,
                                 w.ndim, w)
        if bn is not None:
            new_bn = type(bn)(int(keep.sum()), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                              track_running_stats=bn.track_running_stats, device=w.device, dtype=w.dtype)
            if bn.affine:
                new_bn.weight.copy_(bn.weight[keep])
                new_bn.bias.copy_(bn.bias[keep])
            if bn.track_running_stats:
                new_bn.running_mean.copy_(running_mean[keep])
                new_bn.running_var.copy_(bn.running_var[keep])
                new_bn.num_batches_tracked.copy_(bn.num_batches_tracked)
            new_bn.train(bn.training)
            _replace_child(model, bn, new_bn)
        _replace_child(model, conv, new_conv)
        removed_const, keep_prev = const, keep

    # Head: the pooled constant of a removed filter j adds W[:, j] * c_j to the logits.
    dropped = ~keep_prev
    new_head = nn.Linear(int(keep_prev.sum()), head.out_features, bias=True,
                         device=head.weight.device, dtype=head.weight.dtype)
    new_head.weight.copy_(head.weight[:, keep_prev])
    b = head.bias.detach().clone() if head.bias is not None else torch.zeros(head.out_features)
    new_head.bias.copy_(b + head.weight[:, dropped] @ removed_const[dropped])
    new_head.train(head.training)
    _replace_child(model, head, new_head)

    blocks, _ = model.conv_chain()
    widths_after = tuple(b.conv.out_channels for b in blocks)
    if hasattr(model, "n_filters"):
        model.n_filters = widths_after
    per_filter = tuple(b.conv.kernels_per_filter if isinstance(b.conv, SparseKernelConv)
                       else int(b.conv.weight.shape[1]) for b in blocks)
    return Compaction(widths_before=widths_before, widths_after=widths_after,
                      params_before=params_before, params_after=count_params(model),
                      macs_before=macs_before,
                      macs_after=count_macs(model, example) if example is not None else None,
                      kernels_per_filter=per_filter)


# -- the callback --------------------------------------------------------------------------
def _chain_model(pl_module: nn.Module) -> nn.Module | None:
    """The (sub)module exposing ``conv_chain`` (the network to compact), if any."""
    for m in pl_module.modules():
        if callable(getattr(m, "conv_chain", None)):
            return m
    return None


class KernelPruning(pl.Callback):
    """Iterative kernel-wise pruning with fine-tuning, then physical compaction.

    Parameters
    ----------
    target_sparsity : float
        Fraction of all convolution kernels pruned at the end of the schedule.
    amount : float
        Fraction of the still unpruned kernels pruned at each round (capped so the target is
        never overshot); 1.0 prunes to the target in one shot.
    every_n_epochs : int
        A round runs at the start of every ``every_n_epochs``-th epoch from ``start_epoch`` until
        the target is reached; the epochs in between fine-tune with the masks held.
    start_epoch : int
        First pruning epoch (train dense before it).
    criterion : {"l1", "l2", "l1_bn", "random"}
        Kernel ranking. "l1"/"l2": norm of the kernel weights. "l1_bn": the L1 norm times the
        gain the kernel's contribution really gets in a conv chain, ``|gamma_out| / sigma_out``
        of the BatchNorm after it and ``|gamma_in|`` of the BatchNorm that produced its input
        (after BN the raw scale of a filter's weights means nothing); kernels of weak filters
        then go together, so whole filters empty out and compaction removes more. "random" is
        the control for ablations (seeded by ``seed`` and round).
    scope : {"filter", "filter_balanced", "layer", "global"}
        Which kernels a round may take (the structure compaction can exploit).
        "filter" (default): whole filters, i.e. all kernels of a filter together with the kernels
        of the next layer that read its map (LightSeizureNet's chain, ``conv_chain()``, is
        required). Filters go one at a time from the layer that keeps the largest fraction of its
        filters, so layers thin evenly; inside a layer, the filter whose kernels (own and
        readers') carry the least score, each score divided by its layer's mean over unpruned
        kernels, goes first; a round stops before overshooting its share (a round too small for
        any filter takes the cheapest one that does not overshoot the target). Compaction
        leaves narrower dense convolutions: fewer MACs, parameters *and* feature maps, the form
        measured faster than dense on CPU in PyTorch and ONNX Runtime.
        "filter_balanced": every round prunes, inside every output filter of every
        convolution, the same fraction of its remaining input kernels (lowest score first), so
        all filters of a layer keep the same number ``m`` of kernels and compaction turns the
        sparsity into fewer MACs (:class:`~lightning_modules.lsn.SparseKernelConv`). ``m`` is
        an integer: each layer keeps ``ceil((1 - f) * in)`` kernels per filter, ``f`` the
        round's sparsity goal over these layers, then layers step down one kernel per filter,
        largest rounding excess first, while the goal is not overshot (a round too small for
        one step takes the cheapest step that does not overshoot the target). Convolutions with
        one input map (LightSeizureNet's first block) have one kernel per filter and stay
        dense; the other layers prune slightly more to reach the target. As many MACs go as in
        "filter", but the gathered form runs several times slower than dense on CPU.
        "layer": each convolution is pruned to the same sparsity, kernels of a layer competing
        across filters. "global": kernels compete across layers, each score divided by the mean
        score of its layer's unpruned kernels (after BatchNorm the raw scale of a layer's
        weights carries no meaning). Their irregular patterns compact less.
    include : str or None
        Regex on module names selecting the convolutions to prune (all of them by default).
    compact_on_fit_end : bool
        Compact the network (``model.conv_chain()`` protocol, see :func:`compact`) when ``fit``
        ends. Set False when the run later loads a pre-compaction checkpoint (``ckpt_path=
        "best"``) into the module, and call :meth:`compact` after loading instead.
    example_input : torch.Tensor or None
        Input for MAC counts; by default ``pl_module.example_input_array`` (batch of 1).
    seed : int
        Seed of the "random" criterion.
    sparse_kernels : bool
        Compaction turns layers whose filters keep fewer kernels than inputs into
        :class:`~lightning_modules.lsn.SparseKernelConv` (fewer MACs and parameters). False
        removes whole filters only and keeps the pruned kernels as zeros in dense convolutions:
        dense MACs, but on CPUs much faster than the gathered form, because a dense convolution
        reuses each input map for all filters while the gathered maps of a sparse one are ``m``
        times larger. No effect with scope "filter" (its layers compact to dense convolutions).

    Notes
    -----
    Masks keep pruned kernels at zero: gradients of pruned kernels are zeroed before each
    optimizer step and the weights are multiplied by the masks after it (AdamW momentum from
    before the round would otherwise move them). Masks, the epoch of the last round and the
    history live in :meth:`state_dict`, so resuming from a checkpoint continues the schedule.
    Logged each epoch: ``prune/sparsity``, ``prune/params_unpruned``, ``prune/macs_sparse``
    (only non-zero kernels), ``prune/params_compact`` and ``prune/macs_compact`` (the network
    :func:`compact` would leave).
    """

    def __init__(self, target_sparsity: float = 0.5, amount: float = 0.2, every_n_epochs: int = 1,
                 start_epoch: int = 0, criterion: str = "l1", scope: str = "filter",
                 include: str | None = None, compact_on_fit_end: bool = True,
                 example_input: torch.Tensor | None = None, seed: int = 0,
                 sparse_kernels: bool = True):
        if not 0.0 <= target_sparsity < 1.0:
            raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity}")
        if not 0.0 < amount <= 1.0:
            raise ValueError(f"amount must be in (0, 1], got {amount}")
        if every_n_epochs < 1 or start_epoch < 0:
            raise ValueError(f"every_n_epochs must be >= 1 and start_epoch >= 0, got "
                             f"{every_n_epochs}, {start_epoch}")
        if criterion not in ("l1", "l2", "l1_bn", "random"):
            raise ValueError(f"unknown criterion {criterion!r}: use 'l1', 'l2', 'l1_bn' or 'random'")
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(map(repr, SCOPES))}")
        self.target_sparsity = float(target_sparsity)
        self.amount = float(amount)
        self.every_n_epochs = int(every_n_epochs)
        self.start_epoch = int(start_epoch)
        self.criterion = criterion
        self.scope = scope
        self.include = include
        self.compact_on_fit_end = bool(compact_on_fit_end)
        self.example_input = example_input
        self.seed = int(seed)
        self.sparse_kernels = bool(sparse_kernels)
        self.masks: dict[str, torch.Tensor] = {}
        self.last_round_epoch = -1
        self.history: list[dict] = []
        self.compaction: Compaction | None = None
        self._convs: dict[str, nn.Module] = {}
        self._module: nn.Module | None = None
        self._dense_stats: dict | None = None

    # -- state --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"masks": {k: v.detach().cpu().clone() for k, v in self.masks.items()},
                "last_round_epoch": self.last_round_epoch,
                "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.masks = {k: v.bool().clone() for k, v in state_dict["masks"].items()}
        self.last_round_epoch = int(state_dict["last_round_epoch"])
        self.history = [dict(h) for h in state_dict["history"]]

    @property
    def sparsity(self) -> float:
        """Current fraction of pruned kernels over the pruned convolutions."""
        total = sum(m.numel() for m in self.masks.values())
        return 0.0 if total == 0 else sum(int((~m).sum()) for m in self.masks.values()) / total

    # -- masks --------------------------------------------------------------------------
    def attach(self, pl_module: nn.Module) -> None:
        """Find the convolutions of ``pl_module`` and apply the masks (restored ones are checked)."""
        self._module = pl_module
        self._convs = prunable_convs(pl_module, self.include)
        if not self._convs:
            raise ValueError(f"KernelPruning found no convolution in {type(pl_module).__name__}"
                             + (f" matching {self.include!r}" if self.include else ""))
        if self.masks:
            for name, conv in self._convs.items():
                mask = self.masks.get(name)
                expected = tuple(conv.weight.shape[:2])
                if mask is None or tuple(mask.shape) != expected:
                    raise ValueError(f"restored pruning masks do not fit the model: {name} has "
                                     f"kernels {expected}, mask "
                                     f"{None if mask is None else tuple(mask.shape)}")
        else:
            self.masks = {n: torch.ones(c.weight.shape[:2], dtype=torch.bool) for n, c in self._convs.items()}
        self.apply_masks()

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the weights of pruned kernels."""
        for name, conv in self._convs.items():
            m = self.masks[name].to(conv.weight.device)
            conv.weight.mul_(m.view(m.shape + (1,) * (conv.weight.ndim - 2)).to(conv.weight.dtype))

    def _example(self, pl_module: pl.LightningModule, model: nn.Module) -> torch.Tensor | None:
        ex = self.example_input
        if ex is None:
            ex = getattr(pl_module, "example_input_array", None)
        if ex is None and callable(getattr(model, "example_input", None)):
            ex = model.example_input()
        if not isinstance(ex, torch.Tensor):
            return None
        return ex[:1].to(pl_module.device)

    @torch.no_grad()
    def prune_round(self) -> int:
        """Prune one round of kernels (if the target is not reached); returns how many."""
        total = sum(m.numel() for m in self.masks.values())
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        goal = int(math.floor(self.target_sparsity * total + 1e-9))
        n = min(int(math.ceil(self.amount * (total - pruned))), goal - pruned)
        if n <= 0:
            return 0
        scores = {}
        gen = torch.Generator().manual_seed(self.seed * 100003 + len(self.history))
        gains = _bn_scales(self._module, self._convs) if self.criterion == "l1_bn" else {}
        for name, conv in self._convs.items():
            mask = self.masks[name]
            if self.criterion == "random":
                s = torch.rand(mask.shape, generator=gen)
            elif self.criterion == "l1_bn":
                s = kernel_scores(conv.weight, "l1").float().cpu()
                if name in gains:
                    g_out, g_in = gains[name]
                    s = s * g_out[:, None] * g_in[None, :]
            else:
                s = kernel_scores(conv.weight, self.criterion).float().cpu()
            alive = s[mask]
            if self.scope in ("global", "filter") and alive.numel() > 0:
                s = s / alive.mean().clamp(min=1e-12)
            scores[name] = s.masked_fill(~mask, float("inf"))
        if self.scope == "filter":
            self._prune_filters(scores, pruned + n, goal)
        elif self.scope == "filter_balanced":
            self._prune_balanced(scores, pruned + n, goal)
        elif self.scope == "layer":
            frac = (pruned + n) / total
            for name, s in scores.items():
                mask = self.masks[name]
                k = int(math.floor(frac * mask.numel())) - int((~mask).sum())
                k = min(k, int(mask.sum()) - 1)  # a layer keeps at least one kernel
                if k > 0:
                    idx = s.flatten().topk(k, largest=False).indices
                    mask.view(-1)[idx] = False
        else:
            names = list(scores)
            flat = torch.cat([scores[nm].flatten() for nm in names])
            owner = torch.cat([torch.full((scores[nm].numel(),), i) for i, nm in enumerate(names)])
            left = {nm: int(self.masks[nm].sum()) for nm in names}
            offsets = [0]
            for nm in names:
                offsets.append(offsets[-1] + scores[nm].numel())
            done = 0
            for j in flat.argsort().tolist():
                if done >= n:
                    break
                nm = names[int(owner[j])]
                if left[nm] <= 1 or not math.isfinite(float(flat[j])):
                    continue
                self.masks[nm].view(-1)[j - offsets[int(owner[j])]] = False
                left[nm] -= 1
                done += 1
        self.apply_masks()
        return sum(int((~m).sum()) for m in self.masks.values()) - pruned

    def _chain_names(self) -> list[str | None]:
        """Names of the chain's convolutions in order (None for one not pruned), for the
        "filter" scope: the input maps of block i + 1 are the filters of block i."""
        model = _chain_model(self._module) if self._module is not None else None
        if model is None:
            raise ValueError(f"scope 'filter' needs a conv chain (conv_chain()), "
                             f"{type(self._module).__name__} has none")
        names = {id(c): n for n, c in self._convs.items()}
        return [names.get(id(b.conv)) for b in model.conv_chain()[0]]

    def _filter_candidates(self, scores: dict[str, torch.Tensor] | None = None) -> list[tuple]:
        """Per chain layer with more than one live filter, its weakest live filter:
        ``(kept fraction, mass per kernel, cost, layer index, filter)``, where the cost is the
        live kernels removing it prunes (its own, and those of the next layer that read it) and
        the mass is their summed (layer-normalized) scores."""
        chain = self._chain_names()
        out = []
        for i, name in enumerate(chain):
            if name is None:
                continue
            mask = self.masks[name]
            live = mask.any(1)
            if int(live.sum()) <= 1:
                continue
            nxt = chain[i + 1] if i + 1 < len(chain) else None
            cost = mask.sum(1) + (self.masks[nxt].sum(0) if nxt is not None else 0)
            if scores is None:
                mass = cost.float()
            else:
                mass = torch.where(mask, scores[name], 0).sum(1)
                if nxt is not None:
                    mass = mass + torch.where(self.masks[nxt], scores[nxt], 0).sum(0)
            per_kernel = (mass / cost.clamp(min=1)).masked_fill(~live, float("inf"))
            j = int(per_kernel.argmin())
            out.append((int(live.sum()) / mask.shape[0], float(per_kernel[j]), int(cost[j]), i, j))
        return out

    def _prune_filters(self, scores: dict[str, torch.Tensor], round_goal: int, goal: int) -> None:
        """Prune whole filters: all kernels of a filter and all kernels that read its output map.

        Filters go one at a time from the layer that keeps the largest fraction of its filters
        (so layers thin evenly), the filter whose kernels carry the least layer-normalized score
        first, while the round's goal is not overshot; a round too small for any filter takes the
        cheapest one that does not overshoot the target.
        """
        chain = self._chain_names()
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        took = False
        while True:
            cands = [c for c in self._filter_candidates(scores) if pruned + c[2] <= round_goal]
            if not cands:
                if took:
                    return
                cands = [c for c in self._filter_candidates(scores) if pruned + c[2] <= goal]
                if not cands:
                    return
                cands = [min(cands, key=lambda c: c[2])]
            _, _, cost, i, j = min(cands, key=lambda c: (-c[0], c[1]))
            self.masks[chain[i]][j] = False
            if i + 1 < len(chain) and chain[i + 1] is not None:
                self.masks[chain[i + 1]][:, j] = False
            pruned += cost
            took = True
            if pruned >= round_goal:
                return

    def _prune_balanced(self, scores: dict[str, torch.Tensor], round_goal: int, goal: int) -> None:
        """Prune every filter of every multi-input convolution to the same number of kernels.

        ``round_goal``: total pruned kernels this round aims at (never exceeded, except by the
        single cheapest step a round too small for any step takes, which never exceeds ``goal``).
        """
        layers = [nm for nm, mk in self.masks.items() if mk.shape[1] > 1]
        if not layers:
            return
        pruned_now = sum(int((~mk).sum()) for mk in self.masks.values())
        pruned_fixed = sum(int((~mk).sum()) for nm, mk in self.masks.items() if nm not in layers)
        total_b = sum(self.masks[nm].numel() for nm in layers)
        frac = min(1.0, max(0.0, (round_goal - pruned_fixed) / total_b))
        alive = {nm: self.masks[nm].sum(1) for nm in layers}  # kernels left per filter
        m_now = {nm: int(alive[nm].max()) for nm in layers}
        ideal = {nm: (1.0 - frac) * self.masks[nm].shape[1] for nm in layers}
        m_new = {nm: min(m_now[nm], max(1, math.ceil(ideal[nm] - 1e-9))) for nm in layers}

        def cost(nm: str, m: int) -> int:  # kernels pruned in layer nm when filters keep m
            return int((alive[nm] - m).clamp(min=0).sum())

        planned = pruned_now + sum(cost(nm, m_new[nm]) for nm in layers)
        # Largest remainder: the layers whose rounded m lies furthest above the ideal step first.
        for nm in sorted(layers, key=lambda nm: ideal[nm] - m_new[nm]):
            if m_new[nm] > 1:
                extra = cost(nm, m_new[nm] - 1) - cost(nm, m_new[nm])
                if planned + extra <= round_goal:
                    m_new[nm] -= 1
                    planned += extra
        if planned == pruned_now:  # one step per filter is more than this round asks for
            steps = [(cost(nm, m_new[nm] - 1) - cost(nm, m_new[nm]), i, nm)
                     for i, nm in enumerate(layers) if m_new[nm] > 1]
            steps = [st for st in steps if pruned_now + st[0] <= goal]
            if steps:
                m_new[min(steps)[2]] -= 1
        for nm in layers:
            if m_new[nm] < m_now[nm]:
                mask = self.masks[nm]
                # Keep each filter's m best surviving kernels; pruned ones rank last (-inf).
                keep_scores = scores[nm].masked_fill(~mask, float("-inf"))
                top = keep_scores.topk(m_new[nm], dim=1).indices
                keep = torch.zeros_like(mask).scatter_(1, top, True)
                mask &= keep

    def _measure(self, pl_module: pl.LightningModule) -> dict:
        stats = {"sparsity": self.sparsity, "params_unpruned": float(unpruned_params(pl_module))}
        model = _chain_model(pl_module)
        ex = self._example(pl_module, model if model is not None else pl_module)
        if ex is not None:
            target = model if model is not None else pl_module
            stats["macs_sparse"] = float(sparse_macs(target, ex))
            if model is not None:
                clone = copy.deepcopy(model)  # measure what compaction would leave, model untouched
                report = compact(clone, ex, sparse_kernels=self.sparse_kernels)
                stats["macs_compact"] = float(report.macs_after)
                stats["params_compact"] = float(count_params(clone))
        return stats

    # -- hooks --------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.attach(pl_module)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        due = (epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every_n_epochs == 0
               and epoch != self.last_round_epoch)
        if due and self.sparsity < self.target_sparsity - 1e-9:
            n = self.prune_round()
            if n > 0:
                self.last_round_epoch = epoch
                stats = {"epoch": epoch, "round": len(self.history) + 1, "pruned": n}
                stats.update(self._measure(pl_module))
                self.history.append(stats)
                rank_zero_info(f"[KernelPruning] epoch {epoch}: pruned {n} kernels, sparsity "
                               f"{stats['sparsity']:.3f}, " + ", ".join(
                                   f"{k} {int(v):,}" for k, v in stats.items()
                                   if k.startswith(("params", "macs"))))
        if self.history:
            latest = self.history[-1]
        else:
            if self._dense_stats is None:
                self._dense_stats = self._measure(pl_module)
            latest = self._dense_stats
        for key in ("sparsity", "params_unpruned", "macs_sparse", "params_compact", "macs_compact"):
            if key in latest:
                pl_module.log(f"prune/{key}", float(latest[key]), on_step=False, on_epoch=True)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        for name, conv in self._convs.items():
            if conv.weight.grad is not None:
                m = self.masks[name].to(conv.weight.device)
                conv.weight.grad.mul_(m.view(m.shape + (1,) * (conv.weight.ndim - 2)).to(conv.weight.dtype))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.apply_masks()

    def can_prune_more(self) -> bool:
        """Whether a round could still prune kernels without overshooting the target (in the
        balanced scope a step prunes one kernel in every filter of a layer at once)."""
        total = sum(m.numel() for m in self.masks.values())
        pruned = sum(int((~m).sum()) for m in self.masks.values())
        left = int(math.floor(self.target_sparsity * total + 1e-9)) - pruned
        if left <= 0:
            return False
        if self.scope == "filter":
            return any(c[2] <= left for c in self._filter_candidates())
        if self.scope != "filter_balanced":
            return True
        steps = []
        for mask in self.masks.values():
            alive = mask.sum(1)
            if mask.shape[1] > 1 and int(alive.max()) > 1:
                steps.append(int((alive == alive.max()).sum()))
        return bool(steps) and min(steps) <= left

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.sparsity < self.target_sparsity - 0.01 and self.can_prune_more():
            rank_zero_warn(f"KernelPruning reached sparsity {self.sparsity:.3f} of "
                           f"{self.target_sparsity}: give the schedule more epochs")
        if self.compact_on_fit_end:
            self.compact(pl_module)

    def compact(self, pl_module: pl.LightningModule) -> Compaction | None:
        """Compact the network inside ``pl_module`` now; returns what was removed.

        A checkpoint of the compacted module rebuilds the smaller network from the model's
        ``init_kwargs`` (``n_filters``, ``kernel_index``: :mod:`lightning_modules.checkpoints`).
        Re-derives the masks on the compacted shapes (kernels still zero inside surviving filters; a
        :class:`~lightning_modules.lsn.SparseKernelConv` is masked through its grouped
        convolution, whose weight holds the (out, m) kept kernels).
        """
        model = _chain_model(pl_module)
        if model is None:
            rank_zero_warn(f"{type(pl_module).__name__} has no conv_chain(): kept the masked "
                           "network uncompacted (outputs are the same, cost is not lower)")
            return None
        self.compaction = compact(model, self._example(pl_module, model),
                                  sparse_kernels=self.sparse_kernels)
        self._convs = prunable_convs(pl_module, self.include)
        self.masks = {n: kernel_mask(c.weight).cpu() for n, c in self._convs.items()}
        c = self.compaction
        macs = f"; MACs {c.macs_before:,} -> {c.macs_after:,}" if c.macs_after is not None else ""
        rank_zero_info(f"[KernelPruning] compacted widths {c.widths_before} -> {c.widths_after}, "
                       f"kernels per filter {c.kernels_per_filter}; "
                       f"params {c.params_before:,} -> {c.params_after:,}{macs}")
        logger = getattr(getattr(pl_module, "_trainer", None), "logger", None)
        if logger is not None:
            final = {"prune/params_compacted": c.params_after}
            if c.macs_after is not None:
                final["prune/macs_compacted"] = c.macs_after
            logger.log_metrics(final)
        return self.compaction


# -- measurement ---------------------------------------------------------------------------
#: The forms ``python -m callbacks.pruning`` compares at every target: (scope, sparse_kernels, label).
FORMS = (("filter", True, "whole filters -> narrower dense convolutions"),
         ("filter_balanced", True, "balanced kernels -> gather + grouped convolutions"),
         ("filter_balanced", False, "balanced kernels -> dense convolutions holding the zeros"))


def _interleaved_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each function, calls interleaved so that load from other
    processes hits every entry alike."""
    import statistics
    import time

    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _cost_table(targets: list[float], n_chans: int, n_times: int, seed: int, time_batch: int,
                repeats: int, onnx: bool = True) -> list[dict]:
    """Dense vs pruned LightSeizureNet in each of :data:`FORMS`: parameters, MACs and (with
    ``time_batch``) CPU milliseconds per batch under ``torch.inference_mode`` and through ONNX
    Runtime (default session options). Pruned by L1 in one round to each target, on fresh
    weights: the cost depends on how many kernels and filters go, not on training."""
    import tempfile

    from lightning_modules.lsn import LightSeizureNet

    torch.manual_seed(seed)
    dense = LightSeizureNet(n_chans, n_times=n_times).eval()
    example = dense.example_input()
    models = {"dense": dense}
    rows = [{"model": "dense", "form": "dense", "target": 0.0, "sparsity": 0.0, "params": count_params(dense),
             "macs": count_macs(dense, example), "widths": list(dense.n_filters), "kernels_per_filter": None}]
    for target in targets:
        for scope, sparse_kernels, label in FORMS:
            model = copy.deepcopy(dense)
            cb = KernelPruning(target_sparsity=target, amount=1.0, scope=scope, sparse_kernels=sparse_kernels)
            cb.attach(model)
            cb.prune_round()
            sparsity = cb.sparsity
            report = compact(model, example, sparse_kernels=sparse_kernels)
            name = f"{target:.2f} {scope}: {label}"
            models[name] = model.eval()
            rows.append({"model": name, "form": label, "target": target, "sparsity": sparsity,
                         "params": report.params_after, "macs": report.macs_after,
                         "widths": list(report.widths_after), "kernels_per_filter": report.kernels_per_filter})
    if time_batch > 0:
        x = torch.randn(time_batch, n_chans, n_times) * 50
        with torch.inference_mode():
            torch_ms = _interleaved_ms({k: (lambda m=m: m(x)) for k, m in models.items()}, repeats)
        ort_ms: dict[str, float] = {}
        if onnx:
            import onnxruntime as ort

            from lightning_modules.export import export_onnx

            sessions = {}
            with tempfile.TemporaryDirectory() as tmp:
                for i, (k, m) in enumerate(models.items()):
                    path = export_onnx(m, f"{tmp}/m{i}.onnx").path
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = torch.get_num_threads()
                    sessions[k] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feed = x.numpy()
            ort_ms = _interleaved_ms({k: (lambda s=s: s.run(None, {"x": feed})) for k, s in sessions.items()},
                                     repeats)
        for row in rows:
            row["torch_ms"] = torch_ms[row["model"]]
            row["onnx_ms"] = ort_ms.get(row["model"])
    return rows


def _main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m callbacks.pruning",
        description="LightSeizureNet cost after kernel-wise pruning and compaction, dense and pruned "
                    "side by side: parameters, MACs and CPU latency of each compacted form")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.6, 0.7])
    parser.add_argument("--n-chans", type=int, default=18)
    parser.add_argument("--n-times", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-batch", type=int, default=256,
                        help="time CPU inference on batches of this size (0: skip)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime column")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = _cost_table(args.targets, args.n_chans, args.n_times, args.seed, args.time_batch,
                       args.repeats, onnx=not args.no_onnx)
    dense = rows[0]
    timed = "torch_ms" in dense
    with_onnx = timed and dense.get("onnx_ms") is not None
    head = ["model", "kernel sparsity", "widths", "kernels per filter", "params", "MACs", "MACs / dense"]
    if timed:
        head += [f"PyTorch ms / {args.time_batch} windows", "PyTorch speed vs dense"]
    if with_onnx:
        head += [f"ONNX Runtime ms / {args.time_batch} windows", "ONNX Runtime speed vs dense"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["model"], f"{r['sparsity']:.3f}", ",".join(map(str, r["widths"])),
                 ",".join(map(str, r["kernels_per_filter"])) if r["kernels_per_filter"] else "all",
                 f"{r['params']:,}", f"{r['macs']:,}", f"{r['macs'] / dense['macs']:.3f}"]
        if timed:
            cells += [f"{r['torch_ms']:.1f}", f"{dense['torch_ms'] / r['torch_ms']:.2f}x"]
        if with_onnx:
            cells += [f"{r['onnx_ms']:.1f}", f"{dense['onnx_ms'] / r['onnx_ms']:.2f}x"]
        print("| " + " | ".join(cells) + " |")
    if timed:
        print(f"\n{args.threads} thread(s); medians of {args.repeats} interleaved runs; PyTorch under "
              "torch.inference_mode (BatchNorm folded), ONNX Runtime with default session options.")


if __name__ == "__main__":
    _main()
