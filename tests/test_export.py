"""ONNX export of LightSeizureNet (dense and pruned + compacted), checked with ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from callbacks.pruning import KernelPruning, compact
from lightning_modules.export import OnnxCheckError, OnnxExport, export_onnx
from lightning_modules.lsn import LightSeizureNet

torch.set_num_threads(1)


def _lsn(seed: int = 0) -> LightSeizureNet:
    torch.manual_seed(seed)
    m = LightSeizureNet(18, n_filters=(8, 16, 16, 16, 16, 16, 16))  # the widths the figures below assume
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.bias.data.uniform_(-0.2, 0.5)
    return m


def test_dense_lsn_exports_and_matches(tmp_path):
    model = _lsn()
    model.train()  # export switches to eval and restores the mode
    result = export_onnx(model, tmp_path / "sub" / "lsn.onnx")
    assert isinstance(result, OnnxExport) and result.path.exists()
    assert model.training
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert result.output_names == ("logits",) and result.n_params == 4778
    onnx.checker.check_model(onnx.load(str(result.path)))
    # Independent check with a batch of 7 real-amplitude windows.
    x = torch.randn(7, 18, 512) * 80
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    model.eval()
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-3)


def test_compacted_lsn_exports_with_cam(tmp_path):
    model = _lsn(1)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    cb.masks["blocks.3.conv"][[0, 1, 2]] = False  # whole filters, so compaction removes some
    cb.apply_masks()
    model.eval()
    report = compact(model)
    assert report.widths_after[3] == 13
    result = export_onnx(model, tmp_path / "lsn_small.onnx", with_cam=True)
    assert result.output_names == ("logits", "cam") and result.max_abs_diff < 1e-4
    x = torch.randn(3, 18, 512) * 50
    logits, cam = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.numpy()})
    with torch.no_grad():
        ref = model.ecam(x, with_freq=False)
    np.testing.assert_allclose(logits, ref.logits.numpy(), atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(cam, ref.cam_features.numpy(), atol=1e-4, rtol=1e-3)
    assert cam.shape == (3, 18, 64)
    # The file holds the compacted (smaller) weights: block 3 keeps 13 filters, each computing
    # m < 16 kernels (a grouped convolution after a gather of the maps it reads).
    m = report.kernels_per_filter[3]
    assert m < 16
    graph = onnx.load(str(result.path)).graph
    init = {i.name: list(i.dims) for i in graph.initializer}
    assert [13, m, 1, 3] in init.values() and [13 * m] in init.values()  # kernels, gather index
    assert [16, 16, 1, 3] not in init.values()
    assert {"Gather", "Conv", "Pad"} <= {n.op_type for n in graph.node}


def test_whole_filter_compaction_exports_dense_weights(tmp_path):
    model = _lsn(1)
    cb = KernelPruning(scope="filter_balanced", target_sparsity=0.5, amount=1.0)
    cb.attach(model)
    cb.prune_round()
    cb.masks["blocks.3.conv"][[0, 1, 2]] = False
    cb.apply_masks()
    report = compact(model.eval(), sparse_kernels=False)
    assert report.kernels_per_filter == (1, 8, 16, 16, 13, 16, 16)
    result = export_onnx(model, tmp_path / "lsn_dense.onnx")
    assert result.max_abs_diff < 1e-4
    init = {i.name: list(i.dims) for i in onnx.load(str(result.path)).graph.initializer}
    assert [13, 16, 1, 3] in init.values()


def test_whole_filter_pruning_exports_narrow_dense_convolutions(tmp_path):
    model = _lsn(2)
    cb = KernelPruning(target_sparsity=0.6, amount=1.0, scope="filter")
    cb.attach(model)
    cb.prune_round()
    report = compact(model.eval())
    result = export_onnx(model, tmp_path / "lsn_filters.onnx", with_cam=True)
    assert result.max_abs_diff < 1e-4 and result.n_params == report.params_after
    graph = onnx.load(str(result.path)).graph
    assert "Gather" not in {n.op_type for n in graph.node}
    init = {i.name: list(i.dims) for i in graph.initializer}
    w = list(report.widths_after)
    assert [w[3], w[2], 1, 3] in init.values()  # block 3: w3 filters over w2 maps, all kernels
    assert [16, 16, 1, 3] not in init.values()


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 3, 5)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean(-1))


class DriftsAfterTracing(Plain):
    """Eager output changes after every call: what the traced graph froze no longer matches."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x) * float(self.calls)


def test_generic_model_needs_example_and_mismatch_is_caught(tmp_path):
    with pytest.raises(ValueError, match="pass example="):
        export_onnx(Plain(), tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="has no ecam"):
        export_onnx(Plain(), tmp_path / "p.onnx", torch.randn(2, 4, 32), with_cam=True)
    ok = export_onnx(Plain(), tmp_path / "p.onnx", torch.randn(2, 4, 32))
    assert ok.max_abs_diff < 1e-5
    with pytest.raises(OnnxCheckError, match="p2.onnx: output 'logits' differs"):
        export_onnx(DriftsAfterTracing(), tmp_path / "p2.onnx", torch.randn(2, 4, 32))
