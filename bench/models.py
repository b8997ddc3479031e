"""Sections 3-5: model cost (parameters, MACs), inference throughput and training throughput.

Our models (LightSeizureNet dense and kernel-pruned, SZLoc) and braindecode's EEGNetv4,
ShallowFBCSPNet and Deep4Net, all on the same input: 18 double-banana channels x 512 samples
(2 s at 256 Hz); SZLoc on its own unit, a 45 s clip of 1 s windows, also reported per second of
EEG so the columns compare.

MACs are counted by :func:`lightning_modules.cost.count_macs` (``torch.utils.flop_counter``:
convolutions, linear layers and matrix products; normalization, activations and pooling are not
counted), the same counter for every model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from lightning_modules.cost import count_macs, count_params

from .stats import Measurement


@dataclass(frozen=True)
class ModelSpec:
    """A model under test and the input it is costed on.

    ``reference``: run it under :func:`lightning_modules.lsn.reference_execution` (the modules as
    written: padded copies, BatchNorm and ReLU modules, default layout), the "before" row.
    """

    name: str
    source: str  # "ours" or "braindecode"
    model: nn.Module
    example: torch.Tensor  # batch of 1
    eeg_seconds: float  # seconds of EEG in one example
    note: str = ""
    reference: bool = False


#: Kernel sparsity of the pruned LightSeizureNet rows (the default ``pruning.target_sparsity``).
PRUNED_SPARSITY = 0.6


def pruned_lsn(n_chans: int, n_times: int, sfreq: float, sparsity: float = PRUNED_SPARSITY,
               seed: int = 0, scope: str = "filter", sparse_kernels: bool = True) -> tuple[nn.Module, dict]:
    """LightSeizureNet with ``sparsity`` of its kernels pruned by L1 norm, then compacted.

    Uses the pruning callback's own code: :class:`callbacks.pruning.KernelPruning` (one round
    straight to the target) ranks and masks the kernels, :func:`callbacks.pruning.compact`
    rebuilds the network, on a freshly initialized network: the cost depends on how many kernels
    and filters go, not on training. ``scope="filter"`` prunes whole filters (their kernels and
    the kernels reading them): compaction leaves narrower dense convolutions.
    ``scope="filter_balanced"`` leaves every filter the same number of kernels: with
    ``sparse_kernels`` compaction keeps only those (gather + grouped convolution: fewest MACs).
    """
    from callbacks.pruning import KernelPruning, compact, sparse_macs
    from lightning_modules.lsn import LightSeizureNet

    torch.manual_seed(seed)
    model = LightSeizureNet(n_chans=n_chans, n_outputs=2, n_times=n_times, sfreq=sfreq).eval()
    pruning = KernelPruning(target_sparsity=sparsity, amount=1.0, criterion="l1", scope=scope,
                            sparse_kernels=sparse_kernels)
    pruning.attach(model)  # the callback binds to whatever module holds the convolutions
    pruned = pruning.prune_round()
    example = model.example_input()
    sparse = sparse_macs(model, example)
    report = compact(model, example, sparse_kernels=sparse_kernels)
    info = {"kernels_pruned": int(pruned), "sparsity": pruning.sparsity, "scope": scope,
            "widths_before": list(report.widths_before), "widths_after": list(report.widths_after),
            "kernels_per_filter": list(report.kernels_per_filter), "sparse_macs": int(sparse)}
    return model.eval(), info


def our_models(n_chans: int = 18, n_times: int = 512, sfreq: float = 256.0,
               szloc_windows: int = 45, seed: int = 0) -> list[ModelSpec]:
    """LightSeizureNet dense (as it runs, and as its modules read), pruned by whole filters and
    pruned to balanced kernels (per window), and SZLoc (per clip)."""
    from lightning_modules.lsn import LightSeizureNet
    from lightning_modules.szloc import SZLoc

    torch.manual_seed(seed)
    dense = LightSeizureNet(n_chans=n_chans, n_outputs=2, n_times=n_times, sfreq=sfreq).eval()
    pct = f"{PRUNED_SPARSITY:.0%}"
    filt, fi = pruned_lsn(n_chans, n_times, sfreq, seed=seed, scope="filter")
    kern, ki = pruned_lsn(n_chans, n_times, sfreq, seed=seed, scope="filter_balanced", sparse_kernels=True)
    window_s = n_times / sfreq
    szloc_samples = int(round(sfreq))  # 1 s windows, as the model is defined
    szloc = SZLoc(n_chans=n_chans, n_windows=szloc_windows, window_samples=szloc_samples, sfreq=sfreq).eval()
    return [
        ModelSpec("LSN dense", "ours", dense, dense.example_input(), window_s,
                  note="the network as it runs (channels-last, no padded copies, BatchNorm folded)"),
        ModelSpec("LSN dense, reference", "ours", dense, dense.example_input(), window_s,
                  note="the same weights run as the modules read (replicate-pad copy, conv, "
                       "BatchNorm, ReLU): what LSN cost before the fast paths", reference=True),
        ModelSpec(f"LSN pruned {pct}, whole filters", "ours", filt, filt.example_input(), window_s,
                  note=f"kernel sparsity {fi['sparsity']:.3f}, pruned as whole filters (their kernels "
                       f"and the kernels reading them, scope 'filter'); compacted to dense "
                       f"convolutions of widths {fi['widths_after']} (from {fi['widths_before']})"),
        ModelSpec(f"LSN pruned {pct}, balanced kernels", "ours", kern, kern.example_input(), window_s,
                  note=f"kernel sparsity {ki['sparsity']:.3f}, every filter keeps "
                       f"{ki['kernels_per_filter'][1:]} kernels (scope 'filter_balanced'); compacted to "
                       "the surviving kernels (gather + grouped convolution per block)"),
        ModelSpec("SZLoc", "ours", szloc, torch.zeros(1, n_chans, szloc_windows * szloc_samples),
                  float(szloc_windows), note=f"per {szloc_windows} s clip of 1 s windows"),
    ]


def _logits_kwargs(cls) -> dict:
    """braindecode 0.8 ends some models with LogSoftmax; ask for logits where it can."""
    import inspect

    return {"add_log_softmax": False} if "add_log_softmax" in inspect.signature(cls).parameters else {}


def braindecode_models(n_chans: int = 18, n_times: int = 512, sfreq: float = 256.0,
                       seed: int = 0) -> list[ModelSpec]:
    """braindecode's EEGNetv4, ShallowFBCSPNet and Deep4Net on the same window (needs braindecode)."""
    from .peer import require_braindecode

    require_braindecode()
    from braindecode.models import Deep4Net, EEGNetv4, ShallowFBCSPNet

    torch.manual_seed(seed)
    window_s = n_times / sfreq
    out = []
    for cls in (EEGNetv4, ShallowFBCSPNet, Deep4Net):
        model = cls(n_chans=n_chans, n_outputs=2, n_times=n_times, final_conv_length="auto",
                    **_logits_kwargs(cls)).eval()
        out.append(ModelSpec(cls.__name__, "braindecode", model, torch.zeros(1, n_chans, n_times), window_s))
    return out


