"""Differentiable sparsification: gate formula, penalty, exact zeros from plain training (the
shared contract is in test_method_contract.py)."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import data, models


@pytest.mark.parametrize("renorm", ["max", "sum"])
def test_gate_formula_and_dense_start(renorm):
    model = models.mlp(3, [4], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", threshold=0.5,
                        renorm=renorm)
    m = learner.method
    assert torch.allclose(m.unit_scale(0), torch.ones(4))  # attaching changes nothing
    with torch.no_grad():
        m.beta[0].copy_(torch.tensor([0.0, 1.0, -2.0, 0.5]))
    a = torch.softmax(m.beta[0].detach(), 0)
    g = torch.relu(a - 0.5 / 4)
    expected = g / g.max() if renorm == "max" else 4 * g / g.sum()
    assert torch.allclose(m.unit_scale(0), expected)
    assert m.unit_scale(0)[2] == 0  # share 0.03 < tau = 0.125: exactly zero
    assert torch.equal(learner.decisions()[0].scale, expected.detach())


def test_penalty_is_lp_of_the_shares():
    model = models.mlp(3, [4, 9], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", lam=2.0, p=0.5,
                        normalize=False)
    m = learner.method
    with torch.no_grad():
        m.beta[0].copy_(torch.tensor([0.0, 1.0, -2.0, 0.5]))
    expected = 2.0 * (torch.softmax(m.beta[0], 0).sqrt().sum() + 9 ** 0.5)
    assert torch.allclose(learner.penalty(), expected)
    norm = al.attach(models.mlp(3, [4, 9], 2), torch.zeros(1, 3), method="diffsparse", lam=2.0)
    assert norm.penalty().item() == pytest.approx(4.0)  # each uniform group contributes 1


def test_a_group_never_loses_every_unit():
    model = models.mlp(3, [6], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", threshold=0.99)
    with torch.no_grad():
        learner.method.beta[0].copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.1]))
    scale = learner.decisions()[0].scale
    assert scale.tolist() == [0, 0, 0, 0, 0, 1]


def test_plain_training_reaches_exact_zeros_and_a_smaller_accurate_net():
    """No pruning step anywhere: the gates themselves become exactly 0 during training."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10)
    epochs = 30
    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], method="diffsparse")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    zeros = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
        with torch.no_grad():  # the training-mode gates the forward pass used
            zeros.append(sum(int((learner.method.unit_scale(i) == 0).sum())
                             for i in range(len(learner.groups))))
    assert zeros[0] < zeros[-1] and zeros[-1] > 0, zeros
    model.eval()
    small = learner.shrink().eval()
    x, y = splits.test.tensors
    with torch.no_grad():
        accuracy = (small(x).argmax(1) == y).float().mean().item()
        assert torch.allclose(small(x), model(x), atol=1e-5)
    widths = [layer["width"] for layer in learner.architecture()["layers"]]
    assert sum(widths) == 192 - zeros[-1]
    assert accuracy > 0.93, accuracy
    assert sum(widths) < 0.8 * (128 + 64), widths
