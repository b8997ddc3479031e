"""Export a (pruned, compacted) window model to ONNX and check it against PyTorch.

ONNX Runtime then runs the detector without PyTorch (bedside devices, other languages). The
export uses the TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs
``onnxscript``, which the project does not depend on.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


class OnnxCheckError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's beyond tolerance."""


@dataclass(frozen=True)
class OnnxExport:
    """Result of :func:`export_onnx`.

    Attributes
    ----------
    path : Path
        The ``.onnx`` file.
    input_name : str
    output_names : tuple of str
        ``("logits",)`` or ``("logits", "cam")``.
    opset : int
    max_abs_diff : float or None
        Largest |ONNX Runtime - PyTorch| over all outputs on the check inputs (None if unchecked).
    n_params : int
        Parameters of the exported model.
    """

    path: Path
    input_name: str
    output_names: tuple[str, ...]
    opset: int
    max_abs_diff: float | None
    n_params: int


class _WithCam(nn.Module):
    """Exports logits and the feature-grid ECAM (``cam_features``) of a model with ``ecam``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model.ecam(x, with_freq=False)
        return out.logits, out.cam_features


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor | None = None, *,
                with_cam: bool = False, opset: int = 17, dynamic_batch: bool = True,
                check: bool = True, atol: float = 1e-4, rtol: float = 1e-3) -> OnnxExport:
    """Export ``model`` (eval mode) to ONNX; optionally check ONNX Runtime against PyTorch.

    Parameters
    ----------
    model : nn.Module
        Maps (B, C, T) to logits; LightSeizureNet before or after compaction.
    path : str or Path
        Output file (parent folders are created).
    example : torch.Tensor or None
        Example input (B, C, T); ``model.example_input(2)`` by default.
    with_cam : bool
        Also output the ECAM on the feature grid, (B, C, T') (model must have ``ecam``).
    opset : int
        ONNX opset.
    dynamic_batch : bool
        Leave the batch axis free; the check then also runs a batch of another size.
    check : bool
        Run the file with ONNX Runtime and compare (raises :class:`OnnxCheckError`).
    atol, rtol : float
        Tolerance of the check: ``|ort - torch| <= atol + rtol * |torch|``.
    """
    path = Path(path)
    if example is None:
        if not callable(getattr(model, "example_input", None)):
            raise ValueError(f"{type(model).__name__} has no example_input(): pass example=")
        example = model.example_input(2)
    if with_cam and not callable(getattr(model, "ecam", None)):
        raise ValueError(f"with_cam=True but {type(model).__name__} has no ecam()")
    net = _WithCam(model) if with_cam else model
    output_names = ("logits", "cam") if with_cam else ("logits",)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = example.detach().to(torch.float32).cpu()
    was_training = model.training
    net.eval()  # the exporter restores the wrapper's mode afterwards, so set it, not only the model's
    try:
        dynamic_axes = None
        if dynamic_batch:
            dynamic_axes = {"x": {0: "batch"}, **{n: {0: "batch"} for n in output_names}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's constant-folding chatter
            torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=["x"],
                              output_names=list(output_names), dynamic_axes=dynamic_axes,
                              opset_version=opset)
        max_diff = None
        if check:
            max_diff = _check(net, path, example, output_names, dynamic_batch, atol, rtol)
    finally:
        model.train(was_training)
    return OnnxExport(path=path, input_name="x", output_names=output_names, opset=opset,
                      max_abs_diff=max_diff, n_params=sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def _check(net: nn.Module, path: Path, example: torch.Tensor, output_names: tuple[str, ...],
           dynamic_batch: bool, atol: float, rtol: float) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [example]
    if dynamic_batch:
        gen = torch.Generator().manual_seed(0)
        other = example.shape[0] + 3
        scale = example.std().clamp(min=1.0)  # microvolt-sized, or unit scale for a zero example
        inputs.append(torch.randn((other,) + tuple(example.shape[1:]), generator=gen) * scale)
    worst = 0.0
    for x in inputs:
        ref = net(x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = session.run(list(output_names), {"x": x.numpy()})
        for name, r, g in zip(output_names, ref, got):
            r = r.numpy()
            if r.shape != g.shape:
                raise OnnxCheckError(f"{path}: output {name!r} has shape {g.shape} in ONNX Runtime, "
                                     f"{r.shape} in PyTorch (batch {x.shape[0]})")
            diff = np.abs(g - r)
            worst = max(worst, float(diff.max()))
            if not np.all(diff <= atol + rtol * np.abs(r)):
                raise OnnxCheckError(f"{path}: output {name!r} differs from PyTorch by up to "
                                     f"{float(diff.max()):.3g} (atol {atol}, rtol {rtol}, "
                                     f"batch {x.shape[0]})")
    return worst
