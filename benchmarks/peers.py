"""Torch-Pruning structured pruning, as the peers of the comparisons run it.

One prune of every prunable layer's outputs by a uniform ratio (or, with ``global_pruning``, of
the least important channels of the whole net; the final Linear ignored), with L1 magnitude,
first-order Taylor or BatchNorm-scale importance, and a bisection of the ratio for a target
parameter count (or any other size, e.g. MACs).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from archlearn.structure.measure import count_params


def taylor_grads(dense: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Gradients of the loss on ``batch`` (eval mode), by parameter name, for Taylor importance."""
    model = copy.deepcopy(dense).eval()
    with torch.enable_grad():
        x, y = batch
        nn.functional.cross_entropy(model(x), y).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def tp_pruned(dense: nn.Module, example: torch.Tensor, ratio: float, importance: str = "l1",
              grads: dict | None = None, global_pruning: bool = False) -> nn.Module:
    """A copy of ``dense`` with every prunable layer's outputs cut by ``ratio`` (or ``ratio`` of
    all channels, the least important first, with ``global_pruning``; no layer loses all)."""
    model = copy.deepcopy(dense)
    was_training = model.training
    final = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    if importance == "taylor":
        assert grads is not None
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()
        imp = tp.importance.TaylorImportance()
    elif importance == "l1":
        imp = tp.importance.MagnitudeImportance(p=1)
    elif importance == "bn":
        imp = tp.importance.BNScaleImportance()
    else:
        raise ValueError(importance)
    with torch.enable_grad():
        pruner = tp.pruner.BasePruner(model, example, importance=imp,
                                      global_pruning=global_pruning, pruning_ratio=ratio,
                                      max_pruning_ratio=0.95, ignored_layers=[final])
        pruner.step()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return model


def prune_to(dense: nn.Module, example: torch.Tensor, target: int, importance: str = "l1",
             grads: dict | None = None, iterations: int = 20, global_pruning: bool = False,
             size: Callable[[nn.Module], float] = count_params) -> tuple[nn.Module, float]:
    """Bisect the ratio in [0, 0.99]; the pruned net whose ``size`` is closest to ``target``."""
    lo, hi = 0.0, 0.99
    best, best_ratio = copy.deepcopy(dense), 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        model = tp_pruned(dense, example, mid, importance, grads, global_pruning)
        count = size(model)
        if abs(count - target) < abs(size(best) - target):
            best, best_ratio = model, mid
        if count > target:
            lo = mid
        elif count < target:
            hi = mid
        else:
            break
    return best, best_ratio
