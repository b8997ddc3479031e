"""Learning-rate schedules shared by the LightningModules (one helper, one behaviour)."""
from __future__ import annotations

import math

import torch

SCHEDULERS = ("cosine", "onecycle", "none")


def configure_schedule(optimizer: torch.optim.Optimizer, scheduler: str, total_steps: int, *, lr: float,
                       warmup_frac: float = 0.0, min_lr_ratio: float = 0.01, pct_start: float = 0.3):
    """What ``configure_optimizers`` returns for ``scheduler``, stepped every batch.

    ``cosine``: linear warm-up over ``warmup_frac`` of the steps, then cosine decay to
    ``lr * min_lr_ratio``; ``onecycle``: PyTorch's OneCycle peaking at ``lr`` after ``pct_start``;
    ``none``: a constant rate.
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if scheduler == "none":
        return optimizer
    total = max(1, int(total_steps))
    if scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=pct_start)
    else:
        warmup = int(round(warmup_frac * total))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def check_optimizer_args(lr: float, weight_decay: float, scheduler: str, warmup_frac: float = 0.0,
                         min_lr_ratio: float = 0.01) -> None:
    """Raise a ValueError naming the argument that is out of range."""
    if not (isinstance(lr, (int, float)) and 0.0 < lr < 10.0):
        raise ValueError(f"lr must be a positive learning rate, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    if not 0.0 <= warmup_frac < 1.0:
        raise ValueError(f"warmup_frac must be in [0, 1), got {warmup_frac!r}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
