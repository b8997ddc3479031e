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
    """A model under test and the input it is costed on."""

    name: str
    source: str  # "ours" or "braindecode"
    model: nn.Module
    example: torch.Tensor  # batch of 1
    eeg_seconds: float  # seconds of EEG in one example
    note: str = ""


def pruned_lsn(n_chans: int, n_times: int, sfreq: float, sparsity: float = 0.5, seed: int = 0,
               sparse_kernels: bool = True) -> tuple[nn.Module, dict]:
    """LightSeizureNet with ``sparsity`` of its kernels pruned by L1 norm, then compacted.

    Uses the pruning callback's own code: :class:`callbacks.pruning.KernelPruning` (its default
    scope, one round straight to the target) ranks and masks the kernels,
    :func:`callbacks.pruning.compact` rebuilds the network, on a freshly initialized network: the
    cost depends on how many kernels and filters go, not on training. ``sparse_kernels=True``
    keeps only the surviving kernels (grouped convolutions over gathered maps: fewest MACs);
    False removes whole filters only and leaves dense convolutions with zero kernels.
    """
    from callbacks.pruning import KernelPruning, compact, sparse_macs
    from lightning_modules.lsn import LightSeizureNet

    torch.manual_seed(seed)
    model = LightSeizureNet(n_chans=n_chans, n_outputs=2, n_times=n_times, sfreq=sfreq).eval()
    pruning = KernelPruning(target_sparsity=sparsity, amount=1.0, criterion="l1")
    pruning.attach(model)  # the callback binds to whatever module holds the convolutions
    pruned = pruning.prune_round()
    example = model.example_input()
    sparse = sparse_macs(model, example)
    report = compact(model, example, sparse_kernels=sparse_kernels)
    info = {"kernels_pruned": int(pruned), "sparsity": pruning.sparsity, "scope": pruning.scope,
            "widths_before": list(report.widths_before), "widths_after": list(report.widths_after),
            "sparse_macs": int(sparse)}
    return model.eval(), info


def our_models(n_chans: int = 18, n_times: int = 512, sfreq: float = 256.0,
               szloc_windows: int = 45, seed: int = 0) -> list[ModelSpec]:
    """LightSeizureNet dense and pruned 50 % (per window) and SZLoc (per clip)."""
    from lightning_modules.lsn import LightSeizureNet
    from lightning_modules.szloc import SZLoc

    torch.manual_seed(seed)
    dense = LightSeizureNet(n_chans=n_chans, n_outputs=2, n_times=n_times, sfreq=sfreq).eval()
    pruned, info = pruned_lsn(n_chans, n_times, sfreq, 0.5, seed, sparse_kernels=True)
    window_s = n_times / sfreq
    szloc_samples = int(round(sfreq))  # 1 s windows, as the model is defined
    szloc = SZLoc(n_chans=n_chans, n_windows=szloc_windows, window_samples=szloc_samples, sfreq=sfreq).eval()
    return [
        ModelSpec("LSN dense", "ours", dense, dense.example_input(), window_s),
        ModelSpec("LSN pruned 50%", "ours", pruned, pruned.example_input(), window_s,
                  note=f"{info['kernels_pruned']} kernels pruned by L1 ({info['scope']} scope), compacted to "
                       f"the surviving kernels (grouped convolutions); widths {info['widths_before']} -> "
                       f"{info['widths_after']}"),
        ModelSpec("SZLoc", "ours", szloc, torch.zeros(1, n_chans, szloc_windows * szloc_samples),
                  float(szloc_windows), note=f"per {szloc_windows} s clip of 1 s windows"),
    ]


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
        model = cls(n_chans=n_chans, n_outputs=2, n_times=n_times, final_conv_length="auto").eval()
        out.append(ModelSpec(cls.__name__, "braindecode", model, torch.zeros(1, n_chans, n_times), window_s))
    return out


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


def inference_throughput(spec: ModelSpec, batch_size: int, repeats: int, min_seconds: float = 0.5) -> dict:
    """Model-only scoring speed: eval mode, ``torch.inference_mode``, one batch at a time.

    Each repetition runs as many batches as fit in ``min_seconds`` (at least one).

    Returns
    -------
    dict
        ``windows_per_s`` (inputs per second), ``eeg_hours_per_s`` and ``realtime_factor``
        (seconds of EEG scored per second of wall time), each a :class:`Measurement` dict.
    """
    model = spec.model.eval()
    x = _batch(spec, batch_size)
    rates = []
    with torch.inference_mode():
        model(x)  # warm-up: allocator, kernels
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while True:
                model(x)
                n += 1
                dt = time.perf_counter() - t0
                if dt >= min_seconds:
                    break
            rates.append(n * batch_size / dt)
    per_s = Measurement(tuple(rates), "windows/s")
    return {"model": spec.name, "source": spec.source, "batch_size": batch_size,
            "windows_per_s": per_s.to_dict(),
            "eeg_hours_per_s": Measurement(tuple(r * spec.eeg_seconds / 3600 for r in rates), "h/s").to_dict(),
            "realtime_factor": Measurement(tuple(r * spec.eeg_seconds for r in rates), "x").to_dict()}


def training_throughput(model: nn.Module, example: torch.Tensor, batch_size: int, repeats: int,
                        steps: int = 5, lr: float = 1e-3, seed: int = 0) -> dict:
    """Windows per second of full training steps: forward, cross-entropy, backward, AdamW step.

    One untimed step first (optimizer state allocation), then ``repeats`` timings of ``steps`` steps.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size, *example.shape[1:]), generator=g) * 30.0
    y = torch.randint(0, 2, (batch_size,), generator=g)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch_size / (time.perf_counter() - t0))
    model.eval()
    return {"batch_size": batch_size, "steps_per_repeat": steps,
            "windows_per_s": Measurement(tuple(rates), "windows/s").to_dict()}


def onnx_inference_throughput(spec: ModelSpec, batch_size: int, repeats: int, directory,
                              min_seconds: float = 0.5) -> dict:
    """Model-only scoring speed of ``spec`` exported with :func:`lightning_modules.export.export_onnx`
    and run by ONNX Runtime on CPU with as many threads as torch uses: the deployment path, where
    the runtime fuses BatchNorm and ReLU into the convolutions. Same measurements as
    :func:`inference_throughput`; the export is checked against PyTorch first."""
    from pathlib import Path

    import onnxruntime as ort

    from lightning_modules.export import export_onnx

    path = Path(directory) / f"{spec.name.replace(' ', '_').replace('%', 'pct')}.onnx"
    exported = export_onnx(spec.model, path, spec.example.repeat(2, *([1] * (spec.example.ndim - 1))))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = {exported.input_name: _batch(spec, batch_size).numpy()}
    session.run(None, x)  # warm-up
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            session.run(None, x)
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        rates.append(n * batch_size / dt)
    return {"model": spec.name, "source": "ours, ONNX Runtime", "batch_size": batch_size,
            "max_abs_diff_vs_torch": exported.max_abs_diff,
            "windows_per_s": Measurement(tuple(rates), "windows/s").to_dict(),
            "eeg_hours_per_s": Measurement(tuple(r * spec.eeg_seconds / 3600 for r in rates), "h/s").to_dict(),
            "realtime_factor": Measurement(tuple(r * spec.eeg_seconds for r in rates), "x").to_dict()}
