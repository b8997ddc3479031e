"""``python -m bench.profile_lsn``: where a LightSeizureNet training step and a scoring batch spend
their time on CPU, by kind of operator, as it runs and as its modules read
(:func:`lightning_modules.lsn.reference_execution`).

``torch.profiler`` self CPU time of each ATen operator, summed into kinds (convolution forward,
convolution backward, BatchNorm, ReLU, dropout, padding copies, first-block product, ...) and
reported per step in milliseconds and as a share. Profiling adds overhead, so the shares are the
figure to read; ``make bench`` times the same steps without it.
"""
from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict

import torch
from torch import nn

#: Operator name fragments -> kind (first match wins).
KINDS = (
    ("convolution_backward", "convolution backward"),
    ("mkldnn_convolution", "convolution forward"),
    ("convolution", "convolution forward"),
    ("batch_norm_backward", "BatchNorm backward"),
    ("batch_norm", "BatchNorm forward"),
    ("threshold_backward", "ReLU backward"),
    ("relu", "ReLU forward"),
    ("clamp_min", "ReLU forward"),
    ("bernoulli", "dropout mask"),
    ("uniform", "dropout mask"),
    ("replication_pad", "replicate padding copy"),
    ("addmm", "matrix products (first block, classifier)"),
    ("aten::mm", "matrix products (first block, classifier)"),
    ("bmm", "edge terms and other small products"),
    ("einsum", "edge terms and other small products"),
    ("_foreach", "optimizer (AdamW)"),
    ("adam", "optimizer (AdamW)"),
    ("copy_", "copies and layout changes"),
    ("contiguous", "copies and layout changes"),
)


def kind_of(name: str) -> str:
    for frag, kind in KINDS:
        if frag in name:
            return kind
    return "element-wise and other"


def profile(fn, steps: int) -> dict[str, float]:
    """Milliseconds of self CPU time per call of ``fn``, by kind."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    fn()  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    out: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if ev.key.startswith(("aten::", "_ReplicateConv", "autograd::")) or "Backward" in ev.key:
            if ev.key.startswith("autograd::engine"):
                continue
            out[kind_of(ev.key)] += ev.self_cpu_time_total / 1e3 / steps
    return dict(out)


def main(argv: list[str] | None = None) -> None:
    from lightning_modules.lsn import LightSeizureNet, reference_execution

    ap = argparse.ArgumentParser(prog="python -m bench.profile_lsn", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch_size, 18, 512, generator=g) * 30
    y = torch.randint(0, 2, (a.batch_size,), generator=g)
    torch.manual_seed(0)
    model = LightSeizureNet(18)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def score():
        model.eval()
        with torch.inference_mode():
            model(x)

    for what, fn in (("training step", train_step), ("scoring batch (inference mode)", score)):
        table = {}
        for label, ctx in (("as it runs", contextlib.nullcontext), ("reference", reference_execution)):
            with ctx():
                table[label] = profile(fn, a.steps)
        kinds = sorted(set(table["as it runs"]) | set(table["reference"]),
                       key=lambda k: -table["reference"].get(k, 0.0))
        print(f"\nLightSeizureNet {what}, batch {a.batch_size} x 18 x 512, {torch.get_num_threads()} threads "
              "(profiled self CPU ms per call)\n")
        print("| kind | as it runs ms | share | reference ms | share |")
        print("|---|---|---|---|---|")
        tot = {k: sum(v.values()) for k, v in table.items()}
        for kind in kinds:
            cur, ref = table["as it runs"].get(kind, 0.0), table["reference"].get(kind, 0.0)
            print(f"| {kind} | {cur:.1f} | {cur / tot['as it runs']:.0%} | {ref:.1f} | {ref / tot['reference']:.0%} |")
        print(f"| total | {tot['as it runs']:.1f} | | {tot['reference']:.1f} | |")


if __name__ == "__main__":
    main()
