"""al.export_onnx: onnxruntime runs the exported shrunk model and gives PyTorch's outputs."""

import sys

import pytest
import torch
from helpers import random_gates, settle_batchnorm

import archlearn as al
from archlearn.models import lenet5, tiny_resnet

ort = pytest.importorskip("onnxruntime")


def _shrunk(model, x, seed):
    learner = al.attach(model, x[:1], method="tsrelu", total_steps=10)
    random_gates(learner, torch.Generator().manual_seed(seed), all_off=None)
    model.eval()
    small = learner.shrink().eval()
    assert al.measure(small, x[:1], repeats=1)["params"] < al.measure(model, x[:1], repeats=1)[
        "params"]
    return small


def _onnx_outputs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input0"]
    return torch.from_numpy(session.run(None, {"input0": x.numpy()})[0])


@pytest.mark.parametrize("name", ["lenet5", "tiny_resnet"])
def test_onnxruntime_outputs_equal_pytorch_for_a_shrunk_model(name, tmp_path):
    if name == "lenet5":
        model, x = lenet5(), torch.randn(8, 1, 28, 28)
    else:
        model, x = tiny_resnet(), torch.randn(8, 3, 16, 16)
        settle_batchnorm(model, x)  # BatchNorm with real statistics: folded and sliced by shrink
    small = _shrunk(model, x, seed=1)
    small.train()  # export runs in eval mode and leaves the flag as it was
    path = al.export_onnx(small, x[:2], tmp_path / f"{name}.onnx")
    assert small.training and path.stat().st_size > 1000
    small.eval()
    batch = torch.randn(5, *x.shape[1:])  # another batch size: the batch dimension is dynamic
    with torch.no_grad():
        expected = small(batch)
    got = _onnx_outputs(path, batch)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_bad_inputs_and_a_missing_extra_are_one_clear_error(tmp_path, monkeypatch):
    net = torch.nn.Linear(4, 2)
    with pytest.raises(al.ArchlearnError, match="cannot run on example_inputs"):
        al.export_onnx(net, torch.zeros(1, 5), tmp_path / "m.onnx")
    with pytest.raises(al.ArchlearnError, match="does not exist"):
        al.export_onnx(net, torch.zeros(1, 4), tmp_path / "no" / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the onnx extra were missing
    with pytest.raises(al.ArchlearnError, match=r"archlearn\[onnx\]"):
        al.export_onnx(net, torch.zeros(1, 4), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
