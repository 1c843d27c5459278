"""Network slimming (Liu et al., ICCV 2017): L1 on BatchNorm scales, then prune the small ones.

The BatchNorm scale ``gamma`` of a channel is its importance. Training adds
``lam * sum |gamma|`` over the BatchNorms of the gated groups to the task loss (the gammas are the
model's own parameters: the user's optimizer updates them, the method only supplies the penalty,
the same sub-gradient ``lam * sign(gamma)`` that the reference code adds to the gradients). Units
whose importance is below a threshold are removed: a global percentile ``prune_ratio`` over all
gated units (the paper's global threshold), or an absolute ``threshold``.

Design decisions (ours):

* Finding the BatchNorms: a group's members (``group.members``) that are affine BatchNorms with
  as many channels as the group has units; their channel ``j`` is unit ``j``. A BatchNorm of a
  different width (one after a concatenation, whose offset the group does not record) is not
  used. A unit's importance is the mean ``|gamma|`` over its group's BatchNorms (the residual
  stem of a ResNet is one group with several). Groups without a BatchNorm get no penalty and are
  kept whole; a model where no gated group has one is refused (nothing to slim).
* The gate is the prune mask, applied at the consumers' inputs like every method. In training
  mode it is all ones until the prune step (plain training with L1, as in the paper). In eval
  mode it is the mask that ``decision()`` would return now, so an evaluation during training
  shows the accuracy of the pruned net and the gated model in eval mode equals ``shrink()``'s
  output (a pruned unit's BatchNorm outputs beta, not 0; gating the consumers' inputs removes
  it exactly).
* Prune-and-fine-tune in one run: the prune step is the base schedule's ``freeze``. At step
  ``freeze * total_steps`` the mask is computed once and frozen; from then on it is applied in
  training mode too and the penalty is 0, so the rest of the run is the paper's fine-tuning of
  the pruned net (default ``freeze=0.7``; the paper fine-tunes as long as it trained, i.e. 0.5).
  ``freeze=None`` never prunes during training: the mask follows the gammas to the end and is
  decided at ``shrink()``, with no fine-tuning, which costs a lot of accuracy (docs/RESULTS.md,
  "Each method's defaults and variants on digits").
* ``keep_min`` units per group (the most important) always stay, so a global threshold never
  removes a whole layer (the paper's nets could lose one at high ratios).
* ``lam`` defaults to 1e-5, a tenth of the paper's 1e-4 (chosen for SGD with momentum). Under
  Adam the L1 term is rescaled per parameter and moves all gammas alike, so the pruning is
  close to plain magnitude-of-gamma pruning, and a global percentile can empty one layer first
  (it left one unit of 128 in a first layer on digits): ``scope="layer"`` prunes the same
  fraction of every group instead. ``lam=1e-5, scope="global"`` was selected on a validation
  split of digits (BatchNorm MLP 128-64, 30 epochs, 3 seeds; ``python -m
  benchmarks.select_defaults``, ``lam`` 1e-5/1e-4/1e-3 x ``scope``): every variant is within
  1 point of the best, the global scope keeps the fewest parameters (5,034 against 6,762), and
  among its ``lam`` values, which prune the same units, 1e-5 is the most accurate (98.3%, sd
  0.8, against 97.9% for 1e-4: within the seed spread). Measured: docs/RESULTS.md, "Method
  defaults selected on validation".
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.methods.base import Method, Options, register
from archlearn.structure.shrink import Decision


class SlimmingOptions(Options):
    lam: float = Field(1e-5, ge=0, description="L1 strength on BatchNorm scales (paper: 1e-4)")
    prune_ratio: float | None = Field(
        0.5, ge=0, lt=1, description="fraction of all gated units to remove (global percentile)"
    )
    threshold: float | None = Field(
        None, ge=0, description="remove units with mean |gamma| below this (replaces prune_ratio)"
    )
    scope: Literal["global", "layer"] = Field(
        "global", description="prune_ratio over all gated units (paper) or within each group"
    )
    keep_min: int = Field(1, ge=0, description="units every group keeps at least")
    freeze: float | None = Field(
        0.7, gt=0, le=1,
        description="fraction of total_steps at which the mask is pruned for good (then "
                    "fine-tuning); None: the mask follows the gammas to the end",
    )

    @model_validator(mode="after")
    def _one_rule(self):
        if self.threshold is not None and "prune_ratio" in self.model_fields_set:
            raise ValueError("give either prune_ratio or threshold, not both")
        if self.threshold is None and self.prune_ratio is None:
            raise ValueError("prune_ratio or threshold is required")
        return self


@register
class Slimming(Method[SlimmingOptions]):
    """L1 on BatchNorm scales; the prune mask is the gate."""

    name = "slimming"
    Options = SlimmingOptions

    def __init__(self, model, groups, options: SlimmingOptions) -> None:
        super().__init__(model, groups, options)
        self.norms: list[list[nn.modules.batchnorm._BatchNorm]] = []
        modules = dict(model.named_modules())
        for g in groups:
            found = []
            for name in g.members:
                module = modules.get(name)  # members also name functional ops (relu, add...)
                if (
                    isinstance(module, nn.modules.batchnorm._BatchNorm)
                    and module.affine
                    and module.num_features == g.size
                ):
                    found.append(module)
            self.norms.append(found)
        if not any(self.norms):
            raise ArchlearnError(
                "slimming needs BatchNorm layers after the gated layers; this model has none "
                f"in its groups {[g.name for g in groups]}"
            )
        self._cache: tuple[tuple, list[torch.Tensor]] | None = None

    @property
    def pruned(self) -> bool:
        """Whether the mask has been pruned for good (the ``freeze`` step has passed)."""
        return self.frozen

    def importance(self, i: int) -> torch.Tensor | None:
        """Mean |gamma| per unit of group ``i`` (``None`` for a group without BatchNorm)."""
        norms = self.norms[i]
        if not norms:
            return None
        gammas = [m.weight.detach().abs().to(self.device, self.dtype) for m in norms]
        return torch.stack(gammas).mean(0)

    def masks(self) -> list[torch.Tensor]:
        """The current 0/1 keep mask of every group."""
        if self.frozen_decisions is not None:
            return [d.scale for d in self.frozen_decisions]
        key = tuple((id(m.weight), m.weight._version) for ms in self.norms for m in ms)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._compute_masks())
        return self._cache[1]

    def _compute_masks(self) -> list[torch.Tensor]:
        o = self.options
        scores = [self.importance(i) for i in range(len(self.groups))]
        if o.threshold is not None:
            keep = [None if s is None else s >= o.threshold for s in scores]
        else:
            ratio = o.prune_ratio or 0.0
            if o.scope == "layer":
                keep = [None if s is None else _keep_largest(s, ratio) for s in scores]
            else:
                flat = torch.cat([s for s in scores if s is not None])
                kept_flat = _keep_largest(flat, ratio)
                keep, start = [], 0
                for s in scores:
                    if s is None:
                        keep.append(None)
                    else:
                        keep.append(kept_flat[start:start + s.numel()])
                        start += s.numel()
        masks = []
        for g, s, k in zip(self.groups, scores, keep):
            if k is None or s is None:
                masks.append(self.full(g.size, 1.0))
                continue
            k = k.clone()
            need = min(self.options.keep_min, g.size)
            if int(k.sum()) < need:
                k[torch.argsort(s, descending=True, stable=True)[:need]] = True
            masks.append(k.to(self.dtype))
        return masks

    def unit_scale(self, i: int) -> torch.Tensor:
        if self.model.training:  # plain training with L1 until the prune step (the paper's)
            return self.full(self.groups[i].size, 1.0)
        return self.masks()[i]

    def regularizer(self) -> torch.Tensor:
        if self.options.lam == 0:
            return self.full((), 0.0)
        total = torch.stack([m.weight.abs().sum() for norms in self.norms for m in norms]).sum()
        return self.options.lam * total.to(self.dtype)

    def decision(self) -> list[Decision]:
        return [Decision(scale=m.clone()) for m in self.masks()]

    def moved(self) -> None:
        self._cache = None

    def load_extra_state(self, state) -> None:
        self._cache = None


def _keep_largest(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask removing the ``int(ratio * n)`` smallest scores (ties: lower index first)."""
    order = torch.argsort(scores, stable=True)
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[order[: int(ratio * scores.numel())]] = False
    return keep
