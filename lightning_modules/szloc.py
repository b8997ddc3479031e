"""SZLoc: seizure detection and onset-zone localization from a clip of consecutive 1 s windows.

After Craley et al., "SZLoc: A Multi-resolution Architecture for Automated Epileptic Seizure
Localization from Scalp EEG", MIDL 2022, and the ideas of its public re-implementation (DeepSOZ
repository, class ``ctg_11_8``):

* a **local encoder**, one CNN shared by every channel, turns each channel's 1 s window into a
  token (what this channel shows now);
* a **global encoder**, a CNN over all channels at once, turns each window into one token (what
  the whole montage shows now);
* a **transformer** fuses, per window, the channel tokens with the global token;
* **bidirectional GRUs** run over the windows, one per channel stream (shared weights) and one for
  the global stream;
* heads give per-channel per-window seizure activity, a global per-window detection logit and a
  temporal attention over the windows, from which two **onset maps** (one value per channel) are
  read.

Two wirings of the fusion (``fusion``):

* ``"joint"`` (default): one pre-norm transformer encoder over the C + 1 tokens of a window (a
  learned type embedding marks the global one); the channel GRU reads the fused channel tokens,
  the global GRU (detection and temporal attention) the fused global token.
* ``"reference"``, as the re-implementation wires it (``nn.Transformer`` with one encoder and one
  decoder layer, post-norm, ReLU, 8 heads in its config): the encoder reads the C channel tokens
  and the raw global token, the decoder's queries are the C channel tokens attending to the
  encoder's output; only the C channel tokens come out, and the global GRU reads the global
  CNN's output directly (the global stream bypasses the transformer).

``experiments/configs/chb_loso_szloc_reference.yaml`` selects the reference wiring with the
reference losses (:mod:`lightning_modules.szloc_losses`), 19 referential electrodes at 200 Hz,
the rise map from the most active channel, a stride-1 embedding, 8 heads and dropout 0.15 (at
d_model 32 for a CPU; ``model.d_model=80`` is the re-implementation's width). What still
differs from ``ctg_11_8`` there, on purpose or for want of a switch:

* float32, not float64;
* single-logit binary heads (sigmoid / BCE), equivalent to its two-class softmax / cross-entropy;
* the CNN blocks: here every residual block has two convolutions with batch norm (no conv bias)
  and adds its residual once; ``ctg_11_8``'s blocks have no active batch norm (the layers exist,
  unused), a conv bias, one convolution per block in the local encoder and two in the global
  one, and add the residual twice (``relu(conv(x) + x) + x``). Hence 549,929 parameters at its
  input against its 490,791;
* ``cnn_dropout`` acts inside the residual blocks; there it drops the encoders' output tokens;
* the rise map's weights are normalized to sum to 1 (there: the raw positive differences): the
  same top channel and, the map losses dividing by the map's maximum, the same losses;
* input scaling per clip (``scale_uv=None``); there the mean and standard deviation of all the
  clips of one recording at once;
* no channel position embedding, as there (its ``tgt_mask`` is built and never used): the channel
  path is permutation-equivariant; the channel count is fixed at construction because the global
  encoder mixes channels.

Outside the model (data, training): see the README's SZLoc section (preprocessing 1.6-30 Hz
without its clipping at 2 standard deviations, background and recording-wide clips beside the
seizure clips, AdamW with a schedule and early stopping instead of Adam at 1e-4 for 50 epochs
with one recording's seizures per batch).

This module is a pure ``nn.Module`` (no Lightning).
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class SZLocOutput(NamedTuple):
    """What :class:`SZLoc` returns for a batch of clips (B clips, C channels, N windows).

    Attributes
    ----------
    channel_logits : Tensor, shape (B, C, N)
        Seizure logit per channel per window (sigmoid: per-channel seizure activity).
    global_logits : Tensor, shape (B, N)
        Seizure logit per window from the global stream (the detection output).
    attention : Tensor, shape (B, N)
        Temporal attention over the windows (softmax over N, sums to 1).
    attention_map : Tensor, shape (B, C)
        Onset map (a): channel activity averaged over windows with the attention weights.
    rise_map : Tensor, shape (B, C)
        Onset map (b): channel activity averaged over windows with the rises of the global
        seizure probability (positive part of its first difference, normalized to sum to 1).
    """

    channel_logits: torch.Tensor
    global_logits: torch.Tensor
    attention: torch.Tensor
    attention_map: torch.Tensor
    rise_map: torch.Tensor


class ResidualBlock(nn.Module):
    """Two same-width convolutions with batch norm and one residual connection (added once)."""

    def __init__(self, width: int, kernel_size: int = 7, dropout: float = 0.0):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(width, width, kernel_size, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        self.act = nn.LeakyReLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(self.drop(h)))
        return self.act(h + x)


class ConvEncoder(nn.Module):
    """1-D CNN from a window (in_chans, W) to a token (widths[-1],): an embedding convolution,
    then residual blocks separated by strided 1x1 projections, then the mean over time."""

    def __init__(self, in_chans: int, widths: tuple[int, ...], kernel_size: int = 7,
                 embed_stride: int = 1, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv1d(in_chans, widths[0], kernel_size, stride=embed_stride,
                      padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.LeakyReLU(),
            ResidualBlock(widths[0], kernel_size, dropout),
        ]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            # strided 1x1 projection halves the time axis while widening, as in ctg_11_8
            layers += [nn.Conv1d(w_in, w_out, 1, stride=2), ResidualBlock(w_out, kernel_size, dropout)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=-1)


class FusionLayer(nn.Module):
    """Pre-norm transformer encoder layer over the C + 1 tokens of one window.

    Attention is written with plain matrix products (not ``scaled_dot_product_attention`` or
    ``nn.TransformerEncoderLayer``, whose fused CPU kernels ``torch.utils.flop_counter`` does not
    count), so the reported MACs include it; with C + 1 = 19 tokens the cost is negligible.
    """

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(self.norm1(x)), "b t (three h d) -> three b h t d",
                            three=3, h=self.n_heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        h = torch.matmul(self.drop(scores.softmax(dim=-1)), v)
        x = x + self.drop(self.proj(rearrange(h, "b h t d -> b t (h d)")))
        return x + self.drop(self.ff(self.norm2(x)))


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``x`` (queries) over ``context`` (keys and values), written with
    plain matrix products so :func:`lightning_modules.cost.count_macs` counts it (see
    :class:`FusionLayer`). Dropout on the attention weights, as ``nn.MultiheadAttention``."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(x), "b t (h d) -> b h t d", h=self.n_heads)
        k, v = rearrange(self.kv(context), "b s (two h d) -> two b h s d", two=2, h=self.n_heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        h = torch.matmul(self.drop(scores.softmax(dim=-1)), v)
        return self.proj(rearrange(h, "b h t d -> b t (h d)"))


class PostNormLayer(nn.Module):
    """One layer of ``torch.nn.Transformer`` as the SZLoc re-implementation used it (post-norm,
    ReLU feed-forward): self-attention, then, in a decoder layer (``cross=True``), attention over
    the encoder's output, then the feed-forward part; each followed by dropout, the residual and
    a LayerNorm."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float = 0.0,
                 cross: bool = False):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout) if cross else None
        self.norm_cross = nn.LayerNorm(d_model) if cross else None
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.self_attn(x, x)))
        if self.cross_attn is not None:
            x = self.norm_cross(x + self.drop(self.cross_attn(x, memory)))
        return self.norm2(x + self.drop(self.ff(x)))


