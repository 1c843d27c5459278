"""Differentiable sparsification (Yognjin Lee, arXiv 1910.03201), structured: units of a layer.

The full text was not reachable and no public code exists (research/PAPERS.md, paper 4), so the
formulation follows the abstract's promise -- "zero out unimportant parameters by directly
optimizing a regularized objective with SGD", no pruning or soft-thresholding step -- and the
recollected equations, with the decisions below recorded as ours.

Per group of ``n`` coupled units, architecture parameters ``beta`` (``n`` reals, start 0):

    alpha_i = exp(beta_i),   a_i = alpha_i / sum_j alpha_j          (a softmax: on the simplex)
    g_i = relu(a_i - tau),   tau = threshold / n                     (exact zeros)
    scale_i = g_i / max_j g_j                                        (renormalised, see below)

and the regularizer ``lam * sum_groups ||a||_p^p`` with ``0 < p < 1`` (default 0.5). On the
simplex the l1 norm is the constant 1, and ``||a||_p^p`` with ``p < 1`` is smallest at the
corners, so the regularizer concentrates each group's mass on few units; units whose share drops
below ``tau`` get a gate of exactly 0 while their ``beta`` still receives gradient through the
normalisation (a unit can come back). Plain gradient steps reach exact zeros; there is no pruning
step, and ``decision()`` just reads the gates.

Design decisions (ours):

* ``tau = threshold / n`` scales with the group size: a unit is off when its share is below
  ``threshold`` times the uniform share ``1/n``. A fixed ``tau`` would mean very different things
  for a 10-unit and a 500-unit layer (and could switch off a whole wide layer at the start).
* Renormalisation ``scale = g / max(g)`` (``renorm="max"``, default): a dense, uniform group has
  scale exactly 1, so attaching the method does not change the network's function at step 0,
  scales stay in [0, 1], and the largest unit of every group has scale 1 -- because
  ``max_i a_i >= 1/n > tau`` for ``threshold < 1``, a layer can never vanish. The task loss then
  pulls the shares of useful units up toward the largest (a larger scale) while the regularizer
  concentrates them, a clean trade-off set by ``lam``. The alternative ``renorm="sum"``
  (``scale = n g / sum(g)``, also 1 when dense) lets the survivors' scales grow as ``n / k``; the
  task loss itself then rewards concentration (larger activations), so sparsity followed the
  learning rate more than ``lam`` (measured on digits: with ``lam=0`` Adam already pruned
  much, and SGD at a large learning rate collapsed the net), while with ``"max"`` the width
  falls steadily as ``lam`` grows. The default ``lam=5`` was picked on digits; measured:
  docs/RESULTS.md, "Each method's defaults and variants on digits"
  (``python -m benchmarks.method_settings``).
* The regularizer of each group is divided by its value at the uniform point, ``n^(1-p)``
  (``normalize=True``): every group then contributes between ``n^(p-1)`` and 1, so wide layers
  do not dominate ``lam``.
* ``beta`` has its own optimizer (Adam by default, ``optimizer="sgd"`` for the paper's plain SGD).
* Optional ``freeze`` (the base schedule, a fraction of ``total_steps``): after it the gates are
  fixed and the penalty is 0, so the weights fine-tune to the final architecture. Default: never.
* Only the structured mode (units/channels) is implemented. The paper's unstructured mode
  (individual connections) produces masks the shrinking pipeline cannot turn into smaller dense
  layers; use ``archlearn.prune`` for unstructured sparsity.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision


class DiffSparseOptions(Options):
    lam: float = Field(5.0, ge=0, description="weight of the l_p regularizer")
    p: float = Field(0.5, gt=0, lt=1, description="exponent of the regularizer, 0 < p < 1")
    threshold: float = Field(
        0.5, ge=0, lt=1, description="tau = threshold / n: off below this share of uniform"
    )
    renorm: Literal["max", "sum"] = Field(
        "max", description="scale = g / max(g) in [0, 1], or n g / sum(g); both 1 when dense"
    )
    normalize: bool = Field(True, description="divide each group's ||a||_p^p by n^(1-p)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimizer of beta")
    lr: float = Field(1e-2, gt=0, description="learning rate of beta")


@register
class DiffSparse(Method[DiffSparseOptions]):
    """Softmax-normalised, thresholded unit scales with an l_p (p < 1) regularizer."""

    name = "diffsparse"
    Options = DiffSparseOptions

    def __init__(self, model, groups, options: DiffSparseOptions) -> None:
        super().__init__(model, groups, options)
        o = options
        self.beta = [self.new_param(f"{g.name}.beta", self.full(g.size, 0.0)) for g in groups]
        if o.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.parameters(), lr=o.lr)
        else:
            self.optimizer = torch.optim.SGD(self.parameters(), lr=o.lr)

    def shares(self, i: int) -> torch.Tensor:
        """``a = softmax(beta)`` of group ``i`` (sums to 1)."""
        return torch.softmax(self.beta[i], dim=0)

    def unit_scale(self, i: int) -> torch.Tensor:
        n = self.groups[i].size
        g = torch.relu(self.shares(i) - self.options.threshold / n)
        if self.options.renorm == "max":
            return g / g.max()
        return g * (n / g.sum())

    def regularizer(self) -> torch.Tensor:
        o = self.options
        total = self.full((), 0.0)
        if o.lam == 0:
            return total
        for i, g in enumerate(self.groups):
            term = self.shares(i).pow(o.p).sum()
            if o.normalize:
                term = term / g.size ** (1 - o.p)
            total = total + term
        return o.lam * total

    def decision(self) -> list[Decision]:
        with torch.no_grad():
            return [Decision(scale=self.unit_scale(i).clone()) for i in range(len(self.groups))]
