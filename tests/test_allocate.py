"""``structure.allocate``: which units to keep under a budget, exact on the shrunk model.

The cost of an allocation is checked against the model that ``shrink`` actually builds from it
(``count_params`` / ``count_macs``), not against the cost model alone.
"""

import pytest
import torch

from archlearn.errors import ArchlearnError
from archlearn.models import tiny_resnet
from archlearn.models.lenet import lenet5
from archlearn.structure.allocate import TOLERANCE, allocate, minimum_cost
from archlearn.structure.cost import CostModel, Side, Term, build_cost
from archlearn.structure.groups import find_groups
from archlearn.structure.measure import count_macs, count_params
from archlearn.structure.shrink import Decision, shrink

INPUTS = (torch.zeros(1, 1, 28, 28),)


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = lenet5().eval()
    groups, skipped = find_groups(model, INPUTS)
    assert [(g.name, g.size) for g in groups] == [("0", 20), ("3", 50), ("7", 500)], skipped
    costs = {kind: build_cost(model, groups, INPUTS, kind) for kind in ("params", "macs")}
    return model, groups, costs


def _scores(groups, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(g.size, generator=gen, dtype=torch.float64) for g in groups]


def _exact(model, groups, alive, kind: str) -> int:
    """The count of the model shrunk with this decision."""
    small, _ = shrink(model, groups, [Decision(a.float()) for a in alive], INPUTS)
    return count_params(small) if kind == "params" else count_macs(small, INPUTS)


@pytest.mark.parametrize(("kind", "value"), [("params", 40000), ("params", 0.25),
                                             ("macs", 0.5), ("macs", 0.25), ("macs", 0.1)])
def test_lands_within_two_percent_under_the_target_on_the_shrunk_model(lenet, kind, value):
    model, groups, costs = lenet
    cost = costs[kind]
    target = value if value > 1 else value * cost.full
    alive = allocate(cost, _scores(groups, seed=1), target)
    exact = _exact(model, groups, alive, kind)
    assert exact == pytest.approx(float(cost.total(alive)), abs=0.5)  # the cost model is exact
    assert (1 - TOLERANCE) * target <= exact <= target, (exact, target)
    assert all(set(a.unique().tolist()) <= {0.0, 1.0} for a in alive)
    assert sum(int(a.sum()) for a in alive) < sum(g.size for g in groups)  # something went


def test_a_group_never_loses_its_last_unit(lenet):
    model, groups, costs = lenet
    cost = costs["params"]
    scores = _scores(groups, seed=2)
    scores[1] = torch.zeros(50, dtype=torch.float64)  # conv2's units are worth nothing
    floor = minimum_cost(cost)
    alive = allocate(cost, scores, floor)
    assert [int(a.sum()) for a in alive] == [1, 1, 1]
    assert _exact(model, groups, alive, "params") == floor
    # a starting point with a group already emptied: its kept unit is counted
    start = [torch.ones(g.size) for g in groups]
    start[0].zero_()
    alive = allocate(cost, scores, 0.3 * cost.full, alive=start)
    assert int(alive[0].sum()) >= 1
    assert _exact(model, groups, alive, "params") == pytest.approx(float(cost.total(alive)))
    assert _exact(model, groups, alive, "params") <= 0.3 * cost.full


@pytest.mark.parametrize(("kind", "value"), [("params", 0.25), ("params", 0.1),
                                             ("macs", 0.25), ("macs", 0.1)])
