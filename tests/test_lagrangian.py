"""CoFi's Lagrangian as the budget's controller (``attach(..., controller="lagrangian")``)."""


import pytest
import torch
from helpers import resumed_copy, sgd_steps
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.budget import Lagrangian
from archlearn.structure.cost import build_cost

STEPS = 300


def _digits(method, controller, steps=STEPS, **options):
    """An MLP 64-64-32-10 on digits from all-on gates, 40% of the MACs; per step the expected
    cost and the target (fractions of the full MACs) and the kept widths."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [64, 32], 10, batchnorm=True)
    x, y = splits.train.tensors
    learner = al.attach(model, x[:1], method=method, budget={"macs": 0.4}, total_steps=steps,
                        controller=controller, freeze=0.9, **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    budget = learner.method.budget
    trace = []
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch]) + learner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.step()
        if not learner.method.frozen:
            trace.append((budget.now / budget.cost.full,
                          budget.target_at(learner.method.t) / budget.cost.full,
                          [int(d.kept.numel()) for d in learner.decisions()]))
    return learner, trace


def test_the_expected_cost_follows_the_target_without_collapsing():
    """l0 (gate lr 0.1): once the expected cost has come down to the 40% target it stays within
    a few % of it to the freeze, every layer keeps units, and the gates spread (the ones the task
    needs rise while the others fall), instead of all falling at the optimiser's rate."""
    learner, trace = _digits("l0", "lagrangian", lr=0.1)
    start = learner.method.options.droprate_init
    arrived = next(i for i, (now, _, _) in enumerate(trace) if now <= 0.4)
    assert arrived < 0.85 * len(trace)  # the cost did come down, with time to spare
    after = [now for now, _, _ in trace[arrived:]]
    assert min(after) >= 0.94 * 0.4 and max(after) <= 1.03 * 0.4, (min(after), max(after))
    assert all(min(widths) >= 8 for _, _, widths in trace)
    log_alpha = learner.method.log_alpha[0].detach()
    init = torch.log(torch.tensor((1 - start) / start))
    assert int((log_alpha > init + 0.5).sum()) >= 5 and int((log_alpha < -2.5).sum()) >= 5
    report = learner.architecture()["budget"]
    assert 0.98 * 0.4 <= report["reached"] <= 0.4 and report["multiplier"] == 0.0
    assert report["lambda1"] != 0 and report["lambda2"] > 0


def test_tsrelu_with_the_lagrangian_keeps_near_the_target():
    """tsrelu: the expected cost is the binarized gates' (straight through); after the target is
    reached the cost stays within units of it, never collapsing (one fc unit is 1.5% here)."""
    _, trace = _digits("tsrelu", "lagrangian")
    reach = next(i for i, (_, target, _) in enumerate(trace) if target <= 0.401)
    after = [now for now, _, _ in trace[reach:]]
    assert min(after) >= 0.85 * 0.4 and max(after) <= 1.25 * 0.4, (min(after), max(after))


def _cost():
    net = models.mlp(8, [6], 3)
    learner = al.attach(net, torch.zeros(1, 8), total_steps=10)
    return build_cost(net, learner.groups, learner.inputs, "macs")  # 8x6 + 6x3 = 66


def test_multipliers_ascend_on_the_gap_hold_in_the_band_and_restart_at_the_crossing():
    cost = _cost()
    lag = Lagrangian(cost, "macs", 0.5, 0, 10)  # target 33 MACs from step 6 on
    ones = [torch.ones(6)]
    for _ in range(3):
        lag.update(8, ones)  # 66 > 33: both multipliers rise
    l1, l2 = lag.lambdas.tolist()
    assert l1 > 0.02 and l2 > 0.02
    # the term: lambda1 (s - t) + lambda2 (s - t)^2 with s = 1, t = 0.5, differentiable
    alive = torch.ones(6, requires_grad=True)
    term = lag.term(8, [alive])
    assert float(term.detach()) == pytest.approx(l1 * 0.5 + l2 * 0.25)
    term.backward()
    assert alive.grad is not None and bool((alive.grad > 0).all())
    three = [torch.tensor([1.0, 1, 1, 0, 0, 0])]  # 33 MACs: on the target, inside the band
    lag.update(8, three)
    lag.update(8, three)
    assert lag.lambdas[0].item() == pytest.approx(l1, rel=0.05)
    lag.update(8, [torch.tensor([1.0, 1, 0, 0, 0, 0])])  # 22 MACs: under, crossed
    assert lag.lambdas[0].item() < 0 and lag.lambdas[0].item() > -0.02  # restarted from 0
    assert lag.lambdas[1].item() > l2  # lambda2 only grows


def test_the_controller_is_validated():
    x = torch.zeros(1, 8)
    with pytest.raises(al.ArchlearnError, match="give budget"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, controller="lagrangian")
    with pytest.raises(al.ArchlearnError, match="not available for slimming"):
        al.attach(models.mlp(8, [6], 3, batchnorm=True), x, method="slimming",
                  budget={"macs": 0.5}, total_steps=10, controller="lagrangian")
    with pytest.raises(al.ArchlearnError, match="controller must be one of"):
        al.attach(models.mlp(8, [6], 3), x, budget={"macs": 0.5}, total_steps=10,
                  controller="pid")
    with pytest.raises(al.ArchlearnError, match="no setting 'gain'"):
        al.attach(models.mlp(8, [6], 3), x, budget={"macs": 0.5}, total_steps=10,
                  controller={"kind": "lagrangian", "gain": 2})
    with pytest.raises(al.ArchlearnError, match="positive number"):
        al.attach(models.mlp(8, [6], 3), x, budget={"macs": 0.5}, total_steps=10,
                  controller={"kind": "lagrangian", "lr": -1})
    learner = al.attach(models.mlp(8, [6], 3), x, budget={"macs": 0.5}, total_steps=10,
                        controller={"kind": "lagrangian", "lr": 0.05})
    assert isinstance(learner.method.budget, Lagrangian) and learner.method.budget.lr == 0.05


def test_lagrangian_state_round_trips_through_a_checkpoint():
    x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))

    torch.manual_seed(0)
    model = models.mlp(16, [12, 8], 4)
    kw = {"method": "l0", "budget": {"macs": 0.4}, "total_steps": 30, "lr": 0.1, "seed": 0,
          "controller": "lagrangian"}
    learner = al.attach(model, x[:1], **kw)
    sgd_steps(learner, model, x, y, 10)
    other, clone = resumed_copy(learner, model, lambda: models.mlp(16, [12, 8], 4), x, **kw)
    assert torch.equal(other.method.budget.lambdas, learner.method.budget.lambdas)
    sgd_steps(learner, model, x, y, 10)
    sgd_steps(other, clone, x, y, 10)
    assert torch.equal(other.method.budget.lambdas, learner.method.budget.lambdas)
    assert torch.equal(other.method.log_alpha[0], learner.method.log_alpha[0])
