"""Architecture learning with the tri-state ReLU (Srinivas & Babu, BMVC 2016).

``tsReLU(x) = w' x`` for ``x >= 0`` and ``w' d' x`` otherwise, with a width gate ``w`` per unit
(per channel for convolutions) and a depth gate ``d`` per layer; the forward pass uses the
binarized ``w' = 1[w >= 0.5]`` (likewise ``d'``) and gradients reach ``w`` and ``d`` straight
through. The penalty is the paper's:

    lambda1 sum w(1-w) + lambda2 sum d(1-d)              (binarizing)
    + lambda3 sum_i h_i 1[d_i < 0.5] - lambda4 sum_i d_i   (model complexity, h_i = sum_j w_ij)

and gates are clipped to [0, 1] after each step. Defaults follow the paper's heuristics:
lambda2 = lambda1/10, lambda4 = lambda3/10, lambda3 = k lambda1 with 0 < k < 1.

Initialisation and schedule (our decisions, measured on LeNet/mnist5k: docs/RESULTS.md):

* Gates start *inside the basin* of the binarizer rather than at 1. With lambda3 = k lambda1 the
  penalty's gradient on a width gate is ``lambda1 (1 - 2w) + lambda3``, which vanishes at
  ``w* = (1 + k) / 2``: above it the binarizer pushes the gate to 1 and nothing prunes (the trap
  of starting at 1 with k < 1), below it the gate drifts to 0 unless the task loss holds it up.
  Starting at ``init_width`` = 0.6 (on, since >= 0.5, and below w* = 0.7 for k = 0.4) lets the
  task loss decide every unit, exactly the paper's ratio of lambdas.
* Depth gates start *linear* (``init_depth`` = 0.9) by default. Started as a ReLU (0.4), with
  the paper's lambda4 = lambda3/10, nothing pulls a layer toward the identity: LeNet's fc layer
  never became linear. Started linear, it stays linear unless the loss needs the non-linearity:
  LeNet's fc layer stays linear and merges (AL1/AL3 in docs/RESULTS.md, table 3.1). An MLP,
  whose only non-linearities are these layers, also stays linear and loses accuracy, which is
  why ``depth`` defaults to "none". For deep stacks (table 3.2) start the gates as ReLUs and
  set lambda4 = lambda3: layers then turn linear one by one where the loss allows (docs/
  RESULTS.md, "Depth selection").
* Gates have their own Adam optimizer (scale-free steps, so lambda reads as "how strong a
  gradient a unit needs to stay") and are frozen after ``freeze`` of the training (a fraction
  of ``total_steps``, never a fixed count): units near 0.5 otherwise flicker, and the net shrunk
  at the last step loses random units. The weights keep training after the freeze, which is the
  fine-tuning the paper gets from training on.
* ``init_width`` = 0.6 and ``freeze`` = 0.65 are confirmed on a validation split (mnist5k's
  500 stratified rows, LeNet-5 at 25% MACs, 10 epochs, 3 seeds; ``python -m
  benchmarks.select_defaults``, ``init_width`` 0.55/0.6/0.65 x ``freeze`` 0.5/0.65/0.8): every
  variant lands on the budget, and the most accurate (0.55, 0.65: 96.9%, sd 0.5) beats the
  default (96.7%, sd 0.6) by less than the seed spread.
* Started from a decision (``attach(..., init=...)``): kept units at ``init_width``, units
  marked off as far below the threshold (``1 - init_width``, at most 0.4). A unit whose gate
  is learned has a gradient through the straight-through binarizer even while off, so it can
  come back.
* With ``controller="lagrangian"`` the expected cost read by CoFi's Lagrangian is the cost of
  the binarized gates, its gradient reaching ``w`` straight through, and ``lambda3`` is off.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision


class _Binarize(torch.autograd.Function):
    """1[x >= 0.5] forward, identity backward (straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return (x >= 0.5).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


def binarize(x: torch.Tensor) -> torch.Tensor:
    """Binarized gate with straight-through gradient.

    >>> binarize(torch.tensor([0.2, 0.5, 0.9]))
    tensor([0., 1., 1.])
    """
    return _Binarize.apply(x)


class TSReLUOptions(Options):
    lambda1: float = Field(5e-3, ge=0, description="binarizing strength for width gates")
    k: float = Field(0.4, gt=0, lt=1, description="lambda3 = k * lambda1 when lambda3 is unset")
    lambda2: float | None = Field(None, ge=0, description="default lambda1 / 10")
    lambda3: float | None = Field(None, ge=0, description="default k * lambda1")
    lambda4: float | None = Field(None, ge=0, description="default lambda3 / 10")
    width: Literal["all", "none"] | list[str] = "all"
    depth: Literal["all", "none"] | list[str] = "none"
    lr: float = Field(2e-3, gt=0)
    init_width: float = Field(0.6, ge=0.5, le=1)
    init_depth: float = Field(0.9, ge=0, le=1)
    freeze: float | None = Field(
        0.65, gt=0, le=1, description="fraction of total_steps, then gates freeze (None: never)"
    )


@register
class TSReLU(Method[TSReLUOptions]):
    """Width and depth gates of the tri-state ReLU."""

    name = "tsrelu"
    Options = TSReLUOptions
    controlled = True

    def __init__(self, model, groups, options: TSReLUOptions) -> None:
        super().__init__(model, groups, options)
        o = options
        self.lambda1 = o.lambda1
        self.lambda2 = o.lambda1 / 10 if o.lambda2 is None else o.lambda2
        self.lambda3 = o.k * o.lambda1 if o.lambda3 is None else o.lambda3
        self.lambda4 = self.lambda3 / 10 if o.lambda4 is None else o.lambda4
        names = [g.name for g in groups]
        self.learn_width = _select(o.width, names, "width")
        self.learn_depth = _select(o.depth, [g.name for g in groups if g.depth], "depth")
        self.w: dict[int, torch.Tensor] = {}
        self.d: dict[int, torch.Tensor] = {}
        for i, g in enumerate(groups):
            if g.name in self.learn_width:
                self.w[i] = self.new_param(f"{g.name}.w", self.full(g.size, o.init_width))
            if g.name in self.learn_depth:
                self.d[i] = self.new_param(f"{g.name}.d", self.full((), o.init_depth))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=o.lr) if self.params else None

    def unit_scale(self, i: int) -> torch.Tensor:
        w = self.w.get(i)
        if w is None:
            return self.full(self.groups[i].size, 1.0)
        return binarize(w)

    def depth_scale(self, i: int) -> torch.Tensor | None:
        d = self.d.get(i)
        return None if d is None else binarize(d)

    def regularizer(self) -> torch.Tensor:
        total = self.full((), 0.0)
        if not self.params:
            return total
        lambda3 = self.strength(self.lambda3)  # a budget's controller scales it
        weighted = self.cost is not None
        for i, g in enumerate(self.groups):
            w, d = self.w.get(i), self.d.get(i)
            if w is not None:
                total = total + self.lambda1 * (w * (1 - w)).sum()
            # h_i: units kept, each weighted by what it costs with cost="params"/"macs"/...
            if w is None:
                h = self.unit_weights(i).sum() if weighted else float(g.size)
            else:
                h = (self.unit_weights(i) * w).sum() if weighted else w.sum()
            # 1[d < 0.5] is a constant w.r.t. d; a tensor, so no host sync and no graph break
            nonlinear = 1.0 if d is None else (d.detach() < 0.5).to(d.dtype)
            total = total + lambda3 * h * nonlinear
            if d is not None:
                total = total + self.lambda2 * d * (1 - d) - self.lambda4 * d
        return total

    def update(self) -> None:
        super().update()
        with torch.no_grad():
            for p in self.parameters():
                p.clamp_(0.0, 1.0)

    def expected_alive(self, i: int) -> torch.Tensor:
        w = self.w.get(i)
        return self.full(self.groups[i].size, 1.0) if w is None else binarize(w)

    def set_gates(self, alive: list[torch.Tensor]) -> None:
        on = self.options.init_width
        off = min(1.0 - on, 0.4)  # never nearer the threshold than 0.1
        for i, (g, a) in enumerate(zip(self.groups, alive)):
            w = self.w.get(i)
            if w is None:
                if not bool((a > 0).all()):
                    raise ArchlearnError(f"tsrelu does not learn the width of {g.name} (option "
                                         "width), so init cannot remove its units")
                continue
            with torch.no_grad():
                w.copy_(torch.where(a > 0, torch.full_like(w, on), torch.full_like(w, off)))

    def unit_score(self, i: int) -> torch.Tensor:
        w = self.w.get(i)
        return self.full(self.groups[i].size, 1.0) if w is None else w.detach().clone()

    def decision(self) -> list[Decision]:
        out = []
        for i, g in enumerate(self.groups):
            w, d = self.w.get(i), self.d.get(i)
            scale = (w.detach() >= 0.5).to(self.dtype) if w is not None else self.full(g.size, 1.0)
            out.append(Decision(scale=scale, linear=bool(d is not None and d.item() >= 0.5)))
        return out


def _select(choice, names: list[str], what: str) -> set[str]:
    if choice == "all":
        return set(names)
    if choice == "none":
        return set()
    unknown = sorted(set(choice) - set(names))
    if unknown:
        raise ArchlearnError(
            f"tsrelu option {what!r}: no {what}-learnable layer named {unknown}; "
            f"candidates are {names}"
        )
    return set(choice)
