"""Budgets: validation, the controller's landing, cost-weighted penalties, checkpoints."""


import pytest
import torch
from helpers import resumed_copy, sgd_steps
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.budget import BudgetController, parse_budget
from archlearn.structure.cost import build_cost


def _digits_run(method, budget, epochs=6, cost=None, **options):
    """The user's loop on digits (MLP 64-64-32-10 with BatchNorm); returns learner and accuracy."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [64, 32], 10, batchnorm=True)
    loader = torch.utils.data.DataLoader(splits.train, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], method=method, budget=budget,
                        cost=cost, total_steps=epochs * len(loader),
                        steps_per_epoch=len(loader), **options)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    model.eval()
    x, y = splits.test.tensors
    with torch.no_grad():
        acc = (learner.shrink()(x).argmax(1) == y).float().mean().item()
    return learner, acc


@pytest.mark.parametrize("bad,match", [
    ({"flops": 0.5}, "unknown budget 'flops'"),
    ({"macs": -1}, "positive number"),
    ({"macs": 1}, "ambiguous"),
    ({"latency": 2}, "fraction"),
    ({"macs": 0.5, "params": 0.5}, "only key"),
    (0.5, "must be a dict"),
])
def test_bad_budgets_are_one_clear_error(bad, match):
    with pytest.raises(al.ArchlearnError, match=match):
        parse_budget(bad)
    with pytest.raises(al.ArchlearnError, match=match):
        al.attach(models.lenet5(), torch.zeros(1, 1, 28, 28), budget=bad, total_steps=10)


def test_a_budget_needs_a_schedule_and_room():
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(al.ArchlearnError, match="needs total_steps"):
        al.attach(models.lenet5(), x, budget={"macs": 0.5})
    with pytest.raises(al.ArchlearnError, match="needs a freeze"):
        al.attach(models.lenet5(), x, budget={"macs": 0.5}, total_steps=10, freeze=None)
    with pytest.raises(al.ArchlearnError, match="not below the model's 431080"):
        al.attach(models.lenet5(), x, budget={"params": 500_000}, total_steps=10)
    # one unit in every group (26 + 26 + 17 + 20) costs 89 parameters: said
    # at attach, not at the freeze
    with pytest.raises(al.ArchlearnError, match="below what one unit in every group costs"):
        al.attach(models.lenet5(), x, budget={"params": 50}, total_steps=10)
    with pytest.raises(al.ArchlearnError, match="unknown cost 'flops'"):
        al.attach(models.lenet5(), x, cost="flops", total_steps=10)
    # a method whose default never freezes gets 0.65 under a budget
    learner = al.attach(models.lenet5(), x, method="l0", budget={"macs": 0.5}, total_steps=10)
    assert learner.method.options.freeze == 0.65


@pytest.mark.parametrize("method", ["tsrelu", "l0", "morphnet"])
@pytest.mark.parametrize("budget", [{"macs": 0.3}, {"params": 2500}])
def test_the_shrunk_model_lands_on_the_budget(method, budget):
    learner, acc = _digits_run(method, budget)
    report = learner.architecture()["budget"]
    (kind, value), = budget.items()
    target = value if value > 1 else value * report["full"]
    counted = learner.architecture()[kind]
    assert report["reached_count"] == counted
    assert 0.98 * target <= counted <= target, (counted, target)  # within 2% under
    assert acc > 0.85, acc


def test_landing_removes_the_lowest_scores_and_restores_the_best():
    model = models.mlp(8, [6], 3)
    learner = al.attach(model, torch.zeros(1, 8), total_steps=10)
    cost = build_cost(model, learner.groups, learner.inputs, "macs")  # 8x6 + 6x3 = 66
    controller = BudgetController(cost, "macs", 0.5, 0, 10)  # at most 33 MACs: 3 units
    scores = [torch.tensor([0.9, 0.1, 0.8, 0.2, 0.7, 0.3])]
    landed = controller.land([torch.ones(6)], scores)
    assert landed[0].tolist() == [1, 0, 1, 0, 1, 0]
    assert controller.controller == 66 and cost.of(landed) == 33
    landed = controller.land([torch.tensor([1.0, 0, 0, 0, 0, 0])], scores)  # too few: restore
    assert landed[0].tolist() == [1, 0, 1, 0, 1, 0]


def test_cost_weighted_penalty_charges_a_unit_what_it_costs():
    """tsrelu's complexity term with cost="macs": lambda3 * sum_u c_u w_u, c_u what removing
    the unit saves (a conv1 channel: 25 x 576 of its own + 50 x 25 x 64 in conv2; a conv2
    channel: 20 x 25 x 64 + 16 x 500 in fc1; an fc unit: 800 + 10) over the mean of these."""
    model = models.lenet5()
    x = torch.zeros(1, 1, 28, 28)
    plain = al.attach(models.lenet5(), x, total_steps=10, lambda1=0.0, lambda3=1.0)
    weighted = al.attach(model, x, total_steps=10, cost="macs", lambda1=0.0, lambda3=1.0)
    assert float(plain.penalty().detach()) == pytest.approx(0.6 * 570)
    costs = [25 * 576 + 50 * 25 * 64, 20 * 25 * 64 + 16 * 500, 800 + 10]
    mean = (20 * costs[0] + 50 * costs[1] + 500 * costs[2]) / 570
    for i, c in enumerate(costs):
        assert torch.allclose(weighted.method.unit_weights(i), torch.tensor(c / mean))
    # the mean weight is 1 at full width: the default lambda3 keeps its meaning
    assert float(weighted.penalty().detach()) == pytest.approx(0.6 * 570)


def test_budget_state_round_trips_through_a_checkpoint():
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))

    torch.manual_seed(0)
    model = models.mlp(64, [16, 12], 10)
    kw = {"budget": {"macs": 0.4}, "total_steps": 20, "lr": 0.05}
    learner = al.attach(model, x[:1], **kw)
    sgd_steps(learner, model, x, y, 8)
    other, clone = resumed_copy(learner, model, lambda: models.mlp(64, [16, 12], 10), x, **kw)
    assert other.method.budget.multiplier == learner.method.budget.multiplier
    sgd_steps(learner, model, x, y, 12)
    sgd_steps(other, clone, x, y, 12)
    assert [d.scale.tolist() for d in learner.decisions()] == [
        d.scale.tolist() for d in other.decisions()]
    assert learner.architecture()["budget"] == other.architecture()["budget"]


def test_landing_swaps_a_unit_back_in_to_use_the_budget():
    """LeNet-5, at most 40,000 parameters, every score equal: removing the costliest unit
    (a conv2 channel, 8,501 parameters through fc1) for a gap of 34 left 31,533; swapping it
    back in against a cheap conv1 channel lands within a fraction of a percent."""
    model = models.lenet5()
    learner = al.attach(model, torch.zeros(1, 1, 28, 28), total_steps=10)
    with learner.hooks.suspended():
        cost = build_cost(model, learner.groups, learner.inputs, "params")
    controller = BudgetController(cost, "params", 40_000, 0, 10)
    scores = [torch.ones(g.size) for g in learner.groups]
    decision = [torch.ones(20), torch.cat([torch.ones(4), torch.zeros(46)]), torch.ones(500)]
    assert cost.of(decision) == 40_034
    landed = controller.land(decision, scores)
    assert [int(s.sum()) for s in landed] == [19, 4, 500]
    assert 0.995 * 40_000 <= cost.of(landed) <= 40_000
