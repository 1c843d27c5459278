"""Property: whatever the model and the gate pattern, shrinking is exact.

Random MLPs and CNNs (widths, depth, BatchNorm, residual adds before or after the activation,
1x1 or 3x3 kernels, a flatten or a pooled head) with trained BatchNorm statistics and random 0/1
width and depth gates (whole layers off, nothing off, anything between): the shrunk model's eval
outputs equal the gated model's, its parameter count is the one ``architecture()`` reports, and
``al.save`` / ``al.load`` rebuild it exactly on a fresh instance.
"""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import archlearn as al

SIDE = 4  # CNN inputs are SIDE x SIDE


@dataclass(frozen=True)
class Spec:
    kind: str  # "mlp" | "cnn"
    inputs: int  # features or channels
    blocks: tuple  # (width, batchnorm, residual "none"|"pre"|"post", kernel)
    head: str  # cnn: "flatten" | "pool"
    outputs: int
    seed: int


class Block(nn.Module):
    """layer [-> BN] [+ x] -> ReLU [+ x]"""

    def __init__(self, kind, cin, cout, batchnorm, residual, kernel):
        super().__init__()
        if kind == "mlp":
            self.layer = nn.Linear(cin, cout)
            self.norm = nn.BatchNorm1d(cout) if batchnorm else None
        else:
            self.layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=not batchnorm)
            self.norm = nn.BatchNorm2d(cout) if batchnorm else None
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x):
        h = self.layer(x)
        if self.norm is not None:
            h = self.norm(h)
        if self.residual == "pre":
            h = h + x
        h = self.act(h)
        if self.residual == "post":
            h = h + x
        return h


class RandomNet(nn.Module):
    def __init__(self, spec: Spec):
        super().__init__()
        torch.manual_seed(spec.seed)
        blocks, prev = [], spec.inputs
        for width, batchnorm, residual, kernel in spec.blocks:
            blocks.append(Block(spec.kind, prev, width, batchnorm, residual, kernel))
            prev = width
        self.blocks = nn.Sequential(*blocks)
        if spec.kind == "mlp":
            self.head = nn.Linear(prev, spec.outputs)
        elif spec.head == "flatten":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(prev * SIDE * SIDE, spec.outputs))
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(prev, spec.outputs))

    def forward(self, x):
        return self.head(self.blocks(x))


@st.composite
def specs(draw):
    kind = draw(st.sampled_from(["mlp", "cnn"]))
    inputs = draw(st.integers(1, 6))
    blocks, prev = [], inputs
    for i in range(draw(st.integers(1, 4))):
        # a residual add of the model's input cannot be pruned: tested on its own below
        residual = draw(st.sampled_from(["none", "none", "pre", "post"])) if i else "none"
        width = prev if residual != "none" else draw(st.integers(1, 8))
        kernel = draw(st.sampled_from([1, 3])) if kind == "cnn" else 0
        blocks.append((width, draw(st.booleans()), residual, kernel))
        prev = width
    head = draw(st.sampled_from(["flatten", "pool"])) if kind == "cnn" else ""
    return Spec(kind, inputs, tuple(blocks), head, draw(st.integers(1, 4)),
                draw(st.integers(0, 2**16)))


def example(spec: Spec, n: int) -> torch.Tensor:
    shape = (n, spec.inputs) if spec.kind == "mlp" else (n, spec.inputs, SIDE, SIDE)
    return torch.randn(*shape)


def train_batchnorm(model: nn.Module, spec: Spec) -> None:
    """Non-trivial running statistics and affine parameters (a zero channel -> a constant)."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(example(spec, 16) * 2 + 0.5)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()


def set_gates(learner, data) -> None:
    method = learner.method
    with torch.no_grad():
        for w in method.w.values():
            n = w.numel()
            pattern = data.draw(st.sampled_from(["all-on", "all-off", "random"]))
            if pattern == "random":
                bits = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
            else:
                bits = [pattern == "all-on"] * n
            w.copy_(torch.tensor(bits, dtype=torch.float32))
        for d in method.d.values():
            d.fill_(float(data.draw(st.booleans())))


@settings(max_examples=50, deadline=None)
@given(spec=specs(), depth=st.sampled_from(["all", "none"]), data=st.data())
def test_shrinking_is_exact(spec, depth, data, tmp_path_factory):
    model = RandomNet(spec)
    train_batchnorm(model, spec)
    x = example(spec, 5)
    learner = al.attach(model, x[:1], total_steps=10, depth=depth)
    set_gates(learner, data)
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        shrunk = small(x)
    assert torch.allclose(shrunk, gated, atol=1e-5), (shrunk - gated).abs().max()
    params = sum(p.numel() for p in small.parameters())
    assert params == learner.architecture()["params"]
    assert params <= sum(p.numel() for p in model.parameters())

    folder = al.save(small, tmp_path_factory.mktemp("saved"))
    loaded = al.load(folder, model=RandomNet(spec)).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), shrunk, atol=1e-6)


def test_residual_add_of_the_model_input_is_skipped_not_broken():
    """``relu(fc(x) + x)`` couples fc's units with the input's features, which no gate can
    remove: that group is reported as skipped and the layers after it are still gated."""
    spec = Spec("mlp", 3, ((3, False, "pre", 0), (5, True, "none", 0)), "", 2, 0)
    model = RandomNet(spec)
    train_batchnorm(model, spec)
    x = example(spec, 4)
    learner = al.attach(model, x[:1], total_steps=10)
    arch = learner.architecture()
    assert [s["name"] for s in arch["skipped"]] == ["blocks.0.layer"]
    assert "model's input" in arch["skipped"][0]["reason"]
    assert [layer["name"] for layer in arch["layers"]] == ["blocks.1.layer"]
    with torch.no_grad():
        learner.method.w[0].copy_(torch.tensor([1.0, 0, 1, 0, 0]))
        small = learner.shrink().eval()
        assert torch.allclose(small(x), model(x), atol=1e-5)
    assert small.blocks[1].layer.out_features == 2
    only = RandomNet(Spec("mlp", 3, ((3, False, "post", 0),), "", 2, 0))
    with pytest.raises(al.ArchlearnError, match="no layer of this model can be gated"):
        al.attach(only, x[:1], total_steps=10)


def test_attach_leaves_batchnorm_statistics_alone():
    """attach/shrink trace the model in eval mode: a training-mode BatchNorm's running statistics
    are not updated by the example inputs, and a batch of one example is enough."""
    spec = Spec("mlp", 4, ((6, True, "none", 0), (5, True, "none", 0)), "", 2, 1)
    model = RandomNet(spec).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learner = al.attach(model, example(spec, 1), total_steps=10)
    learner.architecture()
    small = learner.shrink()
    assert model.training and small.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