def _execution(spec: ModelSpec):
    """The context a spec runs in: reference execution for the "before" rows."""
    import contextlib

    from lightning_modules.lsn import reference_execution

    return reference_execution() if spec.reference else contextlib.nullcontext()


def cost_row(spec: ModelSpec) -> dict:
    """Parameters and MACs per input and per second of EEG."""
    macs = count_macs(spec.model, spec.example)
    row = {"model": spec.name, "source": spec.source, "input": list(spec.example.shape[1:]),
           "eeg_seconds": spec.eeg_seconds, "params": count_params(spec.model), "macs": macs,
           "macs_per_eeg_second": macs / spec.eeg_seconds}
    if spec.note:
        row["note"] = spec.note
    return row


def _batch(spec: ModelSpec, batch_size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # 30 uV Gaussian: an EEG-like amplitude in the microvolt units our models expect
    return torch.randn((batch_size, *spec.example.shape[1:]), generator=g) * 30.0


def _rate(call, inputs_per_call: int, min_seconds: float) -> float:
    """Inputs per second of ``call`` run as many times as fit in ``min_seconds`` (at least once)."""
    n, t0 = 0, time.perf_counter()
    while True:
        call()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n * inputs_per_call / dt


def _interleaved(measures: dict, repeats: int) -> dict[str, list[float]]:
    """``repeats`` rounds, each measuring every entry once: load from other processes on a shared
    machine hits every entry alike, so ratios between them hold."""
    out: dict = {k: [] for k in measures}
    for _ in range(repeats):
        for k, measure in measures.items():
            out[k].append(measure())
    return out


def _rows(spec: ModelSpec, rates: list[float], **extra) -> dict:
    return {"model": spec.name, "source": spec.source, **extra,
            "windows_per_s": Measurement(tuple(rates), "windows/s").to_dict(),
            "eeg_hours_per_s": Measurement(tuple(r * spec.eeg_seconds / 3600 for r in rates), "h/s").to_dict(),
            "realtime_factor": Measurement(tuple(r * spec.eeg_seconds for r in rates), "x").to_dict()}


def inference_throughput(specs: list[ModelSpec], batch_size, repeats: int, min_seconds: float = 0.5) -> list[dict]:
    """Model-only scoring speed: eval mode, ``torch.inference_mode``, one batch at a time.

    ``batch_size``: an int, or a function of the spec. Each repetition of a model runs as many
    batches as fit in ``min_seconds``; repetitions of all models are interleaved.

    Returns
    -------
    list of dict
        Per spec: ``windows_per_s`` (inputs per second), ``eeg_hours_per_s`` and
        ``realtime_factor`` (seconds of EEG scored per second of wall time), each a
        :class:`Measurement` dict.
    """
    sizes = {s.name: batch_size(s) if callable(batch_size) else int(batch_size) for s in specs}
    measures = {}
    for spec in specs:
        model, x = spec.model.eval(), _batch(spec, sizes[spec.name])

        def measure(spec=spec, model=model, x=x):
            with torch.inference_mode(), _execution(spec):
                return _rate(lambda: model(x), x.shape[0], min_seconds)

        with torch.inference_mode(), _execution(spec):
            model(x)  # warm-up: allocator, kernels
        measures[spec.name] = measure
    rates = _interleaved(measures, repeats)
    return [_rows(s, rates[s.name], batch_size=sizes[s.name]) for s in specs]


def training_throughput(specs: list[ModelSpec], batch_size: int, repeats: int, steps: int = 5,
                        lr: float = 1e-3, seed: int = 0) -> list[dict]:
    """Windows per second of full training steps: forward, cross-entropy, backward, AdamW step.

    The same loop, optimizer, batch and random windows for every model. One untimed step first
    (optimizer state allocation), then ``repeats`` timings of ``steps`` steps, interleaved across
    models. The models' weights are restored afterwards.
    """
    measures, restore = {}, []
    for spec in specs:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn((batch_size, *spec.example.shape[1:]), generator=g) * 30.0
        y = torch.randint(0, 2, (batch_size,), generator=g)
        model = spec.model
        if all(model is not m for m, _ in restore):  # two specs may share a model (reference rows)
            restore.append((model, {k: v.clone() for k, v in model.state_dict().items()}))
        opt = torch.optim.AdamW(model.parameters(), lr=lr)

        def step(model=model, opt=opt, x=x, y=y):
            model.train()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        def measure(spec=spec, step=step):
            with _execution(spec):
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                return steps * batch_size / (time.perf_counter() - t0)

        with _execution(spec):
            step()
        measures[spec.name] = measure
    try:
        rates = _interleaved(measures, repeats)
    finally:
        for model, state in restore:  # training must not change the specs
            model.eval()
            model.load_state_dict(state)
            for p in model.parameters():
                p.grad = None
    return [{"model": s.name, "source": s.source, "batch_size": batch_size, "steps_per_repeat": steps,
             "windows_per_s": Measurement(tuple(rates[s.name]), "windows/s").to_dict()} for s in specs]


#: ONNX Runtime graph optimization levels measured: the default, and "extended", which leaves
#: out the NCHWc layout transform (on these narrow maps its reorders around each Pad can cost
#: more than its faster convolutions save).
ORT_LEVELS = ("default", "extended")


def onnx_inference_throughput(specs: list[ModelSpec], batch_size: int, repeats: int, directory,
                              min_seconds: float = 0.5, levels: tuple[str, ...] = ORT_LEVELS) -> list[dict]:
    """Model-only scoring speed of each spec exported with
    :func:`lightning_modules.export.export_onnx` and run by ONNX Runtime on CPU with as many
    threads as torch uses: the deployment path, where the runtime fuses BatchNorm and ReLU into
    the convolutions. One row per spec and optimization level in ``levels``, all sessions
    interleaved; same measurements as :func:`inference_throughput`; every export is checked
    against PyTorch first (``max_abs_diff_vs_torch``)."""
    from pathlib import Path

    import onnxruntime as ort

    from lightning_modules.export import export_onnx

    measures, meta = {}, {}
    for spec in specs:
        path = Path(directory) / f"{spec.name.replace(' ', '_').replace('%', 'pct').replace(',', '')}.onnx"
        exported = export_onnx(spec.model, path, spec.example.repeat(2, *([1] * (spec.example.ndim - 1))))
        x = {exported.input_name: _batch(spec, batch_size).numpy()}
        for level in levels:
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            if level == "extended":
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            elif level != "default":
                raise ValueError(f"unknown ONNX Runtime level {level!r}: use 'default' or 'extended'")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            session.run(None, x)  # warm-up
            measures[(spec.name, level)] = lambda session=session, x=x: _rate(
                lambda: session.run(None, x), batch_size, min_seconds)
            meta[(spec.name, level)] = (spec, exported.max_abs_diff)
    rates = _interleaved(measures, repeats)
    rows = []
    for (name, level), (spec, diff) in meta.items():
        row = _rows(spec, rates[(name, level)], ort_level=level, batch_size=batch_size,
                    max_abs_diff_vs_torch=diff)
        row["source"] = onnx_source(level)
        rows.append(row)
    return rows


def onnx_source(level: str) -> str:
    """The ``source`` column of an ONNX Runtime row."""
    return "ours, ONNX Runtime" if level == "default" else f"ours, ONNX Runtime ({level} optimizations)"