def test_a_learned_decision_lands_within_two_percent_on_the_residual_cnn(kind, value):
    """The landing of a learned run (``budget.py``): from the gates' decision, scores that are
    nearly tied (binarized gates), ranked by score alone. The residual CNN's channels are
    costly (a channel of the 32-wide block is read by 3x3 convs), so landing within 2% needs
    the exchange move; its last removal may free far more than needed, which only a fill of
    the trial gives back (the exchange without that fill left some of these 2.0-3.4% under)."""
    torch.manual_seed(0)
    model = tiny_resnet(in_channels=1, width=16).eval()
    groups, _ = find_groups(model, INPUTS)
    cost = build_cost(model, groups, INPUTS, kind)
    target = value * cost.full
    reached = []
    for seed in range(30):
        gen = torch.Generator().manual_seed(seed)
        keep = float(torch.rand(1, generator=gen)) * 0.6 + 0.1
        start = [(torch.rand(g.size, generator=gen) < keep).double() for g in groups]
        scores = [s + 0.01 * torch.rand(len(s), generator=gen, dtype=torch.float64)
                  for s in start]
        alive = allocate(cost, scores, target, alive=start, per_cost=False)
        reached.append(float(cost.total(alive)) / target)
    assert min(reached) >= 1 - TOLERANCE and max(reached) <= 1.0, sorted(reached)[:4]
    exact = _exact(model, groups, alive, kind)  # the last one, on the shrunk model
    assert exact == pytest.approx(float(cost.total(alive)), abs=0.5)


@pytest.mark.parametrize("kind", ["params", "macs"])
def test_higher_scored_units_are_kept_over_lower_ones_within_a_group(lenet, kind):
    _, groups, costs = lenet
    scores = _scores(groups, seed=3)
    alive = allocate(costs[kind], scores, 0.25 * costs[kind].full)
    pruned = 0
    for g, (s, a) in enumerate(zip(scores, alive)):
        kept, removed = s[a > 0], s[a == 0]
        if len(removed):
            pruned += 1
            assert kept.min() > removed.max(), f"group {groups[g].name}"
    assert pruned >= 2  # the ordering was actually tested on more than one group


def _two_groups() -> CostModel:
    """Group a: 4 units costing 10 each; group b: 3 units costing 30 each (full 130)."""
    return CostModel("params", [Term("a", 40.0, (Side(4, 0, [(0, torch.arange(4))]),)),
                                Term("b", 90.0, (Side(3, 0, [(1, torch.arange(3))]),))],
                     0.0, [4, 3])


def test_per_cost_false_keeps_by_score_alone():
    cost = _two_groups()
    # a's units score 1 (0.1 per unit of cost), b's score 2 (0.067 per unit of cost)
    scores = [torch.ones(4), torch.full((3,), 2.0)]
    by_value = allocate(cost, scores, 100.0)
    by_score = allocate(cost, scores, 100.0, per_cost=False)
    assert [int(a.sum()) for a in by_value] == [4, 2]  # one costly b unit goes
    assert [int(a.sum()) for a in by_score] == [1, 3]  # the low-scored a units go
    assert float(cost.total(by_value)) == 100.0 and float(cost.total(by_score)) == 100.0


def test_target_below_the_minimum_cost_is_refused(lenet):
    _, groups, costs = lenet
    for cost in costs.values():
        floor = minimum_cost(cost)
        assert 0 < floor < cost.full
        with pytest.raises(ArchlearnError, match="below what one unit in every group costs"):
            allocate(cost, _scores(groups, seed=4), floor - 1)


@pytest.mark.parametrize("block", [4, 8])
def test_blocks_keep_a_multiple_of_the_block_within_the_budget(lenet, block):
    """``blocks={g: m}``: a pruned group keeps a multiple of ``m`` units, its best ones, and
    the cost stays within the budget on the shrunk model."""
    model, groups, costs = lenet
    cost = costs["macs"]
    scores = _scores(groups, seed=5)
    plain = allocate(cost, scores, 0.3 * cost.full)
    assert int(plain[1].sum()) % block != 0  # the test means something only if it must round
    aligned = allocate(cost, scores, 0.3 * cost.full, blocks={1: block, 2: block})
    for g in (1, 2):
        kept = int(aligned[g].sum())
        assert (kept % block == 0 and kept > 0) or kept == groups[g].size  # whole: untouched
        ranked = torch.argsort(scores[g], descending=True)
        assert bool(aligned[g][ranked[:kept]].all())  # the best units, not any
    assert int(aligned[1].sum()) < groups[1].size
    assert _exact(model, groups, aligned, "macs") <= 0.3 * cost.full
