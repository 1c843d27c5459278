"""MorphNet: proximal steps of cost-weighted L1 on BatchNorm scales or weight-row norms."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models


def test_proximal_step_shrinks_each_gamma_by_its_cost():
    """tiny_resnet's scales start at 1; one step lowers unit u's gamma by lam * c_u, c_u its
    MACs weight at the current widths (mean 1 over units)."""
    model = models.tiny_resnet()
    x = torch.zeros(1, 3, 16, 16)
    learner = al.attach(model, x, method="morphnet", lam=0.01, total_steps=10)
    method = learner.method
    assert all(kind == "gamma" for kind, _ in filter(None, method.sources))
    weights = [method.unit_weights(i).clone() for i in range(len(learner.groups))]
    assert float(learner.penalty()) == 0.0  # applied as a proximal step, not through the loss
    learner.step()
    for i, w in enumerate(weights):
        assert torch.allclose(method.scale(i), (1 - 0.01 * w).clamp_min(0), atol=1e-6)
    stem = model.stem[1].weight
    assert torch.allclose(stem, (1 - 0.01 * weights[0]).clamp_min(0))


def test_without_batchnorm_the_rows_of_the_producers_shrink_as_groups():
    model = models.lenet5()
    x = torch.zeros(1, 1, 28, 28)
    learner = al.attach(model, x, method="morphnet", lam=0.05, total_steps=10)
    assert [s[0] for s in learner.method.sources] == ["group_lasso"] * 3
    before = model[0].weight.detach().clone()
    ratio = learner.method.scale(0).detach().clone()
    learner.step()
    after = learner.method.scale(0).detach()
    factor = after / ratio  # each conv1 filter is rescaled as a whole
    assert torch.allclose(model[0].weight, before * factor.view(-1, 1, 1, 1), atol=1e-6)
    assert (after < ratio).all()


def test_mask_is_relative_to_the_groups_largest_scale_and_shrinking_is_exact():
    model = models.tiny_resnet()
    x = torch.randn(4, 3, 16, 16)
    learner = al.attach(model, x[:1], method="morphnet", total_steps=10)
    with torch.no_grad():
        model.layer2.bn1.weight.mul_(1e-3)  # the whole layer small: nothing pruned
        model.layer1[0].bn1.weight[:3] = 1e-4  # three units far below their group's largest
    widths = {g["name"]: g["width"] for g in learner.architecture()["layers"]}
    assert widths["layer2.conv1"] == 16 and widths["layer1.0.conv1"] == 5
    model.eval()
    with torch.no_grad():
        assert torch.allclose(learner.shrink().eval()(x), model(x), atol=1e-5)


def test_a_model_without_scales_is_refused():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(al.ArchlearnError, match="no unit scale"):
        al.attach(net, torch.zeros(1, 4), method="morphnet", source="gamma", total_steps=10)
