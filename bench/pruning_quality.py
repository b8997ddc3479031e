"""``python -m bench.pruning_quality``: does the pruning structure cost accuracy?

LightSeizureNet is trained from scratch on generated windows, dense and with
:class:`callbacks.pruning.KernelPruning` in each scope to the same kernel sparsity (rounds on a
schedule, fine-tuning in between, masks held as in a Lightning run: the callback's own
``on_before_optimizer_step`` / ``on_train_batch_end``), then compacted, and scored on held-out
windows (window AUROC), over several seeds. Same data, loop, optimizer and epochs for every arm.

The task: 2 s x 18 channels at 256 Hz of 1/f-like background (AR(1) noise, ~15 uV), artifacts in
both classes (10 Hz bursts on a few channels, electrode pops of 100-400 uV), and in seizure
windows a 3-8 Hz spike-wave-like rhythm on 2-6 channels starting at a random time with an
amplitude near the background's, so that neither class is separable by amplitude alone. It is a
proxy made for comparing pruning structures on the same footing, not a claim about EEG.

Not part of ``make bench`` (minutes of training); the README quotes its output.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

C, T, SFREQ = 18, 512, 256.0


def make_windows(n: int, seed: int, snr: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` windows (n, 18, 512) in microvolts and their labels (half seizure on average)."""
    g = np.random.default_rng(seed)
    e = g.normal(0, 1, (n, C, T)).astype(np.float32)
    for t in range(1, T):  # AR(1): more power at low frequencies, as EEG
        e[:, :, t] += 0.9 * e[:, :, t - 1]
    x = 15 * e / 2.3
    t = np.arange(T) / SFREQ
    y = g.integers(0, 2, n)
    for i in range(n):
        if g.random() < 0.5:  # alpha-like burst on a few channels, both classes
            ch = g.choice(C, g.integers(1, 4), replace=False)
            x[i, ch] += g.uniform(20, 60) * np.sin(2 * np.pi * g.uniform(8, 12) * t + g.uniform(0, 6))
        if g.random() < 0.3:  # electrode pop
            c, s = g.integers(C), g.integers(0, T - 20)
            x[i, c, s:s + 20] += g.uniform(100, 400)
        if y[i]:
            ch = g.choice(C, g.integers(2, 7), replace=False)
            f, amp, onset = g.uniform(3, 8), snr * 15 * g.uniform(0.7, 1.5), g.integers(0, T // 2)
            ramp = np.clip((np.arange(T) - onset) / (SFREQ * 0.5), 0, 1)
            phase = 2 * np.pi * f * t + g.uniform(0, 6)
            x[i, ch] += amp * ramp * np.sign(np.sin(phase)) * np.abs(np.sin(2 * np.pi * f * t)) ** 0.5
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


def auroc(score: torch.Tensor, y: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    from torchmetrics.functional.classification import binary_auroc

    return float(binary_auroc(score, y.long()))


def train_arm(scope: str | None, seed: int, data: tuple, epochs: int, prune_from: int, target: float,
              batch_size: int = 64) -> dict:
    """Train one arm (``scope`` None: dense) and return its held-out AUROC, MACs and sparsity."""
    from callbacks.pruning import KernelPruning, compact
    from lightning_modules.cost import count_macs
    from lightning_modules.lsn import LightSeizureNet

    xtr, ytr, xva, yva = data
    torch.manual_seed(seed)
    model = LightSeizureNet(C)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    pruning = None
    if scope is not None:
        pruning = KernelPruning(target_sparsity=target, amount=0.35, scope=scope, seed=seed)
        pruning.attach(model)
    order = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        if pruning is not None and epoch >= prune_from:
            pruning.prune_round()
        model.train()
        perm = torch.randperm(len(ytr), generator=order)
        for s in range(0, len(ytr), batch_size):
            idx = perm[s:s + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            if pruning is not None:
                pruning.on_before_optimizer_step(None, model, opt)
            opt.step()
            if pruning is not None:
                pruning.on_train_batch_end(None, model, None, None, s)
    model.eval()
    sparsity = 0.0
    if pruning is not None:
        sparsity = pruning.sparsity
        compact(model)
    with torch.inference_mode():
        p = torch.cat([model(xva[s:s + 512]).softmax(1)[:, 1] for s in range(0, len(yva), 512)])
    return {"auroc": auroc(p, yva), "macs": count_macs(model, model.example_input()), "sparsity": sparsity}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.pruning_quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train", type=int, default=3000, help="training windows")
    ap.add_argument("--test", type=int, default=2000, help="held-out windows")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--prune-from", type=int, default=4, help="first pruning epoch (one round per epoch after)")
    ap.add_argument("--target", type=float, default=0.6, help="kernel sparsity of the pruned arms")
    ap.add_argument("--scopes", default="filter,filter_balanced")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    xtr, ytr = make_windows(a.train, 1)
    xva, yva = make_windows(a.test, 2)
    arms: list[str | None] = [None] + [s for s in a.scopes.split(",") if s]
    results: dict[str, list[dict]] = {}
    for seed in range(a.seeds):
        for scope in arms:
            t0 = time.perf_counter()
            r = train_arm(scope, seed, (xtr, ytr, xva, yva), a.epochs, a.prune_from, a.target)
            name = scope or "dense"
            results.setdefault(name, []).append(r)
            print(f"seed {seed} {name}: AUROC {r['auroc']:.4f}, sparsity {r['sparsity']:.3f}, "
                  f"{r['macs']:,} MACs ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{a.train} training / {a.test} held-out windows, {a.epochs} epochs, pruning rounds from epoch "
          f"{a.prune_from} to {a.target:.0%} kernel sparsity, {a.seeds} seeds\n")
    print("| arm | MACs per window | held-out AUROC mean ± sd | per seed |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        au = [r["auroc"] for r in rs]
        sd = statistics.stdev(au) if len(au) > 1 else 0.0
        lo, hi = min(r["macs"] for r in rs), max(r["macs"] for r in rs)
        macs = f"{lo:,}" if lo == hi else f"{lo:,} - {hi:,}"
        print(f"| {name} | {macs} | {statistics.mean(au):.4f} ± {sd:.4f} | "
              + ", ".join(f"{v:.4f}" for v in au) + " |")


if __name__ == "__main__":
    main()
