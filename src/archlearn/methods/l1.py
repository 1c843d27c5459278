"""A plain baseline: one gate per unit in [0, 1], an L1 penalty on the gates, a hard threshold.

Every unit of a group gets a gate ``g`` (start 1, its own Adam, clipped to [0, 1] after each
step). The forward pass multiplies the unit by ``g 1[g >= threshold]``: a gate that falls below
the threshold is exactly 0 and its unit is removed by shrinking; the others are folded into the
consumers' weights, so the shrunk model equals the gated one. The penalty is
``lam * sum g`` (the L1 norm, gates being non-negative), divided by the number of gated units
with ``normalize=True``.

This file is the whole method: the package imports every module it holds, so the registry, the
command line, the contract test and the comparison benchmark find it by its name, ``"l1"``.
Measured next to the others: docs/RESULTS.md. The default ``lam=2e-3`` was selected on a
validation split of digits (MLP 128-64, 30 epochs, 3 seeds; ``python -m
benchmarks.select_defaults``, ``lam`` 2e-3/5e-3/1e-2/2e-2): the fewest parameters within 1
point of the most accurate variant, which is itself the only one there (96.2%, sd 0.3, 13,373
params; the previous 5e-3 kept 7,755 at 95.0%).

>>> import archlearn as al, torch
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> learner = al.attach(net, torch.zeros(1, 4), method="l1")
>>> round(learner.penalty().item(), 6)  # lam * 8 gates at 1
0.016
"""

from __future__ import annotations

import torch
from pydantic import Field

from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision


class L1Options(Options):
    lam: float = Field(2e-3, ge=0, description="weight of the L1 norm of the gates")
    threshold: float = Field(0.05, gt=0, lt=1, description="a gate below this is exactly 0")
    normalize: bool = Field(False, description="divide the penalty by the number of gated units")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate of the gates")


@register
class L1Gates(Method[L1Options]):
    """Per-unit gates, L1 penalty, hard threshold."""

    name = "l1"
    Options = L1Options
    controlled = True

    def __init__(self, model, groups, options: L1Options) -> None:
        super().__init__(model, groups, options)
        self.g = [self.new_param(f"{grp.name}.g", self.full(grp.size, 1.0)) for grp in groups]
        self.units = sum(grp.size for grp in groups)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=options.lr)

    def unit_scale(self, i: int) -> torch.Tensor:
        g = self.g[i]
        return g * (g.detach() >= self.options.threshold).to(g.dtype)

    def regularizer(self) -> torch.Tensor:
        if self.cost is None:
            total = torch.stack([g.sum() for g in self.g]).sum()
        else:  # each gate weighted by what its unit costs (cost="params"/"macs"/...)
            total = torch.stack([(self.unit_weights(i) * g).sum()
                                 for i, g in enumerate(self.g)]).sum()
        if self.options.normalize:
            total = total / self.units
        return self.strength(self.options.lam) * total

    def update(self) -> None:
        super().update()
        with torch.no_grad():
            for g in self.g:
                g.clamp_(0.0, 1.0)

    def unit_score(self, i: int) -> torch.Tensor:
        return self.g[i].detach().clone()

    def decision(self) -> list[Decision]:
        with torch.no_grad():
            return [Decision(scale=self.unit_scale(i).clone()) for i in range(len(self.groups))]
