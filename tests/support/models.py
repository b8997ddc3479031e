"""A small user-defined window model, for tests of registering your own class by name."""
from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """(B, C, T) -> (B, n_outputs): per-channel log power through one linear layer."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float, n_outputs: int = 2, hidden: int = 4):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        self.n_chans, self.n_times, self.sfreq = n_chans, n_times, sfreq
        self.net = nn.Sequential(nn.Linear(n_chans, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.log1p(x.pow(2).mean(-1)))
