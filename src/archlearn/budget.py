"""Budgets: a size the shrunk model must land on, reached by a controller during training.

``al.attach(..., budget={"macs": 0.25})`` asks for a quarter of the original's MACs;
``{"params": 40000}`` for at most 40,000 parameters (a value above 1 is absolute, at most 1 a
fraction of the original); ``{"latency": 0.5}`` for half the latency of the per-layer latency
table (``structure/latency_table.py``). How it is reached:

* **A target schedule.** Over the active phase (after ``warmup``, before ``freeze``) the target
  falls from the full model's cost to the budget, cubically (fast first, slow near the end, as
  in Zhu & Gupta's gradual pruning), reaching it at 60% of the phase; it holds until the freeze
  (the rest of the phase lets the multiplier settle).
* **A multiplier** (the Lagrange multiplier of the constraint "cost <= target", as CoFi's
  Lagrangian drives L0 masks to a sparsity): the method's complexity strength (tsrelu's
  ``lambda3``, l0's ``lam``, MorphNet's ``lam``) is multiplied by ``exp(m)``, and after every step
  ``m += rate * clip((cost - target) / target, -1, 1)``. ``cost`` is the cost of the *decision*
  (the model ``shrink`` would return now), or of the method's expected alive units where it has
  them (l0's ``P(gate != 0)``). ``rate`` is ``16 / active steps``: the same trajectory whatever
  the number of epochs. ``m`` starts where no unit is pushed harder than the unweighted default
  (``-log`` of the largest unit weight). A unit crosses its threshold some steps after the push
  that removes it, so while the cost already falls faster than the target (over the last 5% of
  the phase, plus a steady share of the gap left before the freeze) ``m`` is held instead of
  raised: without this hold it kept rising through that delay and the cost overshot the budget
  (LeNet-5, 25% of the MACs: down to 13-17%), and units that tsrelu's binarizer or l0's
  clamped gates have switched off seldom come back.
* **Landing.** At the freeze, the decision is moved onto the budget by the method's own ranking
  of units (``Method.unit_score``, e.g. tsrelu's gate values) with the allocator of one-shot
  compression (``structure/allocate.py``, ``per_cost=False``): the lowest-scored units are
  removed while the cost is above the budget, removed units come back, highest score first,
  while they fit, and a unit too costly to fit (a whole conv channel feeding a large Linear)
  is exchanged against the lowest-scored units of other groups until the cost lies within 2%
  under the budget. A group with every unit off counts the one zeroed unit the shrunk model
  keeps. ``architecture()["budget"]`` reports
  how far the controller alone had come (``controller``) and where the model landed
  (``reached``). Then the gates freeze and the weights recover to the end of training.

**CoFi's Lagrangian** (``attach(..., controller="lagrangian")``, Xia et al., 2022) replaces the
multiplier for methods with an expected cost (l0: ``P(gate != 0)``; tsrelu: its binarized gates,
straight through): the method's complexity term is switched off and the penalty gets
``lambda1 (s - t) + lambda2 (s - t)^2``, ``s`` the expected cost as a fraction of the full
model's (differentiable in the gates), ``t`` the target schedule's. The multipliers move by
gradient *ascent* (Adam with ``maximize=True``, as CoFi's negative learning rate) after every
step: ``lambda1`` rises while the cost is above the target and falls, below zero if need be,
while it is under it, so the penalty pushes the cost *up* again instead of letting it collapse;
``lambda2`` only grows and stiffens the pull toward ``t`` from both sides. Two changes of ours:
the multipliers hold while the cost is within 2% under the target (the landing's tolerance;
Adam would move them at full speed for a gap of 0.1%), and ``lambda1`` restarts from 0 where
the cost crosses the target (anti-windup: it integrated the gap all the way down, and the
gates' lag carried the cost 13% under the target while it unwound; with the restart, 4%: l0
with gate lr 0.1 on an MLP for digits, 40% of the MACs, ``tests/test_lagrangian.py``). A
unit's gate then moves by its own balance of task gradient against ``lambda`` times what it
costs, not all gates at the optimiser's rate.

With ``attach(..., init=...)`` (learning from a decision, ``structure/start.py``) the target
schedule starts from the cost of that decision instead of the full model's (``begin``).

Measured (LeNet-5 and a residual CNN on mnist5k, 20 epochs, tsrelu): reading the decision
extrapolated by the gates' recent velocities (to see removals before the gates cross) made the
controller believe the residual CNN was on target while its gates only hovered, and the landing
had to remove 30% of the MACs at once (validation accuracy 84-86% against 90.6% reading the
decision itself).

>>> parse_budget({"macs": 0.25})
('macs', 0.25)
>>> parse_budget({"params": 40000})
('params', 40000.0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import torch

from archlearn.errors import ArchlearnError
from archlearn.structure.allocate import allocate, below_minimum, minimum_cost
from archlearn.structure.cost import CostModel

BUDGET_KINDS = ("params", "macs", "latency")
REACH = 0.6  # the target reaches the budget at this fraction of the active phase
GAIN = 16.0  # the multiplier's log can move by GAIN over the active phase at full error
WINDOW = 0.05  # of the active phase: how far back the controller looks to see the cost fall
LOG_LIMIT = 30.0
LAGRANGIAN_LR = 1e-2  # Adam's step on CoFi's multipliers (CoFi's reg_learning_rate)
BAND = 0.02  # under the target by at most this fraction of it counts as on it (as the landing)
CONTROLLERS = ("multiplier", "lagrangian")


def parse_budget(budget: Any) -> tuple[str, float]:
    """``(kind, value)`` from ``{"macs": 0.25}``; one ``ArchlearnError`` naming the problem."""
    if not isinstance(budget, dict) or len(budget) != 1:
        raise ArchlearnError(f"budget must be a dict with one of {list(BUDGET_KINDS)} as its "
                             f"only key, e.g. {{'macs': 0.25}}; got {budget!r}")
    (kind, value), = budget.items()
    if kind not in BUDGET_KINDS:
        raise ArchlearnError(f"unknown budget {kind!r}; choose one of {list(BUDGET_KINDS)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or value <= 0:
        raise ArchlearnError(f"budget {kind!r} must be a positive number, got {value!r}")
    if kind == "latency" and value >= 1:
        raise ArchlearnError(f"budget 'latency' is a fraction of the original's latency "
                             f"(0 < value < 1), got {value!r}")
    if value == 1:
        raise ArchlearnError(f"budget {kind!r} of 1 is ambiguous: a fraction below 1 or an "
                             "absolute count above 1")
    return kind, float(value)


class BudgetController:
    """The target schedule, the multiplier and the landing for one budget.

    ``start``/``freeze`` are the steps where the active phase begins and the gates freeze;
    ``begin`` the cost the target schedule starts from (default: the full model's).
    """

    def __init__(self, cost: CostModel, kind: str, value: float, start: float,
                 freeze: float, begin: float | None = None) -> None:
        self.cost, self.kind, self.value = cost, kind, value
        target = value if value > 1 else value * cost.full
        if target >= cost.full:
            raise ArchlearnError(f"budget {kind}={value:g} is not below the model's "
                                 f"{cost.full:.0f} {kind}: nothing to remove")
        if target < minimum_cost(cost):  # said now, not at the freeze after hours of training
            raise ArchlearnError(below_minimum(cost, target))
        self.target = target
        self.begin = cost.full if begin is None else min(max(begin, target), cost.full)
        self.start, self.freeze = start, freeze
        self.rate = GAIN / max(freeze - start, 1.0)
        # start where no unit is pushed harder than the unweighted default, so pruning follows
        # the target instead of racing ahead of it on the costliest units
        top = max((float(w.max()) for w in cost.weights(
            [torch.ones(n, dtype=torch.float64) for n in cost.sizes]) if w.numel()), default=1.0)
        self.log_multiplier = -math.log(top) if top > 1 else 0.0
        self.controller: float | None = None  # cost of the decision at the freeze, before landing
        self.now: float = cost.full
        self.window = max(int(WINDOW * (freeze - start)), 1)
        self.history: deque[float] = deque(maxlen=self.window + 1)

    @property
    def fraction(self) -> float:
        """The budget as a fraction of the full model's cost."""
        return self.target / self.cost.full

    @property
    def multiplier(self) -> float:
        return math.exp(self.log_multiplier)

    def target_at(self, t: float) -> float:
        """The target cost at step ``t``: cubic from ``begin`` (the full cost) to the budget."""
        reach = self.start + REACH * (self.freeze - self.start)
        p = min(max((t - self.start) / max(reach - self.start, 1.0), 0.0), 1.0)
        return self.target + (self.begin - self.target) * (1.0 - p) ** 3

    def update(self, t: float, alive: Sequence[torch.Tensor]) -> None:
        """One controller step: move the multiplier by the relative excess cost of ``alive``."""
        self.now = float(self.cost.total([a.detach().cpu() for a in alive]))
        target = self.target_at(t)
        error = max(-1.0, min(1.0, (self.now - target) / target))
        self.history.append(self.now)
        if error > 0 and len(self.history) > self.window:
            fell = self.now - self.history[0]
            # what the target fell by over the window, plus a steady share of the gap left
            should = target - self.target_at(t - self.window) - max(
                self.now - target, 0.0) * self.window / max(self.freeze - t, self.window)
            if fell < should:  # the cost already falls faster than needed: do not push harder
                error = 0.0
        self.log_multiplier = max(-LOG_LIMIT, min(LOG_LIMIT,
                                                  self.log_multiplier + self.rate * error))

    def land(self, scales: list[torch.Tensor], scores: list[torch.Tensor]) -> list[torch.Tensor]:
        """The decision moved onto the budget by the units' scores (see the module docstring)."""
        self.controller = self.cost.of(scales)
        alive = allocate(self.cost, scores, self.target, per_cost=False,
                         alive=[(s.detach().cpu() != 0).to(torch.float64) for s in scales])
        out = []
        for old, a in zip(scales, alive):
            a = a.to(old.device)
            if not bool((old != 0).any()) and int(a.sum()) == 1 and bool(a[0] > 0):
                out.append(old.clone())  # all off: shrinking keeps one zeroed unit, counted
                continue
            out.append(torch.where(a > 0, torch.where(old != 0, old, torch.ones_like(old)),
                                   torch.zeros_like(old)))
        self.now = self.cost.of(out)
        return out

    def report(self) -> dict[str, Any]:
        """Budget against reached, as fractions of the full model and in absolute terms."""
        return {"kind": self.kind, "budget": self.fraction, "target": self.target,
                "full": self.cost.full,
                "controller": None if self.controller is None else self.controller / self.cost.full,
                "multiplier": self.multiplier}

    def state(self) -> dict[str, Any]:
        return {"log_multiplier": self.log_multiplier, "controller": self.controller,
                "now": self.now, "history": list(self.history)}

    def load(self, state: dict[str, Any]) -> None:
        self.log_multiplier = float(state["log_multiplier"])
        self.controller = None if state["controller"] is None else float(state["controller"])
        self.now = float(state["now"])
        self.history = deque((float(c) for c in state.get("history", [])),
                             maxlen=self.window + 1)


class Lagrangian(BudgetController):
    """CoFi's Lagrangian as the budget's controller (see the module docstring).

    The method's complexity strength is 0 (``multiplier``); :meth:`term` is added to the
    penalty and :meth:`update` moves ``lambda1, lambda2`` by gradient ascent.

    >>> from torch import nn
    >>> from archlearn.structure.groups import find_groups
    >>> from archlearn.structure.cost import build_cost
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> groups, _ = find_groups(net, (torch.zeros(1, 4),))
    >>> lag = Lagrangian(build_cost(net, groups, (torch.zeros(1, 4),), "macs"), "macs", 0.5, 0, 10)
    >>> lag.update(8, [torch.ones(8)])  # at the target's step, the cost is above it: lambda1 rises
    >>> lag.lambdas[0].item() > 0, lag.multiplier
    (True, 0.0)
    """

    def __init__(self, cost: CostModel, kind: str, value: float, start: float, freeze: float,
                 begin: float | None = None, lr: float = LAGRANGIAN_LR) -> None:
        super().__init__(cost, kind, value, start, freeze, begin)
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ArchlearnError(f"the lagrangian controller's lr must be a positive number, "
                                 f"got {lr!r}")
        self.lr = float(lr)
        self.lambdas = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.lambdas], lr=self.lr, maximize=True)
        self.side = 0.0  # the sign of the last gap outside the band

    @property
    def multiplier(self) -> float:
        return 0.0  # the method's own complexity term is off: the Lagrangian replaces it

    def term(self, t: float, alive: Sequence[torch.Tensor]) -> torch.Tensor:
        """``lambda1 (s - t) + lambda2 (s - t)^2`` for the expected alive units ``alive``
        (differentiable in them; on their device, float64)."""
        like = alive[0]
        s = self.cost.total([a.to("cpu") for a in alive]) / self.cost.full
        gap = (s - self.target_at(t) / self.cost.full).to(like.device)
        l1, l2 = self.lambdas.detach().to(like.device)
        return l1 * gap + l2 * gap * gap

    def update(self, t: float, alive: Sequence[torch.Tensor]) -> None:
        """One ascent step on the multipliers: their gradients are ``s - t`` and ``(s - t)^2``."""
        self.now = float(self.cost.total([a.detach().cpu() for a in alive]))
        target = self.target_at(t)
        gap = (self.now - target) / self.cost.full
        if (1.0 - BAND) * target <= self.now <= target:
            # within the landing's tolerance the multipliers hold (no step, not even Adam's
            # momentum): a decision cannot sit exactly on the target, and Adam treats a gap of
            # 0.1% like one of 30% (measured: at 0.397 for a target of 0.4, lambda1 fell to
            # -0.6 in 60 steps and 17 units came back at once)
            return
        if gap * self.side < 0:
            # anti-windup (ours): lambda1 integrated the gap all the way to the target, and
            # the gates' lag carries the cost through it; at the crossing it starts again from 0
            with torch.no_grad():
                self.lambdas[0] = 0.0
            self.optimizer.state.clear()
        self.side = 1.0 if gap > 0 else -1.0
        self.lambdas.grad = torch.tensor([gap, gap * gap], dtype=torch.float64)
        self.optimizer.step()
        self.lambdas.grad = None

    def report(self) -> dict[str, Any]:
        out = super().report()
        out.update(controller_kind="lagrangian", lambda1=float(self.lambdas[0].detach()),
                   lambda2=float(self.lambdas[1].detach()))
        return out

    def state(self) -> dict[str, Any]:
        return {**super().state(), "lambdas": self.lambdas.detach().clone(),
                "lambda_optimizer": self.optimizer.state_dict(), "side": self.side}

    def load(self, state: dict[str, Any]) -> None:
        super().load(state)
        with torch.no_grad():
            self.lambdas.copy_(state["lambdas"])
        self.optimizer.load_state_dict(state["lambda_optimizer"])
        self.side = float(state["side"])


def controller_for(spec: Any) -> tuple[str, dict[str, float]]:
    """``(kind, settings)`` from ``attach``'s ``controller``: ``"multiplier"`` (the default),
    ``"lagrangian"`` or ``{"kind": "lagrangian", "lr": 0.02}``.

    >>> controller_for({"kind": "lagrangian", "lr": 0.02})
    ('lagrangian', {'lr': 0.02})
    """
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, dict) or spec.get("kind") not in CONTROLLERS:
        raise ArchlearnError(f"controller must be one of {list(CONTROLLERS)} (or a dict with "
                             f"'kind' and settings), got {spec!r}")
    settings = {k: v for k, v in spec.items() if k != "kind"}
    allowed = {"multiplier": set(), "lagrangian": {"lr"}}[spec["kind"]]
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ArchlearnError(f"the {spec['kind']} controller has no setting "
                             f"{', '.join(map(repr, unknown))}; settings are {sorted(allowed)}")
    return spec["kind"], settings


__all__ = ["BUDGET_KINDS", "CONTROLLERS", "BudgetController", "Lagrangian", "controller_for",
           "parse_budget"]
