"""L0 regularization with hard-concrete gates (Louizos, Welling & Kingma, ICLR 2018).

Every unit of a group gets a gate ``z = min(1, max(0, s (zeta - gamma) + gamma))`` whose
pre-activation ``s`` follows the hard-concrete distribution:

* training (``model.training``): ``u ~ U(0, 1)``,
  ``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``, so gates are random and exactly 0
  or 1 with non-zero probability, and the reparametrisation passes gradients to ``log_alpha``;
* evaluation (``model.eval()``): the paper's test-time estimator
  ``z = clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1)``, deterministic, exact zeros
  possible. ``decision()`` returns exactly these values: zeros remove units, the rest are folded
  into the consumers' weights, so the shrunk model equals the gated model in eval mode.

The penalty is the expected number of non-zero gates,
``lam * sum_i sigmoid(log_alpha_i - beta log(-gamma / zeta))``, optionally divided by the group's
size (``normalize="group"``) or by the number of gated units (``"all"``). Constants default to the
paper's ``beta = 2/3, gamma = -0.1, zeta = 1.1``.

Design decisions (ours):

* One noise sample per group and per training step: the sample is drawn lazily at the first
  training forward after ``learner.step()`` and reused by every consumer of the group (a group
  with several consumers -- a residual stem -- must see the same gate everywhere) and by any
  further forward before the next ``step()``. The sample is the noise ``u``, not the gate, so every
  forward builds a fresh graph from ``log_alpha``.
* ``lam`` is a per-unit price in units of the task loss with the default ``normalize="none"``: a
  unit survives when it lowers the (mean) task loss by more than about ``lam``. Parameter-count
  weighting is not offered (it over-prunes expensive layers such as LeNet's conv2, see
  research/PITFALLS.md).
* ``log_alpha`` starts at ``log((1 - droprate_init) / droprate_init)`` (the reference code's
  initialisation, without its small noise) and has its own Adam optimizer. The defaults
  (``lam=5e-3, lr=5e-2, droprate_init=0.1``) were selected on a validation split of digits
  (MLP 128-64, 30 epochs, 3 seeds; ``python -m benchmarks.select_defaults``, grid
  ``lam`` 5e-3/1e-2/2e-2 x ``lr`` 1e-2/2e-2/5e-2 x ``droprate_init`` 0.1/0.3): the fewest
  parameters within 1 point of the most accurate variant, 11,263 params at 96.1% (sd 0.9)
  where the previous ``lam=1e-2, lr=2e-2`` kept 12,858 at 96.2% and the best reached 96.7%.
  The method is sensitive to ``lr`` and ``droprate_init``, and the default sits next to the
  edge: at ``lr=5e-2``, ``lam=1e-2`` falls to 94.8% and ``droprate_init=0.3`` empties whole
  layers (29%). Measured: docs/RESULTS.md, "Method defaults selected on validation".
* Started from a decision (``attach(..., init=...)``): kept units start at the usual
  ``log_alpha``, units marked off where ``P(gate != 0)`` is the kept units' ``P(gate = 0)``
  (the eval gate is 0, so the decision is the one given; a unit the task needs can come back).
* With ``controller="lagrangian"`` the expected cost read by CoFi's Lagrangian is the
  cost model's polynomial in ``P(gate != 0)`` (``expected_alive``).
* The noise has its own generator (on the CPU, so a GPU run draws the same samples), seeded by
  ``seed`` or, by default, from torch's global RNG at ``attach``; its state is in the
  checkpoint, so a resumed run draws what the uninterrupted one would.
* Optional freeze (the base schedule): after ``freeze * total_steps`` steps the gates are the
  deterministic eval gates (no noise), the penalty is 0, and the weights fine-tune to the final
  architecture. ``freeze=None`` (default) trains the gates to the end, as in the paper.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision

_EPS = 1e-6


class L0Options(Options):
    lam: float = Field(
        5e-3, ge=0, description="price of one expected non-zero gate (penalty weight)"
    )
    normalize: Literal["none", "group", "all"] = Field(
        "none", description="divide the expected count by nothing, the group size, or all units"
    )
    droprate_init: float = Field(
        0.1, gt=0, lt=1, description="initial drop probability: log_alpha = logit(1 - p)"
    )
    lr: float = Field(5e-2, gt=0, description="Adam learning rate of log_alpha")
    beta: float = Field(2 / 3, gt=0, description="hard-concrete temperature")
    gamma: float = Field(-0.1, lt=0, description="stretch interval lower end (< 0)")
    zeta: float = Field(1.1, gt=1, description="stretch interval upper end (> 1)")
    seed: int | None = Field(
        None, ge=0, description="seed of the gates' noise (default: drawn from torch's RNG)"
    )


@register
class L0(Method[L0Options]):
    """Hard-concrete gates per unit (one ``log_alpha`` vector per group)."""

    name = "l0"
    Options = L0Options
    controlled = True

    def __init__(self, model, groups, options: L0Options) -> None:
        super().__init__(model, groups, options)
        o = options
        init = math.log((1 - o.droprate_init) / o.droprate_init)
        self.log_alpha = [
            self.new_param(f"{g.name}.log_alpha", self.full(g.size, init)) for g in groups
        ]
        self.total_units = sum(g.size for g in groups)
        self._noise: dict[int, torch.Tensor] = {}
        seed = o.seed if o.seed is not None else int(torch.randint(2**62, ()))
        # the noise's own generator (on the CPU: the same draws on every device), checkpointed
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=o.lr)

    def eval_gate(self, i: int) -> torch.Tensor:
        """The deterministic test-time gate of group ``i`` (differentiable in ``log_alpha``)."""
        o = self.options
        s = torch.sigmoid(self.log_alpha[i])
        return (s * (o.zeta - o.gamma) + o.gamma).clamp(0.0, 1.0)

    def unit_scale(self, i: int) -> torch.Tensor:
        if not self.model.training:
            return self.eval_gate(i).detach()
        o = self.options
        u = self._noise.get(i)
        if u is None:
            u = torch.rand(self.groups[i].size, generator=self.generator)
            u = u.clamp(_EPS, 1 - _EPS).to(self.device, self.dtype)
            self._noise[i] = u
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha[i]) / o.beta)
        return (s * (o.zeta - o.gamma) + o.gamma).clamp(0.0, 1.0)

    def prob_nonzero(self, i: int) -> torch.Tensor:
        """P(gate != 0) per unit of group ``i``."""
        o = self.options
        return torch.sigmoid(self.log_alpha[i] - o.beta * math.log(-o.gamma / o.zeta))

    def regularizer(self) -> torch.Tensor:
        o = self.options
        total = self.full((), 0.0)
        if o.lam == 0:
            return total
        weighted = self.cost is not None
        for i, g in enumerate(self.groups):
            p = self.prob_nonzero(i)
            # expected cost with cost="params"/"macs"/... (L0's expected FLOPs), else count
            expected = (self.unit_weights(i) * p).sum() if weighted else p.sum()
            if o.normalize == "group":
                expected = expected / g.size
            total = total + expected
        if o.normalize == "all":
            total = total / self.total_units
        return self.strength(o.lam) * total

    def advanced(self) -> None:
        self._noise.clear()  # a fresh sample per step

    def moved(self) -> None:
        self._noise.clear()

    def decision(self) -> list[Decision]:
        with torch.no_grad():
            return [Decision(scale=self.eval_gate(i).clone()) for i in range(len(self.groups))]

    def unit_score(self, i: int) -> torch.Tensor:
        return self.log_alpha[i].detach().clone()

    def expected_alive(self, i: int) -> torch.Tensor:
        return self.prob_nonzero(i)

    def set_gates(self, alive: list[torch.Tensor]) -> None:
        o = self.options
        on = math.log((1 - o.droprate_init) / o.droprate_init)
        # off: as sure to be 0 as kept units are to be non-zero, P(gate != 0) =
        # sigmoid(log_alpha - beta log(-gamma/zeta)) mirrored, so the expected cost starts at
        # the decision's (kept units alone overstate it by 2%, the budget's tolerance)
        shift = o.beta * math.log(-o.gamma / o.zeta)
        off = 2 * shift - on
        with torch.no_grad():
            for la, a in zip(self.log_alpha, alive):
                la.copy_(torch.where(a > 0, torch.full_like(la, on), torch.full_like(la, off)))

    def soft_alive(self, i: int) -> torch.Tensor:
        # the budget's controller reads the expected cost (P(gate != 0) per unit), as CoFi's
        # Lagrangian does: it moves with log_alpha at once, where the eval gate's zeros come
        # only after log_alpha has travelled from its start to the threshold
        return self.expected_alive(i).detach()

    def extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def check_extra_state(self, state: dict[str, Any]) -> None:
        if "generator" not in state:
            raise ArchlearnError("l0 state does not fit: it has no noise generator state")

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._noise.clear()
