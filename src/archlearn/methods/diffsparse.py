"""Differentiable sparsification (Yognjin Lee, arXiv 1910.03201): units, single weights, cells.

The full text was not reachable and no public code exists (research/PAPERS.md, paper 4), so the
formulation follows the abstract's promise -- "zero out unimportant parameters by directly
optimizing a regularized objective with SGD", no pruning or soft-thresholding step -- and the
recollected equations, with the decisions below recorded as ours.

Per group of ``n`` components, architecture parameters ``beta`` (``n`` reals, start 0):

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
  falls steadily as ``lam`` grows. The default stays ``lam=5``: on a validation split of digits
  (MLP 128-64, 30 epochs, 3 seeds; ``python -m benchmarks.select_defaults``, ``lam``
  1/2/5/10/20) the criterion (the fewest parameters within 1 point of the most accurate
  variant) picks the grid's largest, ``lam=20`` (5,701 params at 95.5%, sd 0.9, against 9,418
  at 95.7% for 5 and 96.0% for 2), and it does not carry over to the BatchNorm MLP: there, on
  the same validation split, ``lam`` 2/5/10/20 reach 92.1/92.3/86.0/76.1% (sd 3.7/1.1/6.7/5.1),
  and ``lam=20`` fails the contract test's 90% floor (tests/test_method_contract.py). So the
  selection is not taken. Measured: docs/RESULTS.md, "Method defaults selected on
  validation".
* The regularizer of each group is divided by its value at the uniform point, ``n^(1-p)``
  (``normalize=True``): every group then contributes between ``n^(p-1)`` and 1, so wide layers
  do not dominate ``lam``.
* ``beta`` has its own optimizer (Adam by default, ``optimizer="sgd"`` for the paper's plain SGD).
* Optional ``freeze`` (the base schedule, a fraction of ``total_steps``): after it the gates are
  fixed and the penalty is 0, so the weights fine-tune to the final architecture. Default: never.

What a group is (``mode``), the paper's three uses:

* ``"units"`` (default): the coupled units of a layer (channels); a unit's scale multiplies its
  channels at the consumers' inputs, and zeros remove units (a smaller dense model).
* ``"weights"`` (unstructured): the weights of one output unit -- a row of a Linear's weight, all
  ``in x kh x kw`` inputs of a conv filter -- of every Linear/Conv layer, the output layer
  included. Each weight gets ``scale``; the layer computes with ``W * scale``
  (``structure/weight_gates.py``), and shrinking folds it: exact zeros, kept by a mask, in a
  model of the same shapes (``nonzero_params`` in ``architecture()`` and ``al.measure``).
  Regularizer: per layer, the *mean* of its rows' normalised terms, so each layer weighs at
  most 1 as a group does in ``"units"`` (the same ``lam`` then means about the same pressure).
  ``beta`` with plain SGD needs a learning rate tuned per layer width (a weight's share is
  about ``1/n``, and so is its gradient); the default Adam does not.
* ``"cell"``: the incoming edges of each node of a cell whose modules declare ``node_inputs()``
  (:class:`archlearn.graphs.DagCell`: per node, its conv and the input channels each edge
  feeds). An edge's scale multiplies its block of the node's weights; exact zeros cut edges,
  and the cell's learned connectivity is read off the shrunk model
  (``DagCell.learned_graph()``). A node keeps at least one input (``renorm="max"``).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision
from archlearn.structure.weight_gates import gateable_layers, weight_of


class DiffSparseOptions(Options):
    mode: Literal["units", "weights", "cell"] = Field(
        "units", description="groups: units of a layer, a unit's weights, a cell node's inputs"
    )
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


def _scale(shares: torch.Tensor, options: DiffSparseOptions) -> torch.Tensor:
    """Thresholded, renormalised scales of groups along the last dimension of ``shares``."""
    n = shares.shape[-1]
    g = torch.relu(shares - options.threshold / n)
    if options.renorm == "max":
        return g / g.amax(-1, keepdim=True)
    return g * (n / g.sum(-1, keepdim=True))


def _lp(shares: torch.Tensor, options: DiffSparseOptions) -> torch.Tensor:
    """``||a||_p^p`` of each group along the last dimension (normalised by ``n^(1-p)``)."""
    term = shares.pow(options.p).sum(-1)
    return term / shares.shape[-1] ** (1 - options.p) if options.normalize else term


@register
class DiffSparse(Method[DiffSparseOptions]):
    """Softmax-normalised, thresholded scales with an l_p (p < 1) regularizer."""

    name = "diffsparse"
    Options = DiffSparseOptions
    variants = {"weights": {"mode": "weights"}}  # "cell" needs a DagCell: test_method_diffsparse

    def __init__(self, model, groups, options: DiffSparseOptions) -> None:
        super().__init__(model, groups, options)
        o = options
        self.beta: list[torch.Tensor] = []
        self.blocks: dict[str, torch.Tensor] = {}  # cell mode: input channel -> edge index
        if o.mode == "units":
            self.beta = [self.new_param(f"{g.name}.beta", self.full(g.size, 0.0))
                         for g in groups]
        elif o.mode == "weights":
            self.weight_modules = gateable_layers(model)
            for name in self.weight_modules:
                w = weight_of(model, name)
                self.beta.append(self.new_param(f"{name}.beta",
                                                self.full((w.shape[0], w[0].numel()), 0.0)))
        else:
            self._cell_groups(model)
        self.index = {name: i for i, name in enumerate(self.weight_modules)}
        if o.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.parameters(), lr=o.lr)
        else:
            self.optimizer = torch.optim.SGD(self.parameters(), lr=o.lr)

    def _cell_groups(self, model) -> None:
        """One group per node of every module declaring ``node_inputs()``: its input edges."""
        for prefix, module in model.named_modules():
            if not callable(getattr(module, "node_inputs", None)):
                continue
            for rel, edges in module.node_inputs().items():
                name = f"{prefix}.{rel}" if prefix else rel
                weight = weight_of(model, name)
                edge_of = torch.full((weight.shape[1],), -1, dtype=torch.long,
                                     device=weight.device)
                for e, (_, start, stop) in enumerate(edges):
                    edge_of[start:stop] = e
                if (edge_of < 0).any():
                    raise ArchlearnError(f"node_inputs of {name!r} leave input channels out")
                self.weight_modules.append(name)
                self.blocks[name] = edge_of
                self.beta.append(self.new_param(f"{name}.beta", self.full(len(edges), 0.0)))
        if not self.weight_modules:
            raise ArchlearnError(
                "diffsparse mode 'cell' needs a module with node_inputs() "
                "(e.g. archlearn.graphs.DagCell); this model has none"
            )

    def shares(self, i: int) -> torch.Tensor:
        """``a = softmax(beta)`` of group(s) ``i`` (each sums to 1 along the last dimension)."""
        return torch.softmax(self.beta[i], dim=-1)

    def _scale(self, i: int) -> torch.Tensor:
        return _scale(self.shares(i), self.options)

    def weight_scale(self, name: str) -> torch.Tensor:
        scale = self._scale(self.index[name])
        w = weight_of(self.model, name)
        if self.options.mode == "cell":  # one scale per edge -> its block of input channels
            edge_of = self.blocks[name]
            if edge_of.device != scale.device:
                self.blocks[name] = edge_of = edge_of.to(scale.device)
            return scale[edge_of].expand(w.shape[0], -1)
        return scale.reshape(w.shape)

    def unit_scale(self, i: int) -> torch.Tensor:
        if self.options.mode != "units":
            return self.full(self.groups[i].size, 1.0)
        return self._scale(i)

    def regularizer(self) -> torch.Tensor:
        o = self.options
        total = self.full((), 0.0)
        if o.lam == 0:
            return total
        for i in range(len(self.beta)):
            total = total + _lp(self.shares(i), o).mean()  # "weights": mean of a layer's rows
        return o.lam * total

    def decision(self) -> list[Decision]:
        with torch.no_grad():
            if self.options.mode == "units":
                return [Decision(scale=self._scale(i).clone()) for i in range(len(self.groups))]
            out = [Decision(scale=self.full(g.size, 1.0)) for g in self.groups]
            out[0].weights = {n: self.weight_scale(n).clone() for n in self.weight_modules}
            return out
