"""The tri-state ReLU: forward semantics, the paper's penalty, clipping, freezing, real training."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.methods.tsrelu import binarize


def test_binarize_is_straight_through():
    w = torch.tensor([0.2, 0.5, 0.7], requires_grad=True)
    out = binarize(w)
    assert out.tolist() == [0.0, 1.0, 1.0]
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0]


def test_tristate_forward_matches_definition():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(6, 3)
    learner = al.attach(model, x[:1], total_steps=10, depth="all")
    w, d = learner.method.w[0], learner.method.d[0]
    with torch.no_grad():
        w.copy_(torch.tensor([0.9, 0.1, 0.6, 0.3]))
        d.fill_(0.2)
    z = model[0](x)
    expected = model[2]((torch.relu(z)) * torch.tensor([1.0, 0, 1, 0]))
    assert torch.allclose(model(x), expected, atol=1e-6)
    with torch.no_grad():
        d.fill_(0.8)  # w'x for x >= 0 and w'd'x otherwise, with d' = 1: the identity
    expected = model[2](z * torch.tensor([1.0, 0, 1, 0]))
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_penalty_is_the_papers_formula():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    learner = al.attach(model, torch.zeros(1, 3), total_steps=10, depth="all",
                        lambda1=0.1, lambda2=0.2, lambda3=0.3, lambda4=0.4)
    w, d = learner.method.w[0], learner.method.d[0]
    with torch.no_grad():
        w.copy_(torch.tensor([0.9, 0.1, 0.6, 0.3]))
        d.fill_(0.2)
    expected = (0.1 * (w * (1 - w)).sum() + 0.2 * d * (1 - d)
                + 0.3 * w.sum() * 1.0 - 0.4 * d)
    assert torch.allclose(learner.penalty(), expected)
    with torch.no_grad():
        d.fill_(0.7)  # a linear layer costs no neurons
    expected = 0.1 * (w * (1 - w)).sum() + 0.2 * d * (1 - d) - 0.4 * d
    assert torch.allclose(learner.penalty(), expected)


def test_default_lambdas_follow_the_paper_heuristics():
    learner = al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), total_steps=10, lambda1=0.01)
    m = learner.method
    assert (m.lambda2, m.lambda3, m.lambda4) == pytest.approx((0.001, 0.004, 0.0004))


def test_gates_are_clipped_and_freeze():
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), total_steps=10, lr=10.0, freeze=0.5)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        loss.backward()
        learner.step()
        assert all(((p >= 0) & (p <= 1)).all() for p in learner.parameters())
    frozen = [p.clone() for p in learner.parameters()]
    for _ in range(5):
        (nn.functional.cross_entropy(model(x), y) + learner.penalty()).backward()
        learner.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, learner.parameters()))
    assert float(learner.penalty()) == 0.0


def test_width_and_depth_choice_validated():
    with pytest.raises(al.ArchlearnError, match="depth"):
        al.attach(models.lenet5(), torch.zeros(1, 1, 28, 28), total_steps=1, depth=["0"])
    with pytest.raises(al.ArchlearnError, match="total_steps"):
        al.attach(models.lenet5(), torch.zeros(1, 1, 28, 28))
    with pytest.raises(al.ArchlearnError, match="bogus"):
        al.attach(models.lenet5(), torch.zeros(1, 1, 28, 28), total_steps=1, bogus=1)
    with pytest.raises(al.ArchlearnError, match="lambda1"):
        al.attach(models.lenet5(), torch.zeros(1, 1, 28, 28), total_steps=1, lambda1=-1.0)


def test_users_own_loop_learns_a_smaller_accurate_net():
    """attach, add penalty(), call step() after the user's unchanged optimizer step."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10)
    epochs, batch = 30, 64
    loader = torch.utils.data.DataLoader(splits.train, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], total_steps=epochs * len(loader))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    small = learner.shrink().eval()
    x, y = splits.test.tensors
    accuracy = (small(x).argmax(1) == y).float().mean().item()
    widths = [layer["width"] for layer in learner.architecture()["layers"]]
    assert accuracy > 0.93, accuracy
    assert sum(widths) < 0.9 * (128 + 64), widths
