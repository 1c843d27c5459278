"""Gates survive ``copy.deepcopy`` and ``pickle`` (issue 20, item 4).

The gates are hook objects that read the layer they are called with, so a copy of an attached
model computes with the copy's own weights and a copy of the gates, and pickles.
"""

import copy
import pickle

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models
from archlearn.methods import variants


def encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


class AttentionMLP(nn.Module):
    """An attention block and a plain MLP (module level: pickle finds the class by name)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head((h + self.mlp(h)).mean(1))


def scramble(learner: al.Learner, seed: int = 0) -> None:
    """Gates away from their all-on start, so that they change the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in learner.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.1)


def attached(build, x: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    model = build().eval()
    learner = al.attach(model, x[:1], total_steps=10)
    scramble(learner, seed)
    return model, learner


def ungated(learner: al.Learner, x: torch.Tensor) -> torch.Tensor:
    with learner.hooks.suspended(), learner.weight_hooks.suspended():
        return learner.model(x)


@torch.no_grad()
def test_a_deep_copy_computes_with_its_own_attention_weights():
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    model, learner = attached(encoder, x)
    assert any(g.kind == "heads" for g in learner.groups)
    before = model(x)
    assert not torch.allclose(before, ungated(learner, x), atol=1e-4)  # the gates matter

    clone, zeroed = copy.deepcopy(model), []
    for name, module in clone.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            module.in_proj_weight.zero_()
            zeroed.append(name)
    assert zeroed == ["layers.0.self_attn", "layers.1.self_attn"]
    out = clone(x)
    assert not torch.allclose(out, before, atol=1e-3)
    assert torch.equal(model(x), before)  # the original kept its own weights

    # the same zeroed weights, built fresh and gated alike
    torch.manual_seed(5)
    fresh = encoder().eval()
    fresh.load_state_dict(clone.state_dict())
    twin = al.attach(fresh, x[:1], total_steps=10)
    twin.load_state_dict(learner.state_dict())
    assert torch.allclose(fresh(x), out, atol=1e-6)


@torch.no_grad()
def test_a_copy_has_its_own_copy_of_the_gates():
    x = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(2))
    model, learner = attached(AttentionMLP, x)
    clone = copy.deepcopy(model)
    snapshot = clone(x)
    assert torch.equal(snapshot, model(x))
    scramble(learner, seed=1)  # the learner trains its own model's gates, not the copy's
    assert not torch.allclose(model(x), snapshot, atol=1e-4)
    assert torch.equal(clone(x), snapshot)
    clone.double()  # the copy's gates follow the copy; the learner's stay where they were
    assert torch.allclose(clone(x.double()), snapshot.double(), atol=1e-5)
    assert all(p.dtype == torch.float32 for p in learner.parameters())


def test_an_attached_model_pickles_to_equal_outputs():
    x = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    plain = AttentionMLP().eval()
    keys, names = list(plain.state_dict()), [n for n, _ in plain.named_parameters()]
    model, learner = attached(AttentionMLP, x)
    assert list(model.state_dict()) == keys
    assert [n for n, _ in model.named_parameters()] == names
    assert {g.kind for g in learner.groups} >= {"heads", "channels"}
    back = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        assert not torch.allclose(model(x), ungated(learner, x), atol=1e-4)
        assert torch.equal(back(x), model(x))
    assert list(back.state_dict()) == keys
    # training through the unpickled copy reaches its own (copied) gates
    back.train()
    back(x).square().sum().backward()
    assert all(p.grad is None for p in learner.parameters())


def trained_mlp(method: str, options: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = models.mlp(16, [12, 8], 4, batchnorm=True)
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(seed))
    learner = al.attach(model, x[:1], method=method, total_steps=40, steps_per_epoch=4,
                        **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):  # away from the start, with optimizer state and cached tensors
        loss = model(x).square().mean() + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()
    return model.eval(), learner, x


@pytest.mark.parametrize("label,method,options", variants(), ids=[v[0] for v in variants()])
def test_every_method_computes_a_copy_with_its_own_weights(label, method, options):
    model, learner, x = trained_mlp(method, options)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p in clone.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(1)
    fresh = models.mlp(16, [12, 8], 4, batchnorm=True).eval()
    fresh.load_state_dict(clone.state_dict())
    twin = al.attach(fresh, x[:1], method=method, total_steps=40, steps_per_epoch=4, **options)
    twin.load_state_dict(learner.state_dict())
    with torch.no_grad():
        assert torch.allclose(clone(x), fresh(x), atol=1e-5)


@pytest.mark.parametrize("label,method,options", variants(), ids=[v[0] for v in variants()])
def test_every_method_survives_deepcopy_and_pickle(label, method, options):
    model, learner, x = trained_mlp(method, options)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(copy.deepcopy(model)(x), expected)
        assert torch.equal(pickle.loads(pickle.dumps(model))(x), expected)