class ReferenceFusion(nn.Module):
    """The re-implementation's fusion (DeepSOZ ``ctg_11_8``: ``nn.Transformer`` with one encoder
    and one decoder layer): the encoder reads the C channel tokens and the global token of a
    window; the decoder's queries are the C channel tokens, attending to the encoder's output.
    Only the C channel tokens come out: the global stream bypasses the transformer."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, n_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.encoder = nn.ModuleList(PostNormLayer(d_model, n_heads, dim_feedforward, dropout)
                                     for _ in range(n_layers))
        self.encoder_norm = nn.LayerNorm(d_model)
        self.decoder = nn.ModuleList(PostNormLayer(d_model, n_heads, dim_feedforward, dropout, cross=True)
                                     for _ in range(n_layers))
        self.decoder_norm = nn.LayerNorm(d_model)

    def forward(self, channel_tokens: torch.Tensor, global_token: torch.Tensor) -> torch.Tensor:
        """(B', C, d) channel tokens and (B', d) global tokens -> (B', C, d) fused channel tokens."""
        memory = torch.cat([channel_tokens, global_token[:, None]], dim=1)
        for layer in self.encoder:
            memory = layer(memory)
        memory = self.encoder_norm(memory)
        x = channel_tokens
        for layer in self.decoder:
            x = layer(x, memory)
        return self.decoder_norm(x)


class SZLoc(nn.Module):
    """Multi-resolution seizure localization network (Craley et al., MIDL 2022).

    Parameters
    ----------
    n_chans : int
        Number of EEG channels (any montage; default use: 18 double-banana channels).
    n_windows : int
        Windows per training clip (45 in the paper's re-implementation). The recurrent and
        attention parts accept any number of windows; this sets the example for cost reports.
    window_samples : int
        Samples per window (1 s at ``sfreq``: 256 for CHB-MIT, 200 in the re-implementation).
    sfreq : float
        Sampling rate in Hz (recorded so callers can check their signals match).
    d_model : int
        Token width (80 as in the re-implementation). The local encoder widens
        d/8 -> d/4 -> d/2 -> d, the global encoder d/2 -> d -> d.
    n_heads : int
        Attention heads of the fusion transformer.
    dim_feedforward : int
        Hidden width of the transformer's feed-forward part.
    n_fusion_layers : int
        Transformer layers fusing channel and global tokens.
    kernel_size : int
        Convolution kernel length in samples.
    cnn_dropout, transformer_dropout, rnn_dropout : float
        Dropout rates (the re-implementation trained with 0.15 on CNN and transformer).
    scale_uv : float or None
        Input scaling, done inside the model because signals arrive in microvolts, not
        standardized. ``None`` (default): each window's per-channel mean is removed, then the clip
        is divided by its own standard deviation over all channels and samples (as the
        re-implementation's loader did), which keeps the relative amplitude of channels, the cue
        localization needs. A number: divide by that many microvolts instead (no dependence on
        the clip's content; use when clips of very different content are compared).
    fusion : {"joint", "reference"}
        How channel and global tokens meet (see the module docstring): ``joint`` (default) fuses
        both and both streams read the fusion; ``reference`` (DeepSOZ ``ctg_11_8``) passes only
        channel tokens through an encoder-decoder transformer and leaves the global stream raw.
    rise_from : {"global", "channels"}
        Whose probability rises weight the rise map: the global detection (default) or the most
        active channel per window (the re-implementation).
    embed_stride : int
        Stride of both encoders' first convolution: 2 (default) for 256 Hz input, 1 as the
        re-implementation at 200 Hz.

    Notes
    -----
    Input: a clip ``(B, n_chans, N * window_samples)``, N consecutive windows. Output:
    :class:`SZLocOutput`. With the defaults (18 channels, 45 windows of 256 samples) the model
    has 476,561 parameters (the re-implementation: ~0.49 M) and costs 2.91 G multiply-accumulates
    per 45 s clip (``lightning_modules.cost.count_macs``, attention and GRUs included); with the
    re-implementation's input (19 channels at 200 Hz) 476,841 parameters and 2.44 G MACs. The
    reference wiring at that input with a stride-1 embedding (``fusion="reference"``,
    ``n_heads=8``, ``embed_stride=1``): 549,929 parameters, 4.77 G MACs per clip.
    """

    def __init__(self, n_chans: int, n_windows: int = 45, window_samples: int = 256,
                 sfreq: float = 256.0, d_model: int = 80, n_heads: int = 4,
                 dim_feedforward: int = 128, n_fusion_layers: int = 1, kernel_size: int = 7,
                 cnn_dropout: float = 0.0, transformer_dropout: float = 0.0,
                 rnn_dropout: float = 0.0, scale_uv: float | None = None,
                 fusion: Literal["joint", "reference"] = "joint",
                 rise_from: Literal["global", "channels"] = "global", embed_stride: int = 2):
        super().__init__()
        if fusion not in ("joint", "reference"):
            raise ValueError(f"fusion must be 'joint' or 'reference', got {fusion!r}")
        if rise_from not in ("global", "channels"):
            raise ValueError(f"rise_from must be 'global' or 'channels', got {rise_from!r}")
        if int(embed_stride) < 1:
            raise ValueError(f"embed_stride must be >= 1, got {embed_stride!r}")
        if d_model % 8:
            raise ValueError(f"d_model must be a multiple of 8 (encoder widths d/8..d), got {d_model}")
        if n_chans < 1 or n_windows < 1 or window_samples < 8:
            raise ValueError(f"bad signal shape: n_chans={n_chans}, n_windows={n_windows}, "
                             f"window_samples={window_samples}")
        self._init_kwargs = dict(
            n_chans=int(n_chans), n_windows=int(n_windows), window_samples=int(window_samples),
            sfreq=float(sfreq), d_model=int(d_model), n_heads=int(n_heads),
            dim_feedforward=int(dim_feedforward), n_fusion_layers=int(n_fusion_layers),
            kernel_size=int(kernel_size), cnn_dropout=float(cnn_dropout),
            transformer_dropout=float(transformer_dropout), rnn_dropout=float(rnn_dropout),
            scale_uv=None if scale_uv is None else float(scale_uv), fusion=str(fusion),
            rise_from=str(rise_from), embed_stride=int(embed_stride))
        self.n_chans = int(n_chans)
        self.n_windows = int(n_windows)
        self.window_samples = int(window_samples)
        self.sfreq = float(sfreq)
        self.n_times = self.n_windows * self.window_samples
        self.d_model = int(d_model)
        self.scale_uv = None if scale_uv is None else float(scale_uv)
        self.fusion_kind = str(fusion)
        self.rise_from = str(rise_from)

        # local: one CNN shared by every channel. Both encoders embed with stride 2 by default:
        # 1 s at 256 Hz has more samples than the 200 Hz original and the first layers dominate
        # the cost (the re-implementation: stride 1 at 200 Hz)
        self.local_encoder = ConvEncoder(1, (d_model // 8, d_model // 4, d_model // 2, d_model),
                                         kernel_size, embed_stride=int(embed_stride), dropout=cnn_dropout)
        self.global_encoder = ConvEncoder(n_chans, (d_model // 2, d_model, d_model),
                                          kernel_size, embed_stride=int(embed_stride), dropout=cnn_dropout)
        if self.fusion_kind == "joint":
            # tells the transformer which token is the global one (channel tokens stay unlabelled)
            self.global_token_type = nn.Parameter(torch.zeros(d_model))
            self.fusion = nn.ModuleList(FusionLayer(d_model, n_heads, dim_feedforward, transformer_dropout)
                                        for _ in range(n_fusion_layers))
            self.fusion_norm = nn.LayerNorm(d_model)
        else:
            self.reference_fusion = ReferenceFusion(d_model, n_heads, dim_feedforward, n_fusion_layers,
                                                    transformer_dropout)
        half = d_model // 2
        self.channel_rnn = nn.GRU(d_model, half, num_layers=2, batch_first=True,
                                  bidirectional=True, dropout=rnn_dropout)
        self.global_rnn = nn.GRU(d_model, half, num_layers=1, batch_first=True, bidirectional=True)
        self.channel_head = nn.Linear(2 * half, 1)
        self.global_head = nn.Linear(2 * half, 1)
        self.attention_head = nn.Linear(2 * half, 1)

    @property
    def init_kwargs(self) -> dict:
        """Constructor arguments that rebuild this network (stored in checkpoints)."""
        return dict(self._init_kwargs)

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sfreq

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A zero clip of ``n_windows`` windows, e.g. for :func:`lightning_modules.cost.count_macs`."""
        return torch.zeros(batch_size, self.n_chans, self.n_times)

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N, W) microvolts -> dimensionless, see ``scale_uv``."""
        x = x - x.mean(dim=-1, keepdim=True)
        if self.scale_uv is not None:
            return x / self.scale_uv
        std = x.flatten(1).std(dim=1).clamp_min(1e-3)  # flat clip: avoid 0/0, stays ~0
        return x / std[:, None, None, None]

    def forward(self, x: torch.Tensor) -> SZLocOutput:
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] % self.window_samples:
            raise ValueError(
                f"SZLoc expects (batch, {self.n_chans} channels, n_windows * {self.window_samples} "
                f"samples), got {tuple(x.shape)}")
        b, c = x.shape[:2]
        x = self.scale_input(rearrange(x, "b c (n w) -> b c n w", w=self.window_samples))

        local = self.local_encoder(rearrange(x, "b c n w -> (b c n) 1 w"))
        local = rearrange(local, "(b c n) d -> (b n) c d", b=b, c=c)
        glob = self.global_encoder(rearrange(x, "b c n w -> (b n) c w"))
        if self.fusion_kind == "joint":  # channel and global tokens fused; both streams read the fusion
            tokens = torch.cat([local, (glob + self.global_token_type)[:, None]], dim=1)
            for layer in self.fusion:
                tokens = layer(tokens)
            tokens = self.fusion_norm(tokens)
            local, glob = tokens[:, :c], tokens[:, c]
        else:  # reference: only the channel tokens come out fused; the global stream stays raw
            local = self.reference_fusion(local, glob)

        h_c, _ = self.channel_rnn(rearrange(local, "(b n) c d -> (b c) n d", b=b))
        h_g, _ = self.global_rnn(rearrange(glob, "(b n) d -> b n d", b=b))
        channel_logits = rearrange(self.channel_head(h_c), "(b c) n 1 -> b c n", b=b)
        global_logits = self.global_head(h_g).squeeze(-1)
        attention = self.attention_head(h_g).squeeze(-1).softmax(dim=-1)
        attention_map, rise_map = onset_maps(channel_logits, global_logits, attention, self.rise_from)
        return SZLocOutput(channel_logits, global_logits, attention, attention_map, rise_map)


def onset_maps(channel_logits: torch.Tensor, global_logits: torch.Tensor, attention: torch.Tensor,
               rise_from: str = "global") -> tuple[torch.Tensor, torch.Tensor]:
    """The two onset maps (one value per channel) of SZLoc.

    Parameters
    ----------
    channel_logits : Tensor, shape (B, C, N)
    global_logits : Tensor, shape (B, N)
    attention : Tensor, shape (B, N), rows summing to 1
    rise_from : {"global", "channels"}
        Whose rises weight the rise map: the global seizure probability (default) or the
        probability of the most active channel per window (the re-implementation's choice).

    Returns
    -------
    attention_map : Tensor, shape (B, C)
        ``sum_n attention[n] * p[c, n]`` with ``p = sigmoid(channel_logits)``.
    rise_map : Tensor, shape (B, C)
        ``sum_n r[n] * p[c, n]`` where ``r[n]`` is the positive part of ``g[n] - g[n-1]``
        (``g`` the global seizure probability, or ``max_c p[c, n]`` with
        ``rise_from="channels"``; ``r[0] = 0``) normalized to sum to 1: the channels
        active when the seizure probability rises, i.e. at onset. A tiny floor on ``r`` makes a
        clip without any rise fall back to the plain mean over windows instead of 0/0.
    """
    p = torch.sigmoid(channel_logits)
    attention_map = torch.einsum("bcn,bn->bc", p, attention)
    if p.shape[2] == 1:  # a single window has no rise: its activity is the map
        return attention_map, p[:, :, 0]
    g = p.amax(dim=1) if rise_from == "channels" else torch.sigmoid(global_logits)
    rise = F.relu(g[:, 1:] - g[:, :-1]) + 1e-6
    rise = rise / rise.sum(dim=1, keepdim=True)
    return attention_map, torch.einsum("bcn,bn->bc", p[:, :, 1:], rise)
