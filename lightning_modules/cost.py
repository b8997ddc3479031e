"""Model cost: parameters and multiply-accumulates, measured with ``torch.utils.flop_counter``."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters; zeros still count (use compaction to remove pruned weights)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, example: torch.Tensor | tuple) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (batch of 1 for per-input cost).

    ``FlopCounterMode`` counts 2 FLOPs per multiply-accumulate for matmuls and convolutions,
    so MACs = FLOPs / 2.
    """
    args = example if isinstance(example, tuple) else (example,)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(*args)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)
