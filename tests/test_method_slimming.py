"""Network slimming: BatchNorm discovery, penalty, masks, the prune step (the shared contract is
in test_method_contract.py)."""

import io

import pytest
import torch
from helpers import train_in_user_loop
from torch import nn

import archlearn as al
from archlearn import data, models


def mixed_net():
    """One hidden layer with BatchNorm, one without."""
    return nn.Sequential(
        nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(),
        nn.Linear(10, 8), nn.ReLU(),
        nn.Linear(8, 3),
    )


def test_total_steps_required_and_batchnorm_needed():
    net = models.mlp(4, [8], 2, batchnorm=True)
    with pytest.raises(al.ArchlearnError, match="total_steps"):
        al.attach(net, torch.zeros(1, 4), method="slimming")
    with pytest.raises(al.ArchlearnError, match="BatchNorm"):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="slimming", total_steps=10)


def test_penalty_is_l1_on_the_batchnorm_scales():
    model = mixed_net()
    learner = al.attach(model, torch.zeros(1, 6), method="slimming", total_steps=10, lam=0.1)
    assert [len(n) for n in learner.method.norms] == [1, 0]
    with torch.no_grad():
        model[1].weight.uniform_(-1, 1)
    pen = learner.penalty()
    assert torch.allclose(pen, 0.1 * model[1].weight.abs().sum())
    pen.backward()
    assert torch.allclose(model[1].weight.grad, 0.1 * model[1].weight.sign())
    assert learner.parameters() == []


def test_mask_is_global_percentile_ones_in_training_and_kept_without_batchnorm():
    model = models.mlp(4, [4, 4], 2, batchnorm=True)
    learner = al.attach(model, torch.zeros(1, 4), method="slimming", total_steps=10,
                        prune_ratio=0.5)
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([0.1, 2.0, -0.05, 1.0]))
        model[5].weight.copy_(torch.tensor([0.5, -0.3, 3.0, 0.2]))
    model.train()
    assert torch.equal(learner.method.unit_scale(0), torch.ones(4))
    model.eval()
    assert learner.method.unit_scale(0).tolist() == [0, 1, 0, 1]
    assert learner.method.unit_scale(1).tolist() == [1, 0, 1, 0]
    with torch.no_grad():  # the mask follows the gammas until the prune step
        model[2].weight.fill_(0.01)
    assert learner.method.unit_scale(0).tolist() == [1, 0, 0, 0]  # keep_min=1: the largest
    assert learner.method.unit_scale(1).tolist() == [1, 1, 1, 1]
    mixed = al.attach(mixed_net(), torch.zeros(1, 6), method="slimming", total_steps=10,
                      prune_ratio=0.9)
    assert torch.equal(mixed.decisions()[1].scale, torch.ones(8))


def test_layer_scope_and_absolute_threshold():
    model = models.mlp(4, [4, 4], 2, batchnorm=True)
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        model[5].weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    layer = al.attach(model, torch.zeros(1, 4), method="slimming", total_steps=10,
                      prune_ratio=0.5, scope="layer")
    assert [d.scale.tolist() for d in layer.decisions()] == [[0, 0, 1, 1], [0, 0, 1, 1]]
    layer.detach()
    absolute = al.attach(model, torch.zeros(1, 4), method="slimming", total_steps=10,
                         threshold=0.25)
    assert [d.scale.tolist() for d in absolute.decisions()] == [[0, 0, 1, 1], [1, 1, 1, 1]]


def test_prune_step_freezes_the_mask_and_gates_training():
    model = models.mlp(4, [8], 2, batchnorm=True)
    learner = al.attach(model, torch.zeros(1, 4), method="slimming", total_steps=4,
                        freeze=0.5, prune_ratio=0.25)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (nn.functional.cross_entropy(model(x), y) + learner.penalty()).backward()
        opt.step()
        learner.step()
    assert learner.method.pruned
    mask = learner.method.gate(0).clone()
    assert int((mask == 0).sum()) == 2
    model.train()
    assert torch.equal(learner.method.gate(0), mask)
    assert float(learner.penalty()) == 0.0
    with torch.no_grad():
        model[2].weight.fill_(1.0)
    assert torch.equal(learner.decisions()[0].scale, mask)
    buffer = io.BytesIO()  # the frozen mask survives a checkpoint (weights_only load)
    torch.save(learner.state_dict(), buffer)
    buffer.seek(0)
    other = al.attach(models.mlp(4, [8], 2, batchnorm=True), torch.zeros(1, 4),
                      method="slimming", total_steps=4, freeze=0.5)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(other.decisions()[0].scale, mask)


def test_users_own_loop_learns_a_smaller_accurate_net():
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10, batchnorm=True)
    learner, accuracy, widths = train_in_user_loop(model, splits, "slimming", total_steps=0)
    assert accuracy > 0.93, accuracy
    assert sum(widths) == 96, widths  # exactly half of all gated units (global percentile)
