"""Per-weight gates: W * G in the forward pass, folding, kept zeros, save/load, non-zero counts."""

import copy

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn.structure.gating import GateHooks
from archlearn.structure.groups import find_groups
from archlearn.structure.measure import count_nonzero
from archlearn.structure.weight_gates import WeightGateHooks, fold, gateable_layers, keep_zeros


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _random_scales(model, gen) -> dict[str, torch.Tensor]:
    scales = {}
    for name in gateable_layers(model):
        w = model.get_submodule(name).weight
        shape = w.shape[:2] if name == "0" else w.shape  # one per kernel, and one per weight
        s = torch.rand(shape, generator=gen)
        scales[name] = torch.where(s < 0.4, torch.zeros_like(s), s)
    return scales


def test_layers_compute_with_scaled_weights_and_state_is_untouched():
    torch.manual_seed(0)
    model, x = _net(), torch.randn(3, 2, 8, 8)
    scales = _random_scales(model, torch.Generator().manual_seed(1))
    keys = list(model.state_dict())
    hooks = WeightGateHooks(model, list(scales), scales.get)
    assert list(model.state_dict()) == keys and len(list(model.parameters())) == 6
    with hooks.suspended():
        reference = copy.deepcopy(model)
    fold(reference, scales)
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    with hooks.suspended():
        assert not torch.allclose(model(x), reference(x), atol=1e-3)


def test_gradients_reach_both_the_weights_and_the_scales():
    layer = nn.Linear(3, 2)
    scale = torch.full((2, 3), 0.5, requires_grad=True)
    WeightGateHooks(layer, [""], lambda name: scale)
    layer(torch.ones(4, 3)).sum().backward()
    assert torch.allclose(layer.weight.grad, torch.full((2, 3), 2.0))  # 4 examples * 0.5
    assert torch.allclose(scale.grad, 4 * layer.weight.detach())


def test_weight_gates_compose_with_unit_gates():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x = torch.randn(5, 4)
    groups, _ = find_groups(model, (x[:1],))
    unit = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 2.0])
    weight = torch.rand(3, 6)
    GateHooks(model, groups, lambda i: unit, lambda i: None)
    WeightGateHooks(model, ["2"], lambda name: weight)
    h = torch.relu(model[0](x)) * unit
    assert torch.allclose(model(x), h @ (model[2].weight * weight).t() + model[2].bias, atol=1e-6)


def test_non_layers_are_refused():
    with pytest.raises(ValueError, match="Linear or Conv"):
        WeightGateHooks(nn.Sequential(nn.ReLU()), ["0"], lambda name: None)


def test_fold_stores_plain_zeros_and_keep_zeros_survives_training_and_copies():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    scale = (torch.rand(4, 6) > 0.5).float() * -1.0  # negative: -0.0 would appear
    fold(layer, {"": scale})
    zeros = layer.weight == 0
    assert zeros.any() and not torch.signbit(layer.weight[zeros]).any()
    keep_zeros(layer, [""])
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(5):
        layer(torch.randn(8, 6)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    assert torch.equal(layer.weight == 0, zeros)
    twin = copy.deepcopy(layer)
    assert torch.equal(twin.weight, layer.weight)


def test_count_nonzero_sees_masked_weights_as_computed():
    layer = nn.Linear(5, 3)
    with torch.no_grad():
        layer.weight[:, :2] = 0
        layer.bias[0] = 0
    assert count_nonzero(layer) == 15 - 6 + 2
    keep_zeros(layer, [""])
    assert count_nonzero(layer) == 15 - 6 + 2
    report = al.measure(layer, torch.zeros(2, 5), repeats=1)
    dense = al.measure(nn.Linear(5, 3), torch.zeros(2, 5), repeats=1)
    assert (report["params"], report["nonzero_params"]) == (18, 11)
    assert report["macs"] == dense["macs"]  # the dense computation, zeros included
