"""LightSeizureNet (LSN): a lightweight dilated CNN on raw multichannel EEG with channel-resolved
class activation maps (ECAMs).

Qiu et al., "LightSeizureNet: A Lightweight Deep Learning Model for Real-Time Epileptic Seizure
Detection", IEEE Journal of Biomedical and Health Informatics, 2023,
doi:10.1109/JBHI.2022.3223970, publish the ingredients (raw multichannel EEG in, dilated convolutions, global average
pooling, kernel-wise pruning, ECAMs: one value per EEG channel per time step plus the dominant
frequency of the activated signal) and the cost (97.09 % accuracy at 6.2 M MACs patient
-independent, 99.77 % at 3.7 M MACs patient-specific, CHB-MIT). Layer details are not public;
the ones below are this project's design and are documented in :class:`LightSeizureNet`.

Pure ``torch.nn``: no Lightning import here.
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

#: How the per-channel logits become the window's (``pooling``), see LightSeizureNet's notes.
POOLINGS = ("mean", "max", "lse", "attention")


class ECAM(NamedTuple):
    """EEG class activation map of a batch of windows.

    Attributes
    ----------
    logits : torch.Tensor, shape (B, n_outputs)
        The model's output (same as ``forward``).
    cam : torch.Tensor, shape (B, C, T)
        Seizure evidence per EEG channel per input sample, in logit units (see
        :meth:`LightSeizureNet.ecam`); its mean over the feature grid is the seizure logit.
    freq : torch.Tensor or None, shape (B, C)
        Dominant frequency in Hz of each channel's activated signal (None when not asked for).
    cam_features : torch.Tensor, shape (B, C, T_feat)
        ``cam`` on the network's own (strided) time grid, before interpolation.
    """

    logits: torch.Tensor
    cam: torch.Tensor
    freq: torch.Tensor | None
    cam_features: torch.Tensor


# -- fast temporal convolution --------------------------------------------------------------
# The blocks convolve (1, k) kernels along time over (B, F, C, T) maps with replicate padding.
# On CPU these layers are bound by memory traffic rather than by multiply-accumulates: at 8-16
# feature maps an F.pad copy of the map, an element-wise pass, or a layout reorder inside the
# convolution costs as much as the convolution itself. The functions below compute exactly the
# same outputs without a padded copy (zero-padded convolution, then the few outputs that read past
# an edge are corrected), with the maps kept channels-last from the first block on (the layout
# oneDNN convolves without reordering), and the first block (one input map, where a library
# convolution is slowest) as one matrix product over time patches.


_REFERENCE = False


@contextlib.contextmanager
def reference_execution() -> Iterator[None]:
    """Run LightSeizureNet exactly as its modules read, in every mode: replicate pad copy, then
    ``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.ReLU``, ``nn.Dropout``, maps in PyTorch's default
    layout. Same function as the fast paths (up to float rounding); for tests and the
    benchmark's before/after rows. Not thread-safe (a module-level switch)."""
    global _REFERENCE
    before, _REFERENCE = _REFERENCE, True
    try:
        yield
    finally:
        _REFERENCE = before


def _fast() -> bool:
    return not _REFERENCE and not torch.jit.is_tracing()


def _fast_training(x: torch.Tensor) -> bool:
    """The hand-written training paths assume one dtype throughout: under autocast (mixed
    precision) the modules run instead."""
    return _fast() and not torch.is_autocast_enabled(x.device.type)


