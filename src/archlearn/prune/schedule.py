"""Prune-and-retrain schedules (iterative and one-shot) and a sparsity report.

The user supplies the training as a callback ``train_fn(model, epochs, keeper)``: it trains for
``epochs`` epochs and calls ``keeper.step()`` after each ``optimizer.step()`` (or calls
``keeper.attach(optimizer)`` once), so that pruned weights stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from archlearn.prune.magnitude import Scope, magnitude, prunable_weights
from archlearn.prune.masks import MaskKeeper, Masks, apply_masks, resolve

TrainFn = Callable[[nn.Module, int, MaskKeeper], Any]


def sparsity(model: nn.Module, masks: Masks) -> dict[str, Any]:
    """Fraction of weights pruned per masked parameter and in total, read from the masks.

    ``total`` counts all Linear/Conv weights of the model (unmasked layers count as dense) plus any
    other masked parameter. A weight that is zero but not masked counts as kept.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> sparsity(net, {"0.weight": torch.tensor([[True, False], [False, False]])})
        {'layers': {'0.weight': 0.75}, 'total': 0.375}
    """
    params = resolve(model, masks)
    layers = {n: float((~m).sum()) / m.numel() for n, m in masks.items()}
    sizes = {n: w.numel() for n, w in prunable_weights(model).items()}
    sizes.update({n: p.numel() for n, p in params.items()})
    pruned = sum(int((~m).sum()) for m in masks.values())
    total = sum(sizes.values())
    return {"layers": layers, "total": pruned / total if total else 0.0}


def iterative(
    model: nn.Module,
    train_fn: TrainFn,
    *,
    amount_per_step: float,
    steps: int,
    scope: Scope,
    retrain_epochs: int,
    params: Iterable[str] | None = None,
    masks: Masks | None = None,
) -> tuple[Masks, list[dict[str, Any]]]:
    """Repeat ``steps`` times: prune ``amount_per_step`` of the remaining weights, then retrain.

    After ``s`` steps of amount ``a`` the sparsity is about ``1 - (1 - a) ** s``.

    Returns the final masks and one history entry per step: ``{"step", "layers", "total",
    "train"}`` where ``layers``/``total`` are :func:`sparsity` after that step and ``train`` is
    whatever ``train_fn`` returned (e.g. a validation accuracy). With ``retrain_epochs=0`` the
    callback is not called. The masks are re-applied once more at the end, so the returned model
    is consistent with them even if the callback forgot a ``keeper.step()``.

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10))
        >>> masks, hist = iterative(net, lambda m, e, k: None, amount_per_step=0.5, steps=2,
        ...                         scope="blind", retrain_epochs=1)
        >>> [h["total"] for h in hist]
        [0.5, 0.75]
    """
    _check_int("steps", steps, 1)
    _check_int("retrain_epochs", retrain_epochs, 0)
    params = None if params is None else list(params)  # may be a one-shot iterator
    history: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        masks = magnitude(model, amount_per_step, scope, params=params, masks=masks)
        result = None
        if retrain_epochs:
            result = train_fn(model, retrain_epochs, MaskKeeper(model, masks))
        apply_masks(model, masks)
        history.append({"step": step, **sparsity(model, masks), "train": result})
    assert masks is not None
    return masks, history


def one_shot(
    model: nn.Module,
    train_fn: TrainFn,
    amount: float,
    scope: Scope,
    retrain_epochs: int,
    *,
    params: Iterable[str] | None = None,
) -> tuple[Masks, list[dict[str, Any]]]:
    """Prune ``amount`` of the weights at once, then retrain; returns like :func:`iterative`.

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10))
        >>> masks, hist = one_shot(net, lambda m, e, k: None, 0.8, "uniform", retrain_epochs=2)
        >>> hist[0]["total"]
        0.8
    """
    return iterative(
        model,
        train_fn,
        amount_per_step=amount,
        steps=1,
        scope=scope,
        retrain_epochs=retrain_epochs,
        params=params,
    )


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
