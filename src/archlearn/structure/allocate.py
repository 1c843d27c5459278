"""Which units to keep under a budget: a knapsack over the exact cost model.

Each unit has a score (how much keeping it is worth) and a marginal cost (what removing it saves
now: ``CostModel.weights`` at the current widths, so a channel read by a layer that is itself
half pruned costs half as much). :func:`allocate` is a greedy knapsack with exchange moves:

1. **remove**: the units with the lowest value (score per unit of marginal cost, or the score
   alone with ``per_cost=False``) go first, in batches that cover half the remaining excess,
   the marginal costs re-read after each batch, until the exact cost is within the budget;
2. **fill**: removed units come back, best value first, each one whose exact cost still fits;
3. **exchange**: while the cost is more than ``tolerance`` under the budget, a removed unit too
   costly to fit (a whole conv channel feeding a large Linear) comes back against the
   lowest-valued units of the other groups, the budget those free beyond the need is filled
   again, and the trial is kept when it uses more of the budget;
4. **blocks** (optional, ``blocks={group: m}``): a pruned group keeping at least ``m`` units
   is rounded down to a multiple of ``m`` (its best units), and the budget this frees comes
   back in blocks of ``m`` units, best block value first (CPU matrix multiplies run faster on
   aligned widths).

A group never loses its last unit (the shrunk model keeps one, so it is counted), which makes
the cost of the allocation the exact cost of the shrunk model. The same code lands learned
runs on their budget (``budget.py``) and allocates one-shot compression (``archlearn.compression``).

>>> from archlearn.structure.cost import CostModel, Side, Term
>>> two = CostModel("params", [Term("a", 10.0, (Side(4, 0, [(0, torch.arange(4))]),)),
...                            Term("b", 60.0, (Side(2, 0, [(1, torch.arange(2))]),))], 0.0, [4, 2])
>>> alive = allocate(two, [torch.tensor([4., 3, 2, 1]), torch.tensor([9., 1])], target=40.0)
>>> [a.tolist() for a in alive], float(two.total(alive))
([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0]], 40.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archlearn.errors import ArchlearnError
from archlearn.structure.cost import CostModel

TOLERANCE = 0.02  # the allocation lands within 2% under the budget wherever units allow
EXCHANGE_TRIES = 256  # removed units tried for an exchange, best first


def minimum_cost(cost: CostModel) -> float:
    """The cost with one unit left in every group: no allocation goes below it."""
    return float(cost.total([_one(n) for n in cost.sizes]))


def below_minimum(cost: CostModel, target: float, floor: float | None = None) -> str:
    """Why a budget cannot be met: one unit in every group already costs more."""
    floor = minimum_cost(cost) if floor is None else floor
    return (f"a {cost.kind} budget of {target:.6g} ({target / cost.full:.1%} of the model's "
            f"{cost.full:.6g}) is below what one unit in every group costs ({floor:.6g}, "
            f"{floor / cost.full:.1%}); choose a budget of at least {floor / cost.full:.3f}")


def allocate(
    cost: CostModel,
    scores: Sequence[torch.Tensor],
    target: float,
    *,
    alive: Sequence[torch.Tensor] | None = None,
    per_cost: bool = True,
    tolerance: float = TOLERANCE,
    blocks: dict[int, int] | None = None,
) -> list[torch.Tensor]:
    """Alive vectors (1 kept, 0 removed, float64) whose exact cost is at most ``target``.

    ``scores[i]`` ranks the units of group ``i`` (higher: kept first); ``alive`` is where to
    start (default: every unit); ``blocks[i] = m``: group ``i``, when pruned, keeps a multiple
    of ``m`` units. Raises :class:`ArchlearnError` when even one unit per group costs more than
    ``target``.
    """
    floor = minimum_cost(cost)
    if floor > target:
        raise ArchlearnError(below_minimum(cost, target, floor))
    score = [s.detach().cpu().to(torch.float64).clamp_min(0) for s in scores]
    start = alive if alive is not None else [torch.ones(n) for n in cost.sizes]
    state = [a.detach().cpu().to(torch.float64).clone() for a in start]
    for a in state:
        if a.numel() and not a.any():
            a[0] = 1.0  # the shrunk model keeps one unit: count it
    picker = _Picker(cost, score, per_cost)
    state = picker.remove(state, target)
    state = picker.fill(state, target)
    if float(cost.total(state)) < (1 - tolerance) * target:
        state = picker.exchange(state, target, tolerance)
        state = picker.fill(state, target)
    if blocks:
        state = picker.blocks(state, target, blocks)
    return state


def _one(n: int) -> torch.Tensor:
    a = torch.zeros(n, dtype=torch.float64)
    if n:
        a[0] = 1.0
    return a


class _Picker:
    """The value of every unit at the current widths, and the three moves."""

    def __init__(self, cost: CostModel, score: list[torch.Tensor], per_cost: bool) -> None:
        self.cost, self.score, self.per_cost = cost, score, per_cost

    def _marginal(self, alive: list[torch.Tensor]) -> list[torch.Tensor]:
        return [w.clamp_min(0) * self.cost.scale for w in self.cost.weights(alive)]

    def _value(self, g: int, marginal: list[torch.Tensor]) -> torch.Tensor:
        s = self.score[g]
        if not self.per_cost:
            return s
        # a free unit is worth keeping whatever its score
        return torch.where(marginal[g] > 0, s / marginal[g].clamp_min(1e-300),
                           torch.full_like(s, float("inf")))

    def _ranked(self, alive, marginal, on: bool, skip: int | None = None):
        """(value, marginal cost, group, unit) of alive (``on``) or removed units, worst first
        for removal, best first for restoring."""
        rows = []
        for g, a in enumerate(alive):
            if g == skip:
                continue
            value = self._value(g, marginal)
            for u in torch.nonzero(a > 0 if on else a == 0).flatten().tolist():
                rows.append((float(value[u]), float(marginal[g][u]), g, u))
        # removal: lowest value first, costliest first among equals; restoring: the reverse
        rows.sort(key=(lambda r: (r[0], -r[1])) if on else (lambda r: (-r[0], r[1])))
        return rows

    def remove(self, alive: list[torch.Tensor], target: float) -> list[torch.Tensor]:
        for _ in range(10_000):
            now = float(self.cost.total(alive))
            if now <= target:
                return alive
            marginal = self._marginal(alive)
            left = [int(a.sum()) for a in alive]
            goal, saved, changed = (now - target) / 2, 0.0, False
            for _, m, g, u in self._ranked(alive, marginal, on=True):
                if left[g] <= 1:
                    continue
                alive[g][u] = 0.0
                left[g] -= 1
                saved += m
                changed = True
                if saved >= goal:
                    break
            if not changed:
                break
        return alive

    def fill(self, alive: list[torch.Tensor], target: float) -> list[torch.Tensor]:
        now = float(self.cost.total(alive))
        if now > target:
            return alive
        marginal = self._marginal(alive)
        for _, m, g, u in self._ranked(alive, marginal, on=False):
            if now + m > target * (1 + 1e-12) and m > 0:
                continue  # does not fit at today's widths (and marginal costs only grow)
            alive[g][u] = 1.0
            after = float(self.cost.total(alive))
            if after > target:
                alive[g][u] = 0.0
                continue
            now = after
        return alive

    def exchange(self, alive: list[torch.Tensor], target: float,
                 tolerance: float) -> list[torch.Tensor]:
        """Bring back a costly removed unit against the lowest-valued units of the other groups
        (its own would only swap like for like), fill what that frees beyond the need, and keep
        the trial when the cost then lands closer to the budget (never above it)."""
        marginal = self._marginal(alive)
        for _, m, g, u in self._ranked(alive, marginal, on=False)[:EXCHANGE_TRIES]:
            now = float(self.cost.total(alive))
            if now >= (1 - tolerance) * target:
                break
            need = now + m - target
            if need <= 0:
                continue  # fits as it is: fill's business
            trial = [a.clone() for a in alive]
            trial[g][u] = 1.0
            marginal_t = self._marginal(trial)
            left = [int(a.sum()) for a in trial]
            freed = 0.0
            for _, mv, h, v in self._ranked(trial, marginal_t, on=True, skip=g):
                if freed >= need:
                    break
                if left[h] <= 1:
                    continue
                trial[h][v] = 0.0
                left[h] -= 1
                freed += mv
            if float(self.cost.total(trial)) > target:
                continue
            # the last unit out may free far more than the need (a score ranking ignores
            # cost): without this fill the trial lands below ``now`` and is thrown away
            trial = self.fill(trial, target)
            if now < float(self.cost.total(trial)) <= target:
                alive = trial
        return alive

    def blocks(self, alive: list[torch.Tensor], target: float,
               blocks: dict[int, int]) -> list[torch.Tensor]:
        """Pruned groups of ``blocks`` rounded down to a multiple of their block, then whole
        blocks of their next best units back, best score per unit of cost first, while the
        total fits."""
        which = {g: m for g, m in blocks.items()
                 if m <= int(alive[g].sum()) < len(alive[g])}
        for g, m in which.items():
            best = torch.argsort(self.score[g], descending=True)[:int(alive[g].sum()) // m * m]
            alive[g] = torch.zeros_like(alive[g]).index_fill_(0, best, 1.0)
        while True:
            now, pick = float(self.cost.total(alive)), None
            for g, m in which.items():
                off = torch.nonzero(alive[g] == 0).flatten()
                if len(off) < m:
                    continue
                block = off[torch.argsort(self.score[g][off], descending=True)[:m]]
                alive[g][block] = 1.0  # tried in place, undone below
                after = float(self.cost.total(alive))
                alive[g][block] = 0.0
                value = float(self.score[g][block].sum()) / max(after - now, 1e-300)
                if after <= target and (pick is None or value > pick[0]):
                    pick = (value, g, block)
            if pick is None:
                return alive
            alive[pick[1]][pick[2]] = 1.0


__all__ = ["TOLERANCE", "allocate", "below_minimum", "minimum_cost"]