@functools.lru_cache(maxsize=512)
def _edge_taps(length: int, kernel: int, stride: int, dilation: int, pad: int
               ) -> tuple[int, tuple[tuple[int, ...], ...], int, tuple[tuple[int, ...], ...]]:
    """Which taps of a replicate-padded convolution along time fall past each edge.

    Returns ``(n_left, left, right_start, right)``: outputs ``0 .. n_left-1`` read left of the
    signal, ``left[t][j] = 1`` where tap ``j`` of output ``t`` does (it then reads sample 0);
    outputs ``right_start ..`` read right of it, ``right[t - right_start][j] = 1`` where tap
    ``j`` does (it reads the last sample).
    """
    n_out = (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    left, right = [], []
    right_start = n_out
    for t in range(n_out):
        first = t * stride - pad
        lo = tuple(int(first + j * dilation < 0) for j in range(kernel))
        hi = tuple(int(first + j * dilation > length - 1) for j in range(kernel))
        if any(lo):
            left.append(lo)
        if any(hi):
            right_start = min(right_start, t)
            right.append(hi)
    # affected outputs are contiguous runs at each end
    return len(left), tuple(left), right_start, tuple(right)


def _summed_taps(taps: tuple, weight: torch.Tensor) -> torch.Tensor:
    """(n, O, I/groups): per affected output, the sum of the kernel taps in ``taps`` (n, k)."""
    sel = torch.tensor(taps, dtype=weight.dtype, device=weight.device)
    return torch.einsum("nk,oik->noi", sel, weight[:, :, 0, :])


def _edge_term(w: torch.Tensor, edge: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, O, C, n): summed taps ``w`` (n, O, I/groups) times the edge sample ``edge`` (B, I, C),
    laid out (B, C, n, O) in memory like the matching slice of a channels-last map."""
    n, o, ig = w.shape
    b, _, c = edge.shape
    out = torch.einsum("bcgi,ngoi->bcngo", edge.permute(0, 2, 1).reshape(b, c, groups, ig),
                       w.view(n, groups, o // groups, ig))
    return out.reshape(b, c, n, o).permute(0, 3, 1, 2)


def _edge_grads(w: torch.Tensor, edge: torch.Tensor, grad: torch.Tensor, groups: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`_edge_term` w.r.t. ``edge`` (B, I, C) and ``w`` (n, O, I/groups),
    given the gradient (B, O, C, n) of its output; the first laid out (B, C, I) in memory, like
    an edge column of a channels-last map."""
    n, o, ig = w.shape
    b, _, c = edge.shape
    g = grad.permute(0, 2, 3, 1).reshape(b, c, n, groups, o // groups)  # (B, C, n, g, O/g)
    g_edge = torch.einsum("bcngo,ngoi->bcgi", g, w.view(n, groups, o // groups, ig))
    g_w = torch.einsum("bcngo,bcgi->ngoi", g, edge.permute(0, 2, 1).reshape(b, c, groups, ig))
    return g_edge.reshape(b, c, groups * ig).permute(0, 2, 1), g_w.reshape(n, o, ig)


def _replicate_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                    dilation: int, pad: int, groups: int) -> torch.Tensor:
    """Zero-padded convolution plus the edge terms of replicate padding (no autograd graph of
    its own: :class:`_ReplicateConv` differentiates it)."""
    n_left, left, right_start, right = _edge_taps(x.shape[-1], weight.shape[-1], stride, dilation, pad)
    y = F.conv2d(x, weight, bias, (1, stride), (0, pad), (1, dilation), groups)
    if n_left:
        y[..., :n_left] += _edge_term(_summed_taps(left, weight), x[..., 0], groups)
    if right:
        y[..., right_start:right_start + len(right)] += _edge_term(_summed_taps(right, weight), x[..., -1], groups)
    return y


class _ReplicateConv(torch.autograd.Function):
    """Zero-padded convolution plus the edge terms of replicate padding, with a hand-written
    backward: autograd through slices of the map would add full-size zero tensors for the
    gradient of each edge column, which is what the padding copy cost in the first place."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, dilation: int, pad: int, groups: int):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, dilation, pad, groups, bias is not None,
                    _edge_taps(x.shape[-1], weight.shape[-1], stride, dilation, pad))
        return _replicate_conv(x, weight, bias, stride, dilation, pad, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, dilation, pad, groups, has_bias, (n_left, left, right_start, right) = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = grad.contiguous(memory_format=torch.channels_last) \
            if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 else grad.contiguous()
        g_x, g_w, g_b = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if has_bias else None, [1, stride], [0, pad],
            [1, dilation], False, [0, 0], groups, [need_x, need_w, need_b and has_bias])
        for taps, cols, col in ((left, slice(0, n_left), 0),
                                (right, slice(right_start, right_start + len(right)), -1)):
            if not taps:
                continue
            w_sum = _summed_taps(taps, weight)
            ge, gw = _edge_grads(w_sum, x[..., col], grad[..., cols], groups)
            if need_x:
                g_x[..., col] += ge
            if need_w:
                sel = torch.tensor(taps, dtype=weight.dtype, device=weight.device)
                g_w[:, :, 0, :] += torch.einsum("nk,noi->oik", sel, gw)
        return g_x, g_w, g_b, None, None, None, None


def _patches(x: torch.Tensor, k: int, stride: int, dilation: int, pad: int, ones: bool = False
             ) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(M, k) time patches of a one-map input (B, 1, C, T) under replicate padding, M = B*C*T',
    row order (B, C, T'); with ``ones`` a last column of ones, (M, k + 1). Also (B, C, T')."""
    b, _, c, length = x.shape
    xs = x.reshape(b, c, length)
    xp = F.pad(xs, (pad, pad), mode="replicate") if pad else xs
    cols = xp.unfold(-1, dilation * (k - 1) + 1, stride)
    if dilation > 1:
        cols = cols[..., ::dilation]
    t_out = cols.shape[2]
    if not ones:
        return cols.reshape(-1, k), (b, c, t_out)
    flat = xp.new_empty(b, c, t_out, k + 1)
    flat[..., :k] = cols
    flat[..., k] = 1.0
    return flat.view(-1, k + 1), (b, c, t_out)


def temporal_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                  dilation: int, pad: int, groups: int = 1) -> torch.Tensor:
    """``conv2d(pad(x, (pad, pad), "replicate"), weight, bias, (1, stride), 0, (1, dilation),
    groups)`` for (1, k) kernels over (B, I, C, T) maps, without the padded copy.

    One input map (the first block): the time patches of the padded signal (a small copy: one
    map) times the (k, O) kernel matrix, giving the (B, C, T', O) result, which *is* the
    channels-last (B, O, C, T') map. More maps: a zero-padded convolution, then each output
    that read zeros past an edge gets the edge sample times the taps that read it (exactly
    what replicate padding puts there; a few outputs, a few thousand MACs per window).
    """
    n_out, n_in_g, _, k = weight.shape
    if n_in_g == 1 and groups == 1 and x.shape[1] == 1:
        flat, (b, c, t_out) = _patches(x, k, stride, dilation, pad, ones=bias is not None)
        w = weight.reshape(n_out, k)
        if bias is not None:  # the bias rides on a column of ones: no pass to broadcast it
            w = torch.cat([w, bias[:, None]], 1)
        return torch.mm(flat, w.t()).view(b, c, t_out, n_out).permute(0, 3, 1, 2)
    if not pad:
        return F.conv2d(x, weight, bias, (1, stride), 0, (1, dilation), groups)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _ReplicateConv.apply(x, weight, bias, stride, dilation, pad, groups)
    return _replicate_conv(x, weight, bias, stride, dilation, pad, groups)


class TemporalConv2d(nn.Conv2d):
    """The (1, k) replicate-padded convolution of a :class:`ConvBlock`.

    An ``nn.Conv2d`` (same parameters, state dict and attributes, so pruning and compaction
    treat it as one); while training, and under ``torch.inference_mode``, it runs
    :func:`temporal_conv` (same outputs, no padded copy, channels-last). In plain eval mode it
    runs as ``nn.Conv2d`` does, so MAC counters (``lightning_modules.cost``), hooks and the
    ONNX exporter see the textbook form: pad, then convolve.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "replicate" or self.kernel_size[0] != 1 or self.stride[0] != 1 \
                or isinstance(self.padding, str) or self.padding[0] != 0:
            raise ValueError("TemporalConv2d is a (1, k) convolution along time with replicate padding")

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if (torch.is_inference_mode_enabled() and not self.training and _fast()) or \
                (self.training and _fast_training(x)):
            return temporal_conv(x, weight, bias, self.stride[1], self.dilation[1], self.padding[1],
                                 self.groups)
        return super()._conv_forward(x, weight, bias)


class SparseKernelConv(nn.Module):
    """Convolution whose every filter reads only ``m`` of the input feature maps.

    Kernel-wise pruning (Qiu et al., IEEE JBHI 2023; ``callbacks.pruning``, scope
    ``"filter_balanced"``) leaves each filter of a layer with the same number ``m`` of its input
    kernels. A dense convolution would still multiply the zeros; here the ``m`` input maps each
    filter needs are gathered with a fixed index (``index_select``: memory traffic, no
    multiply-accumulates) into ``out * m`` maps, and a grouped convolution (``groups = out``)
    holding exactly the surviving kernels combines them. ``torch.utils.flop_counter`` then
    counts ``out * m`` kernels per output position instead of ``out * in``.

    Parameters
    ----------
    in_channels : int
        Input feature maps of the dense convolution this one replaces.
    kernel_index : sequence of sequence of int, shape (out, m)
        Per output filter, the ``m`` distinct input maps it reads (in ``[0, in_channels)``).
    kernel_size, stride, padding, dilation, padding_mode, bias
        As for ``torch.nn.Conv2d`` (or ``Conv1d`` / ``Conv3d`` with ``dims``), applied to every
        filter; replicate padding stays replicate padding.
    dims : int
        Spatial dimensions (2 for LightSeizureNet's (1, k) kernels on (B, F, C, T) maps).

    Notes
    -----
    Output equals ``conv(x, dense_weight())`` of the dense convolution with the same stride,
    padding and dilation. The MACs and parameters drop, the time does not: on CPU a grouped
    convolution over ``out * m`` gathered maps runs several times slower than the dense
    convolution it replaces (``python -m callbacks.pruning`` measures it), which is why the
    pruning callback's default scope removes whole filters instead.
    """

    def __init__(self, in_channels: int, kernel_index: Sequence[Sequence[int]],
                 kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                 padding: int | str | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                 padding_mode: str = "zeros", bias: bool = False, dims: int = 2,
                 device=None, dtype=None):
        super().__init__()
        rows = [[int(i) for i in row] for row in kernel_index]
        if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
            raise ValueError("kernel_index needs one equally long, non-empty list of input maps "
                             f"per filter, got lengths {[len(r) for r in rows]}")
        index = torch.tensor(rows, dtype=torch.long)
        if int(index.min()) < 0 or int(index.max()) >= in_channels:
            raise ValueError(f"kernel_index reads input maps {int(index.min())}..{int(index.max())}"
                             f" of a layer with {in_channels} inputs")
        if any(len(set(row)) != len(row) for row in index.tolist()):
            raise ValueError("kernel_index lists an input map twice for one filter")
        if dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"unknown padding_mode {padding_mode!r}")
        n_out, m = index.shape
        self.in_channels = int(in_channels)
        self.out_channels = int(n_out)
        self.register_buffer("index", index)
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        # Zero padding is free inside the convolution; other modes pad the narrow input before
        # the gather widens it m-fold (same result: padding commutes with picking channels).
        self.grouped = conv(n_out * m, n_out, kernel_size, stride=stride,
                            padding=padding if padding_mode == "zeros" else 0, dilation=dilation,
                            groups=n_out, bias=bias, device=device, dtype=dtype)
        if padding == "same" and any(st != 1 for st in self.grouped.stride):
            raise ValueError("padding='same' needs stride 1")
        n_dims = len(self.grouped.kernel_size)
        self.padding = padding if isinstance(padding, str) else (
            (int(padding),) * n_dims if isinstance(padding, int) else tuple(int(p) for p in padding))
        self.padding_mode = padding_mode
        self._pad = None
        if padding_mode != "zeros":
            pad: list[int] = []
            for k, d, p in reversed(list(zip(self.grouped.kernel_size, self.grouped.dilation,
                                             self._padding_per_dim()))):
                if p is None:  # "same": the extra sample of an even span goes right, as torch does
                    pad += [d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2]
                else:
                    pad += [p, p]
            self._pad = tuple(pad) if any(pad) else None

    def _padding_per_dim(self) -> list[int | None]:
        """Padding per spatial dimension; None for "same" (depends on the kernel span)."""
        n = len(self.grouped.kernel_size)
        if self.padding == "valid":
            return [0] * n
        if self.padding == "same":
            return [None] * n
        return list(self.padding)

    # The attributes of the dense convolution this one stands for (compaction reads them).
    kernel_size = property(lambda self: self.grouped.kernel_size)
    stride = property(lambda self: self.grouped.stride)
    dilation = property(lambda self: self.grouped.dilation)
    bias = property(lambda self: self.grouped.bias)

    @property
    def kernels_per_filter(self) -> int:
        """``m``: input kernels each filter computes."""
        return int(self.index.shape[1])

    @property
    def kernel_index(self) -> list[list[int]]:
        return self.index.tolist()

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense weight (out, in, *kernel), zeros for the kernels not read."""
        w = self.grouped.weight
        dense = w.new_zeros((self.out_channels, self.in_channels) + tuple(w.shape[2:]))
        rows = torch.arange(self.out_channels, device=w.device).unsqueeze(1).expand_as(self.index)
        return dense.index_put((rows, self.index), w.view(self.index.shape + w.shape[2:]),
                               accumulate=True)

    @torch.no_grad()
    def load_dense_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Copy the kernels this module reads from a dense weight (out, in, *kernel).

        Raises ``ValueError`` if a non-zero kernel of ``weight`` is not in ``kernel_index``
        (it would be silently dropped).
        """
        expected = (self.out_channels, self.in_channels) + tuple(self.grouped.weight.shape[2:])
        if tuple(weight.shape) != expected:
            raise ValueError(f"dense weight {tuple(weight.shape)} does not fit {expected}")
        index = self.index.to(weight.device)
        rows = torch.arange(self.out_channels, device=weight.device).unsqueeze(1).expand_as(index)
        read = torch.zeros(expected[:2], dtype=torch.bool, device=weight.device)
        read[rows, index] = True
        if bool(((weight.detach().flatten(2) != 0).any(-1) & ~read).any()):
            raise ValueError("the dense weight has non-zero kernels outside kernel_index")
        picked = weight[rows, index]
        self.grouped.weight.copy_(picked.reshape(self.grouped.weight.shape))
        if bias is not None:
            self.grouped.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._pad is not None:
            x = F.pad(x, self._pad, mode=self.padding_mode)
        return self.grouped(x.index_select(1, self.index.flatten()))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernels_per_filter="
                f"{self.kernels_per_filter}, kernel_size={self.kernel_size}")


class ConvBlock(nn.Module):
    """Temporal convolution -> BatchNorm -> ReLU on a (B, F, C, T) map, channel axis untouched.

    How it runs (same function in every case, up to float rounding): under
    ``torch.inference_mode`` in eval mode, BatchNorm folded into the kernel and ReLU in place;
    while training, :class:`TemporalConv2d`'s fast convolution, and for a block with one input
    map (the first) conv + BatchNorm + ReLU as one matrix product whose batch statistics come
    from the input patches (:meth:`_forward_first_train`; hooks on that block's ``conv`` and
    ``bn`` do not fire then); in plain eval mode (MAC counting, ECAMs under ``no_grad``, ONNX
    export) and under :func:`reference_execution`, the three modules as they read.

    The kernel is (1, k): each EEG channel is filtered with the same weights and never mixed with
    its neighbours, so every feature stays attached to one EEG channel until the global pool.
    Padding is "same" around the kernel centre and replicates the edge sample: a constant input
    map then stays constant, which lets kernel-wise pruning fold a fully pruned filter into the
    next layer exactly (see ``callbacks.pruning.compact``), and it avoids the step a zero pad
    puts at the window edges of an unstandardized EEG. With ``kernel_index`` (per filter, the
    input maps it reads) the convolution is a :class:`SparseKernelConv`: what a kernel-wise
    pruned, compacted block is rebuilt as.
    """

    def __init__(self, in_filters: int, out_filters: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, kernel_index: Sequence[Sequence[int]] | None = None):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so the output is centred, got {kernel_size}")
        conv_kw = dict(stride=(1, stride), dilation=(1, dilation),
                       padding=(0, dilation * (kernel_size - 1) // 2), padding_mode="replicate",
                       bias=False)  # BN carries the bias
        if kernel_index is None:
            self.conv = TemporalConv2d(in_filters, out_filters, (1, kernel_size), **conv_kw)
        else:
            if len(kernel_index) != out_filters:
                raise ValueError(f"kernel_index has {len(kernel_index)} filters, the block "
                                 f"{out_filters}")
            self.conv = SparseKernelConv(in_filters, kernel_index, (1, kernel_size), **conv_kw)
        self.bn = nn.BatchNorm2d(out_filters)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pure scoring (inference mode: Lightning's validation/test/predict, benchmarks) takes the
        # folded path; ECAMs, hooks and MAC counting in plain eval mode see the modules as they are
        if isinstance(self.conv, TemporalConv2d) and self.bn.track_running_stats and _fast():
            if torch.is_inference_mode_enabled() and not self.training:
                return self._forward_folded(x)
            if (self.training and self.bn.training and self.bn.affine and x.shape[1] == 1
                    and self.conv.weight.shape[1] == 1 and self.conv.groups == 1 and _fast_training(x)):
                return self._forward_first_train(x)
        return self.act(self.bn(self.conv(x)))

    def _forward_first_train(self, x: torch.Tensor) -> torch.Tensor:
        """Training, one input map (the first block): conv -> BatchNorm (batch statistics) ->
        ReLU as one matrix product. The convolution is linear in the (k,) time patches of the
        input, so the mean and variance of every output map follow from the patches' mean and
        (k, k) covariance, and normalizing is folded into the kernel: the same function and the
        same gradients as the three modules (statistics included), without two passes of
        BatchNorm forward and backward over the largest map of the network. Running statistics
        are updated as ``nn.BatchNorm2d`` does."""
        conv, bn = self.conv, self.bn
        k, stride, dilation, pad = conv.kernel_size[1], conv.stride[1], conv.dilation[1], conv.padding[1]
        # patches of the signal minus its mean: a conv of a shifted signal is the conv plus a
        # constant, and the statistics below lose no precision to an EEG offset
        offset = x.detach().mean()
        full, (b, c, t_out) = _patches(x - offset, k, stride, dilation, pad, ones=True)
        flat = full[:, :k]  # (M, k) patches; the column of ones carries the shift below
        m = flat.shape[0]
        mean_p = (flat.new_ones(1, m) @ flat).squeeze(0) / m
        cov = (flat.t() @ flat).double() / m - torch.outer(mean_p, mean_p).double()
        w = conv.weight.reshape(-1, k)
        mean_y = w @ (mean_p + offset)
        if conv.bias is not None:
            mean_y = mean_y + conv.bias
        var_y = ((w.double() @ cov) * w.double()).sum(1).clamp(min=0).to(w.dtype)  # biased
        scale = bn.weight * torch.rsqrt(var_y + bn.eps)
        # y = w.(p + offset) + bias, normalized: (w * scale).p + (beta + scale * (w.offset + bias - mean))
        shift = bn.bias + scale * (w.sum(1) * offset - mean_y)
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        y = torch.relu_(torch.mm(full, torch.cat([w * scale[:, None], shift[:, None]], 1).t()))
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - factor).add_(mean_y.detach(), alpha=factor)
            bn.running_var.mul_(1 - factor).add_(var_y.detach(), alpha=factor * m / max(m - 1, 1))
        return y.view(b, c, t_out, -1).permute(0, 3, 1, 2)

    def _forward_folded(self, x: torch.Tensor) -> torch.Tensor:
        """Eval: BatchNorm folded into the convolution, ReLU in place. Same result as
        conv -> BN -> ReLU with running statistics, without two passes over the (B, F, C, T) map
        (the elementwise layers cost as much as the convolutions here)."""
        conv, bn = self.conv, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale.view(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        return torch.relu_(temporal_conv(x, weight, bias, conv.stride[1], conv.dilation[1],
                                         conv.padding[1], conv.groups))


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class _Dropout(nn.Dropout):
    """Element-wise dropout whose mask comes from ``torch.rand`` (the same Bernoulli(1 - p)
    keep mask, scaled by 1 / (1 - p)): ``bernoulli_`` takes ~3x as long on CPU, and dropout was
    the costliest single element-wise op of a training step."""

    def mask_like(self, x: torch.Tensor) -> torch.Tensor:
        """A scaled keep mask (0 or 1 / (1 - p)) of ``x``'s shape and layout."""
        if self.p >= 1.0:
            return torch.zeros_like(x)
        keep = 1.0 - self.p
        return torch.rand_like(x).lt_(keep).mul_(1.0 / keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not _fast():
            return super().forward(x)
        return x * self.mask_like(x)


class _DropoutMean(torch.autograd.Function):
    """``(z * mask).mean((2, 3))``, whose backward writes ``mask * grad / (C T')`` in one pass in
    the mask's (channels-last) layout."""

    @staticmethod
    def forward(ctx, z, mask):
        ctx.save_for_backward(mask)
        return (z * mask).mean(dim=(2, 3))

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return mask * (grad / (mask.shape[2] * mask.shape[3]))[:, :, None, None], None


class LightSeizureNet(nn.Module):
    """LightSeizureNet: dilated temporal CNN, channel-resolved, global average pooling.

    Parameters
    ----------
    n_chans : int
        Number of EEG channels C (18 for the double-banana montage).
    n_outputs : int
        2 (background, seizure; softmax) or 1 (seizure logit; sigmoid).
    n_times : int
        Samples per window T (512 = 2 s at 256 Hz). The network accepts any T; this value is the
        reference for cost measurements and for :meth:`example_input`.
    sfreq : float
        Sampling frequency in Hz (for the ECAM dominant frequency).
    n_filters, kernel_sizes, strides, dilations : sequence of int
        One entry per convolution block (all four of the same length).
    input_scale_uv : float
        Fixed amplitude scale in microvolts (see "Input scaling").
    compress : bool
        Apply ``asinh`` after scaling (see "Input scaling").
    dropout : float
        Element-wise dropout on the last feature map (before the pool and before the CAM, so the
        CAM and the logits always see the same features).
    freq_band : (float, float)
        Band in Hz searched for the ECAM dominant frequency.
    kernel_index : sequence or None
        Per block, None (dense) or, per filter of the block, the input feature maps it reads
        (all filters of a block read the same number): the kernels that survived kernel-wise
        pruning. ``callbacks.pruning.compact`` builds such blocks (:class:`SparseKernelConv`)
        and :attr:`init_kwargs` reports them, so a checkpoint rebuilds the compacted network.

    Notes
    -----
    Architecture (defaults): the window (B, C, T) becomes a one-filter map (B, 1, C, T); seven
    :class:`ConvBlock` s with (1, k) kernels follow::

        filters   8  14  14  14  14  14  14
        kernel    7   5   3   3   3   3   3
        stride    2   2   2   1   1   1   1
        dilation  1   1   1   1   2   4   8

    The three strided blocks bring 256 Hz down to a 32 Hz feature rate (64 steps per 2 s
    window), where most of the
    multiply-accumulates would otherwise be spent; the dilated blocks (1, 2, 4, 8) then grow
    the receptive field to 263 samples (~1 s at 256 Hz, several cycles of a 3-8 Hz ictal
    rhythm) at a constant cost per layer. A global average pool over (channel, time) and one
    linear layer give the logits. Nothing ever mixes EEG channels, so the model is the same
    detector run on every channel, pooled; this is what makes the CAM per channel exact.
    Cost for 18 x 512 (``lightning_modules.cost``): 6.16 M MACs and 4,778 parameters, within
    the paper's 6.2 M MACs patient-independent budget. Kernel-wise pruning (``callbacks.pruning``)
    of 60 % of the kernels as whole filters compacts to widths (5, 10, 10, 10, 10, 11, 10):
    2.53 M MACs and 1,999 parameters, dense convolutions; pruned to balanced kernels per filter
    and compacted into :class:`SparseKernelConv` blocks, 2.58 M MACs and 2,074 parameters
    (``python -m callbacks.pruning`` prints both and times them).

    Execution: the maps are kept channels-last from the first block on, the replicate-padded
    convolutions never copy their padded input (:func:`temporal_conv`), BatchNorm is folded under
    ``torch.inference_mode``; :func:`reference_execution` runs the plain modules instead.

    Input scaling: EEG arrives in microvolts, filtered but not standardized. The model divides
    by a fixed ``input_scale_uv`` (100 uV) rather than standardizing each window, because
    amplitude itself is evidence of a seizure and per-window z-scoring would erase it; then
    ``asinh`` keeps the scale linear below ~100 uV and logarithmic above, so electrode pops of
    several millivolts do not dominate the BatchNorm statistics.

    ECAM: with features ``f`` (B, F, C, T') before the pool and classifier weights ``W`` and
    bias ``b``, the seizure direction is ``w = W[1] - W[0]``, ``b_s = b[1] - b[0]`` (or ``W[0]``,
    ``b[0]`` for one output), and ``cam[c, t] = w . f[:, c, t] + b_s``. Because the pool is a
    mean, the mean of ``cam`` over (c, t) is exactly the seizure logit (log-odds of the
    softmax), so a channel's time-averaged CAM is the logit the model would give that channel
    alone.

    Pooling over channels (``pooling``): with the default ``mean`` a focal seizure on 2-4 of 18
    derivations must outweigh the background of the others. ``max``, ``lse`` (log-sum-exp,
    ``log mean exp``) and ``attention`` (a learned softmax weight per channel from its features,
    Ilse et al., ICML 2018) pool the per-channel seizure logits ``z_c = mean_t cam[c, t]``
    instead; the CAM stays exact per channel in every case, because ``z_c`` is still the logit
    the model gives channel ``c`` alone, and the window logit is the pool of those
    (:meth:`channel_weights` says how much each counted). ``channel_context`` adds a cheap
    cross-channel stage: a term computed from the channel-mean features, shared by every
    channel's logit (one more linear map, F x n_outputs weights), so the montage as a whole
    can raise or lower every channel's evidence. These variants output the logits ``(0, z)``
    (softmax) or ``z`` (sigmoid), the seizure logit ``z`` being the pooled one.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int = 2,
        n_times: int = 512,
        sfreq: float = 256.0,
        n_filters: Sequence[int] = (8, 14, 14, 14, 14, 14, 14),
        kernel_sizes: Sequence[int] = (7, 5, 3, 3, 3, 3, 3),
        strides: Sequence[int] = (2, 2, 2, 1, 1, 1, 1),
        dilations: Sequence[int] = (1, 1, 1, 1, 2, 4, 8),
        input_scale_uv: float = 100.0,
        compress: bool = True,
        dropout: float = 0.2,
        freq_band: tuple[float, float] = (1.0, 30.0),
        kernel_index: Sequence[Sequence[Sequence[int]] | None] | None = None,
        pooling: str = "mean",
        channel_context: bool = False,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        lengths = {len(n_filters), len(kernel_sizes), len(strides), len(dilations)}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError("n_filters, kernel_sizes, strides and dilations need the same "
                             f"non-zero length, got {len(n_filters)}, {len(kernel_sizes)}, "
                             f"{len(strides)}, {len(dilations)}")
        if n_outputs not in (1, 2):
            raise ValueError(f"n_outputs must be 1 (sigmoid) or 2 (softmax), got {n_outputs}")
        if n_chans < 1 or n_times < 1 or sfreq <= 0 or input_scale_uv <= 0:
            raise ValueError(f"bad signal shape: n_chans={n_chans}, n_times={n_times}, "
                             f"sfreq={sfreq}, input_scale_uv={input_scale_uv}")
        self.n_chans = int(n_chans)
        self.n_outputs = int(n_outputs)
        self.n_times = int(n_times)
        self.sfreq = float(sfreq)
        self.n_filters = tuple(int(f) for f in n_filters)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.strides = tuple(int(s) for s in strides)
        self.dilations = tuple(int(d) for d in dilations)
        self.input_scale_uv = float(input_scale_uv)
        self.compress = bool(compress)
        self.freq_band = (float(freq_band[0]), float(freq_band[1]))
        self.dropout_p = float(dropout)

        if kernel_index is None:
            kernel_index = [None] * len(self.n_filters)
        if len(kernel_index) != len(self.n_filters):
            raise ValueError(f"kernel_index needs one entry (None or per-filter input lists) per "
                             f"block, {len(self.n_filters)}, got {len(kernel_index)}")
        blocks = []
        in_f = 1
        for i, (f, k, s, d) in enumerate(zip(self.n_filters, self.kernel_sizes, self.strides,
                                             self.dilations)):
            try:
                blocks.append(ConvBlock(in_f, f, k, s, d, kernel_index=kernel_index[i]))
            except ValueError as err:
                raise ValueError(f"block {i}: {err}") from err
            in_f = f
        self.blocks = nn.ModuleList(blocks)
        self.dropout = _Dropout(dropout)
        self.pooling = str(pooling)
        self.channel_context = bool(channel_context)
        # one linear layer reads each channel's time-pooled features: the class rows, then (with
        # channel_context) the context rows, then (attention pooling) the attention score row;
        # one head keeps pruning's compaction (which narrows the head's inputs) unchanged
        rows = n_outputs * (2 if self.channel_context else 1) + (1 if self.pooling == "attention" else 0)
        self.classifier = nn.Linear(in_f, rows)

    # -- bookkeeping ------------------------------------------------------------------------
    @property
    def init_kwargs(self) -> dict:
        """Constructor arguments that rebuild this network (widths and kept kernels follow
        pruning compaction)."""
        return dict(n_chans=self.n_chans, n_outputs=self.n_outputs, n_times=self.n_times,
                    sfreq=self.sfreq, n_filters=list(self.n_filters),
                    kernel_sizes=list(self.kernel_sizes), strides=list(self.strides),
                    dilations=list(self.dilations), input_scale_uv=self.input_scale_uv,
                    compress=self.compress, dropout=self.dropout_p,
                    freq_band=list(self.freq_band), kernel_index=self.kernel_index,
                    pooling=self.pooling, channel_context=self.channel_context)

    @property
    def kernel_index(self) -> list[list[list[int]] | None] | None:
        """Per block, the input maps each filter reads (None for a dense block); None when all
        blocks are dense. Read from the blocks, so it follows compaction."""
        index = [b.conv.kernel_index if isinstance(b.conv, SparseKernelConv) else None
                 for b in self.blocks]
        return None if all(i is None for i in index) else index

    @property
    def total_stride(self) -> int:
        return math.prod(self.strides)

    @property
    def receptive_field(self) -> int:
        """Receptive field of one feature step, in input samples."""
        rf, jump = 1, 1
        for k, s, d in zip(self.kernel_sizes, self.strides, self.dilations):
            rf += (k - 1) * d * jump
            jump *= s
        return rf

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        return torch.zeros(batch_size, self.n_chans, self.n_times)

    def conv_chain(self) -> tuple[list[ConvBlock], nn.Linear]:
        """Blocks in order and the linear head: the structure kernel-wise pruning compacts."""
        return list(self.blocks), self.classifier

    # -- forward ----------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_chans:
            raise ValueError(f"LightSeizureNet expects EEG windows (batch, {self.n_chans} "
                             f"channels, time), got shape {tuple(x.shape)}")

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) microvolts -> the last block's map (B, F, C, T'), before dropout."""
        self._check(x)
        z = x.unsqueeze(1) / self.input_scale_uv
        if self.compress:
            z = _asinh(z)
        for block in self.blocks:
            z = block(z)
        return z

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) microvolts -> feature map (B, F, C, T') before the pool (after dropout)."""
        z = self._maps(x)
        if self.training and z.requires_grad and z.is_contiguous(memory_format=torch.channels_last) and _fast():
            # the pool's gradient arrives broadcast, without a layout; ReLU's backward over a
            # channels-last map and a gradient in another layout is ~10x slower than over two alike
            z.register_hook(_channels_last)
        return self.dropout(z)

    @property
    def _plain_pool(self) -> bool:
        return self.pooling == "mean" and not self.channel_context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._plain_pool and self.training and self.dropout.p > 0 and _fast():
            # dropout and the global average pool as one step: its backward writes the map's
            # gradient once, channels-last, instead of broadcasting, scaling, converting and masking
            z = self._maps(x)
            return self.classifier(_DropoutMean.apply(z, self.dropout.mask_like(z)))
        return self._logits(self.features(x))

    def _logits(self, f: torch.Tensor) -> torch.Tensor:
        """Window logits from the feature map (B, F, C, T') (see "Pooling" in the class notes)."""
        if self._plain_pool:
            return self.classifier(f.mean(dim=(2, 3)))
        per_channel = self._channel_logits(f)
        pooled = self.pool_channels(per_channel, f)
        if self.n_outputs == 1:
            return pooled[:, None]
        return torch.stack([torch.zeros_like(pooled), pooled], 1)

    def _channel_logits(self, f: torch.Tensor) -> torch.Tensor:
        """(B, C) seizure logit of each channel alone: its time-averaged CAM, the context term
        every channel shares included (0 without ``channel_context``)."""
        w, b = self.seizure_direction()
        g = f.mean(3)  # (B, F, C)
        return torch.einsum("bfc,f->bc", g, w) + b + self._context(g)[:, None]

    def _context(self, g: torch.Tensor) -> torch.Tensor:
        """(B,) cross-channel context: the context rows applied to the channel-mean features."""
        if not self.channel_context:
            return g.new_zeros(g.shape[0])
        k = self.n_outputs
        v, c = self.classifier.weight[k:2 * k], self.classifier.bias[k:2 * k]
        if k == 2:
            v, c = v[1] - v[0], c[1] - c[0]
        else:
            v, c = v[0], c[0]
        return g.mean(2) @ v + c

    def channel_weights(self, per_channel: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """(B, C) how much each channel's logit counts in the window's (sums to 1): uniform for
        mean pooling, one-hot at the largest for max, a softmax of the logits for log-sum-exp,
        the learned attention for attention pooling."""
        if self.pooling == "mean":
            return torch.full_like(per_channel, 1.0 / per_channel.shape[1])
        if self.pooling == "max":
            return F.one_hot(per_channel.argmax(1), per_channel.shape[1]).to(per_channel.dtype)
        if self.pooling == "lse":
            return torch.softmax(per_channel, 1)
        u, u0 = self.classifier.weight[-1], self.classifier.bias[-1]
        return torch.softmax(torch.einsum("bfc,f->bc", f.mean(3), u) + u0, 1)

    def pool_channels(self, per_channel: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """(B,) window seizure logit from the (B, C) per-channel logits."""
        if self.pooling == "mean":
            return per_channel.mean(1)
        if self.pooling == "max":
            return per_channel.amax(1)
        if self.pooling == "lse":  # a smooth max: log of the mean of exp, = mean when all agree
            return torch.logsumexp(per_channel, 1) - math.log(per_channel.shape[1])
        return (self.channel_weights(per_channel, f) * per_channel).sum(1)

    def seizure_direction(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights (F,) and bias () that map a channel's features to its seizure logit."""
        w, b = self.classifier.weight, self.classifier.bias
        if self.n_outputs == 2:
            return w[1] - w[0], b[1] - b[0]
        return w[0], b[0]

    def ecam(self, x: torch.Tensor, with_freq: bool = True) -> ECAM:
        """EEG class activation map for the seizure class.

        Parameters
        ----------
        x : torch.Tensor, shape (B, C, T)
            EEG windows in microvolts.
        with_freq : bool
            Also compute the per-channel dominant frequency (skip it during training).

        Returns
        -------
        ECAM
            ``cam_features`` (B, C, T') = ``w . f + b_s`` on the feature grid (see the class
            notes). ``cam`` (B, C, T) is it on the input's time axis: feature step ``j`` is
            centred on input sample ``j * S`` (S = product of strides; every block pads around
            its kernel centre), values are linearly interpolated between those centres and held
            constant beyond the first and last. ``freq`` (B, C) is
            :func:`dominant_frequency` of the input weighted by ``relu(cam)``.
        """
        f = self.features(x)
        logits = self._logits(f)
        w, b = self.seizure_direction()
        cam_feat = torch.einsum("bfct,f->bct", f, w) + b
        if self.channel_context:
            cam_feat = cam_feat + self._context(f.mean(3))[:, None, None]
        cam = cam_feat @ _interp_matrix(cam_feat.shape[-1], x.shape[-1], self.total_stride,
                                        cam_feat.dtype, cam_feat.device)
        freq = None
        if with_freq:
            freq = dominant_frequency(x, cam.clamp(min=0), self.sfreq, *self.freq_band)
        return ECAM(logits=logits, cam=cam, freq=freq, cam_features=cam_feat)


def _asinh(z: torch.Tensor) -> torch.Tensor:
    """``asinh`` written with sign/log1p/sqrt, which the ONNX exporter supports (``aten::asinh`` it
    does not); ``sqrt(z^2 + 1) - 1 = z^2 / (sqrt(z^2 + 1) + 1)`` keeps it exact near 0.

    When no gradient flows to ``z`` (the EEG input) the same formula runs in place on two
    temporaries: a pass over the input costs about as much as a convolution layer here, and
    ``torch.asinh`` itself is ~3x slower than this on CPU."""
    a = z.abs()
    if (z.requires_grad and torch.is_grad_enabled()) or not _fast():
        return torch.sign(z) * torch.log1p(a + a * a / (torch.sqrt(a * a + 1) + 1))
    t = a * a
    t.div_(t.add(1).sqrt_().add_(1)).add_(a).log1p_()
    return t.copysign_(z)


def _interp_matrix(n_feat: int, n_times: int, stride: int, dtype, device) -> torch.Tensor:
    """(n_feat, n_times) matrix of linear interpolation weights from feature centres j*stride."""
    t = torch.arange(n_times, dtype=torch.float64)
    pos = (t / stride).clamp(0, n_feat - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_feat - 1)
    frac = pos - lo
    m = torch.zeros(n_feat, n_times, dtype=torch.float64)
    m[lo, torch.arange(n_times)] += 1 - frac
    m[hi, torch.arange(n_times)] += frac
    return m.to(dtype=dtype, device=device)


def _spectra(x: torch.Tensor, nper: int, hop: int) -> tuple[torch.Tensor, int]:
    """Power spectra (..., S, F) of Hann-windowed, de-meaned segments of ``nper`` samples every
    ``hop``, zero-padded to twice their length; also the FFT length."""
    seg = x.unfold(-1, nper, hop)
    seg = (seg - seg.mean(-1, keepdim=True)) * torch.hann_window(nper, periodic=False, device=x.device)
    return torch.fft.rfft(seg, n=2 * nper).abs().square(), 2 * nper


def _peak(log_p: torch.Tensor, freqs: torch.Tensor, fmin: float, fmax: float) -> torch.Tensor:
    """Frequency of the largest ``log_p`` (..., F) within ``[fmin, fmax]``, refined by a parabola
    through the peak bin and its two neighbours."""
    band = (freqs >= fmin) & (freqs <= fmax)
    if int(band.sum()) < 3:
        raise ValueError(f"fewer than 3 frequency bins in [{fmin}, {fmax}] Hz ({len(freqs)} bins up to "
                         f"{float(freqs[-1]):g} Hz)")
    k = torch.where(band, log_p, torch.full_like(log_p, -torch.inf)).argmax(-1)
    km, kp = (k - 1).clamp(min=0), (k + 1).clamp(max=len(freqs) - 1)
    a, c, e = (log_p.gather(-1, i.unsqueeze(-1)).squeeze(-1) for i in (km, k, kp))
    denom = a - 2 * c + e
    shift = torch.where(denom.abs() > 1e-12, 0.5 * (a - e) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    return (freqs[k] + shift.to(freqs.dtype) * float(freqs[1] - freqs[0])).clamp(fmin, fmax)


def dominant_frequency(x: torch.Tensor, weight: torch.Tensor, sfreq: float, fmin: float = 1.0,
                       fmax: float = 30.0, segment_s: float = 1.0) -> torch.Tensor:
    """Per-channel peak frequency of a weighted Welch spectrum; NaN where nothing is weighted.

    The signal is cut into Hann-windowed segments of ``segment_s`` (50 % overlap; the whole
    signal if shorter), each de-meaned and zero-padded to twice its length (0.5 Hz bins at
    1 s). Each segment's power spectrum is weighted by the mean of ``weight`` over that segment
    (for an ECAM: the positive activation), and the weighted mean spectrum is searched for its
    peak within ``[fmin, fmax]`` Hz, refined by a parabola through the log power of the peak bin
    and its two neighbours.

    A channel whose weight is zero everywhere (a channel the model did not activate) has no
    dominant frequency: NaN, rather than the peak of its background spectrum (about 1.3 Hz, the
    1/f low edge, which reads as delta activity). One frequency for a whole seizure also hides
    its evolution: :func:`frequency_track` gives one per second.

    Parameters
    ----------
    x, weight : torch.Tensor, shape (..., T)
        Signal and non-negative weight per sample.
    sfreq : float
        Sampling frequency in Hz.
    fmin, fmax : float
        Band searched (Hz).
    segment_s : float
        Welch segment length (s).

    Returns
    -------
    torch.Tensor, shape (...)
        Frequency in Hz, NaN where the weight is zero.
    """
    if x.shape != weight.shape:
        raise ValueError(f"signal {tuple(x.shape)} and weight {tuple(weight.shape)} differ in shape")
    nper = max(4, min(x.shape[-1], int(round(segment_s * sfreq))))
    x = x.detach().to(torch.float32)
    hop = max(1, nper // 2)
    seg_w = weight.detach().to(torch.float32).clamp(min=0).unfold(-1, nper, hop).mean(-1)
    power, n_fft = _spectra(x, nper, hop)  # (..., S, F)
    total = seg_w.sum(-1, keepdim=True)
    spec = (power * (seg_w / total.clamp(min=1e-12)).unsqueeze(-1)).sum(-2)  # (..., F)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sfreq).to(x.device)
    f = _peak(torch.log(spec.clamp(min=1e-20)), freqs, fmin, fmax)
    return torch.where(total.squeeze(-1) > 0, f, torch.full_like(f, float("nan")))


def frequency_track(x: torch.Tensor, weight: torch.Tensor, sfreq: float, step_s: float = 1.0,
                    window_s: float = 2.0, fmin: float = 1.0, fmax: float = 30.0, min_weight: float = 0.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dominant frequency along time, where a channel is activated.

    How the ictal rhythm develops (the paper's sequence of ECAMs shows it: fast at onset,
    slowing as the seizure evolves) is lost in one frequency per seizure, so each ``window_s``
    window every ``step_s`` gets its own: the peak of its power spectrum (Hann window, zero-padded
    to 0.25 Hz bins at 2 s), refined by a parabola. Windows where the channel's ``weight`` never
    exceeds ``min_weight`` (not activated) give NaN.

    On the synthetic corpus with ideal weights (1 over the true seizure, 0 elsewhere) the
    onset-zone median follows the simulated 8 -> 3 Hz sweep within 10 % at the median second
    (``tests/test_lsn.py``). Two corrections were tried and left out: a 1/f line fitted to the
    spectrum (FOOOF-like; median error 50 % instead of 11 % on a realistic synthetic corpus:
    harmonics of sharp discharges and muscle stood above the line), and the ratio to the
    channel's non-activated spectrum (ictal over pre-ictal power: 9.5 % there, but on the real
    recording of ``../shared/real/umich`` it picked the 20-28 Hz muscle of the seizure, where the
    background holds almost no power, instead of its 4-7 Hz rhythm).

    Parameters
    ----------
    x, weight : torch.Tensor, shape (C, T)
        Signal (uV) and non-negative weight per sample (the positive ECAM).

    Returns
    -------
    freq : torch.Tensor, shape (C, n_steps)
        Hz, NaN where not activated.
    times_s : torch.Tensor, shape (n_steps,)
        Window centres (s from the first sample).
    """
    if x.shape != weight.shape or x.dim() != 2:
        raise ValueError(f"frequency_track needs (channels, time) signal and weight of one shape, got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    n, hop = int(round(window_s * sfreq)), max(1, int(round(step_s * sfreq)))
    if x.shape[-1] < n:
        raise ValueError(f"frequency_track needs at least {window_s:g} s ({n} samples), got {x.shape[-1]}")
    power, n_fft = _spectra(x.detach().to(torch.float32), n, hop)  # (C, S, F)
    active = weight.detach().clamp(min=0).unfold(-1, n, hop).amax(-1) > max(float(min_weight), 0.0)  # (C, S)
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / sfreq).to(x.device)
    f = _peak(torch.log(power.clamp(min=1e-20)), freqs, fmin, fmax)
    times = (torch.arange(power.shape[1], dtype=torch.float64) * hop + n / 2) / sfreq
    return torch.where(active, f, torch.full_like(f, float("nan"))), times
