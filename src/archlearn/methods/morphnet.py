"""MorphNet's resource regularizer (Gordon et al., CVPR 2018): cost-weighted L1 on channel scales.

Each unit has a *scale* that training can drive to zero: its BatchNorm's ``|gamma|``
(MorphNet's ``GammaFlopsRegularizer``) or, for a group without BatchNorm, the root-mean-square
of its producers' output weights (the group-lasso variant, ``GroupLassoFlopsRegularizer``).
The penalty is

    lam * sum_units c_u * scale_u

where ``c_u`` is the unit's weight from the cost model (``structure/cost.py``): the derivative
of the model's MACs (or params, latency) with respect to the unit being alive, at the current
alive counts. For a layer with ``n_in`` alive inputs and ``n_out`` alive outputs this is
MorphNet's ``n_alive_in * sum(reg_out) + n_alive_out * sum(reg_in)``: a channel is charged for
what it costs in its producers and its consumers, at their current widths (alive = scale above
``threshold``), recomputed after every step.

Design decisions (ours):

* The penalty is applied as a proximal step (soft-thresholding) after each optimizer step:
  ``scale_u <- max(scale_u - lam * c_u, 0)``, by rescaling the unit's gamma (or its producing
  weight rows), rather than as a loss term through the user's optimizer (``penalty()`` is 0).
  Same objective, but an optimizer-independent step: under Adam a loss-term L1 is rescaled per
  parameter, a scale moves at most ``lr`` per step whatever ``lam`` is, and in a short run it
  never reaches the threshold (measured: digits, 30 epochs, Adam at 1e-3: nothing pruned).
  ``lam`` is thus the decrease per step of a unit of mean cost's normalised scale.

* The gate is the keep mask, applied at the consumers' inputs like every method: all ones in
  training mode until the freeze (plain training with the penalty, as MorphNet trains), the
  current mask in eval mode (so an evaluation shows the pruned net and shrinking is exact).
  At ``freeze`` (default 0.7 of the run) the mask is fixed and the rest of the run fine-tunes
  the pruned net (MorphNet retrains the found architecture; here it continues from the weights).
* A group with several BatchNorms (a residual stem) uses the mean ``|gamma|`` over them as its
  scale (MorphNet groups them with a max; the mean lets the penalty reach every member).
* Scales are divided by their group's mean scale at ``attach``, so the threshold and a budget's
  ranking compare units of different layers fairly: a BatchNorm's ``|gamma|`` starts at 1 (no
  change), while the weight norms of a conv with 25 inputs per channel and of a Linear with 800
  differ by 5x at initialisation.
* A unit is alive while its scale is above ``threshold`` (default 1e-2, MorphNet's
  ``gamma_threshold``) times the largest scale of its group. Relative, because a BatchNorm or a
  normalising next layer undoes a uniform scaling of a layer: measured on digits (MLP 128-64 with
  BatchNorm, Adam), the proximal steps shrink a whole layer's gammas together (to 1e-2 at
  ``lam=3e-3``) while their ratios still separate the units. ``lam`` defaults to 3e-3: 1e-3 and 2e-3
  pruned nothing there in 30 epochs, 5e-3 and 1e-2 emptied layers. Confirmed on a validation split
  (``python -m benchmarks.select_defaults``, 3 seeds): the fewest parameters within 1 point of the
  most accurate variant (97.9%, sd 0.3, against 98.0% unpruned; 5e-3 28%). With a budget, the
  decision at the freeze is the budget's landing by scale (``archlearn/budget.py``).
* ``cost`` defaults to ``"macs"`` (the FLOP regularizer); ``cost="params"`` is MorphNet's model
  size regularizer, ``"latency"`` its latency regularizer with our measured table instead of a
  roofline model.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.handlers import handler_for
from archlearn.structure.shrink import Decision


class MorphNetOptions(Options):
    lam: float = Field(
        3e-3, ge=0, description="proximal step on a unit of mean cost's normalised scale, per "
                                "step (a budget scales it)")
    threshold: float = Field(
        1e-2, gt=0, lt=1, description="a unit is alive while its scale is above this times its "
                                      "group's largest")
    source: Literal["auto", "gamma", "group_lasso"] = Field(
        "auto", description="unit scales: BatchNorm |gamma| where there is one (auto), "
                    "only |gamma|, or only producer weight norms")
    freeze: float | None = Field(
        0.7, gt=0, le=1, description="fraction of total_steps at which the mask is fixed "
                                     "(then fine-tuning); None: the mask follows the scales")


@register
class MorphNet(Method):
    """Cost-weighted L1 on BatchNorm scales (or producer weight norms); threshold mask."""

    name = "morphnet"
    Options = MorphNetOptions
    controlled = True
    default_cost = "macs"

    def __init__(self, model, groups, options: MorphNetOptions) -> None:
        super().__init__(model, groups, options)
        modules = dict(model.named_modules())
        self.sources: list[tuple[str, list[Any]] | None] = []
        for g in groups:
            norms = [m for name in g.members if isinstance(m := modules.get(name),
                                                           nn.modules.batchnorm._BatchNorm)
                     and m.affine and m.num_features == g.size]
            rows = [m for name in g.producers if (m := modules.get(name)) is not None
                    and (h := handler_for(m)) is not None and h.out_channels(m) == g.size]
            if norms and options.source != "group_lasso":
                self.sources.append(("gamma", norms))
            elif rows and options.source != "gamma" and g.kind == "channels":
                self.sources.append(("group_lasso", rows))
            else:
                self.sources.append(None)
        if not any(self.sources):
            raise ArchlearnError(
                f"morphnet found no unit scale (source={options.source!r}: BatchNorm after the "
                f"gated layers, or their producing weights) in groups {[g.name for g in groups]}")
        with torch.no_grad():
            self.reference: list[float] = [
                1.0 if s is None else max(float(self._raw(i).mean()), 1e-12)
                for i, s in enumerate(self.sources)]

    def _source(self, i: int) -> tuple[str, list[Any]]:
        source = self.sources[i]
        assert source is not None
        return source

    def _raw(self, i: int) -> torch.Tensor:
        kind, modules = self._source(i)
        if kind == "gamma":
            return torch.stack([m.weight.abs() for m in modules]).mean(0).to(self.dtype)
        squares = []
        for m in modules:
            h = handler_for(m)
            assert h is not None
            w = m.weight.transpose(0, h.weight_out_dim).reshape(h.out_channels(m), -1)
            squares.append(w.pow(2).mean(1))
        return torch.stack(squares).mean(0).add(1e-12).sqrt().to(self.dtype)

    def scale(self, i: int) -> torch.Tensor | None:
        """Per-unit scale of group ``i`` relative to its mean at attach (differentiable)."""
        if self.sources[i] is None:
            return None
        return self._raw(i) / self.reference[i]

    def masks(self) -> list[torch.Tensor]:
        out = []
        for i, g in enumerate(self.groups):
            s = self.scale(i)
            if s is None:
                out.append(self.full(g.size, 1.0))
                continue
            s = s.detach()
            keep = (s > self.options.threshold * s.max()).to(self.dtype)
            if not keep.any():  # never a whole layer: keep its largest unit
                keep[int(s.argmax())] = 1.0
            out.append(keep)
        return out

    def unit_scale(self, i: int) -> torch.Tensor:
        if self.model.training:  # plain training with the penalty until the freeze
            return self.full(self.groups[i].size, 1.0)
        return self.masks()[i]

    def regularizer(self) -> torch.Tensor:
        return self.full((), 0.0)  # applied as a proximal step in update()

    def penalty_value(self) -> float:
        """``lam * sum_u c_u scale_u``: the regularizer the proximal steps minimise."""
        with torch.no_grad():
            return self.strength(self.options.lam) * sum(
                float((self.unit_weights(i) * s).sum()) for i in range(len(self.groups))
                if (s := self.scale(i)) is not None)

    def decision(self) -> list[Decision]:
        return [Decision(scale=m.clone()) for m in self.masks()]

    def unit_score(self, i: int) -> torch.Tensor:
        s = self.scale(i)
        return self.full(self.groups[i].size, float("inf")) if s is None else s.detach().clone()

    def update(self) -> None:
        lam = self.strength(self.options.lam)
        with torch.no_grad():
            for i in range(len(self.groups)):
                s = self.scale(i)
                if s is None:
                    continue
                shrunk = (s - lam * self.unit_weights(i)).clamp_min(0.0)
                self._rescale(i, torch.where(s > 0, shrunk / s.clamp_min(1e-12), 0.0))

    def _rescale(self, i: int, factor: torch.Tensor) -> None:
        """Multiply unit ``u``'s gamma (or producing weight rows) by ``factor[u]``."""
        kind, modules = self._source(i)
        for m in modules:
            if kind == "gamma":
                m.weight.mul_(factor.to(m.weight))
            else:
                h = handler_for(m)
                assert h is not None
                shape = [1] * m.weight.dim()
                shape[h.weight_out_dim] = -1
                m.weight.mul_(factor.to(m.weight).view(shape))
