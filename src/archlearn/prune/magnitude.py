"""Unstructured magnitude pruning in the three classes of Stier et al. (arXiv 2107.12917).

- ``"blind"`` (See et al. 2016): one global ranking of |w| over all considered layers, so each
  layer loses a different fraction.
- ``"uniform"``: every layer loses the same fraction of its own weights.
- ``"distributed"`` (after Han et al. 2015): saliency |w| / std(W_layer), then one global ranking,
  i.e. a per-layer threshold t * sigma_layer. Alternatively give ``threshold=t`` directly.

Only the weights of Linear and Conv layers are pruned, never biases. ``amount`` is a fraction of
the weights still alive, so repeated calls with the previous masks prune iteratively.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from archlearn.prune.masks import Masks, apply_masks, resolve

Scope = Literal["blind", "uniform", "distributed"]
SCOPES: tuple[str, ...] = ("blind", "uniform", "distributed")
PRUNABLE: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def prunable_weights(
    model: nn.Module, params: Iterable[str] | None = None
) -> dict[str, nn.Parameter]:
    """The weights of the model's Linear and Conv layers by parameter name, optionally a subset.

    Example:
        >>> list(prunable_weights(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))))
        ['0.weight', '2.weight']
    """
    found: dict[str, nn.Parameter] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        # id() dedup: a weight tied between two layers must be ranked (and counted) once.
        if isinstance(module, PRUNABLE) and isinstance(weight, nn.Parameter):
            if id(weight) not in seen:
                seen.add(id(weight))
                found[f"{mod_name}.weight" if mod_name else "weight"] = weight
    if params is None:
        return found
    wanted = set(params)
    unknown = sorted(wanted - set(found))
    if unknown:
        raise ValueError(
            f"params must name Linear/Conv weights; not prunable: {unknown} "
            f"(prunable: {sorted(found)})"
        )
    return {name: w for name, w in found.items() if name in wanted}


def magnitude(
    model: nn.Module,
    amount: float | None = None,
    scope: Scope = "blind",
    *,
    threshold: float | None = None,
    params: Iterable[str] | None = None,
    masks: Masks | None = None,
) -> Masks:
    """Prune the smallest-magnitude weights in place and return the masks (``True`` = kept).

    Exactly ``round(amount * n)`` weights (Python's round, half to even) are pruned among the
    ``n`` still alive (globally for ``"blind"``/``"distributed"``, per layer for ``"uniform"``);
    ties go to the lower index, in ``named_modules()`` order. Pass the ``masks`` of a previous
    call to prune iteratively: pruned weights stay pruned and ``amount`` then counts the remaining
    ones. The returned dict holds every mask given plus one per considered layer. Weights are
    zeroed here; to keep them at zero while retraining use
    :class:`~archlearn.prune.masks.MaskKeeper`.

    ``"distributed"`` uses sigma = std of the layer's alive weights with Bessel's correction
    (``torch.std`` default, as in the reference code); ``threshold=t`` prunes |w| < t * sigma.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> m = magnitude(net, 0.5, "uniform")
        >>> [int((~k).sum()) for k in m.values()]
        [8, 4]
        >>> m = magnitude(net, 0.5, "uniform", masks=m)  # half of what is left
        >>> [int((~k).sum()) for k in m.values()]
        [12, 6]
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if (amount is None) == (threshold is None):
        raise ValueError("give exactly one of amount and threshold")
    if threshold is not None and scope != "distributed":
        raise ValueError(f"threshold is only for scope='distributed', got scope={scope!r}")
    if amount is not None and not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount!r}")
    if threshold is not None and not 0.0 <= threshold < float("inf"):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold!r}")

    weights = prunable_weights(model, params)
    if not weights:
        raise ValueError("no Linear/Conv weights to prune")
    previous = dict(masks or {})
    resolve(model, previous)
    keep = {
        n: previous[n].to(w.device) if n in previous else torch.ones_like(w, dtype=torch.bool)
        for n, w in weights.items()
    }
    # float64 ranking: ties and the |w| < t*sigma test must not depend on float32 rounding.
    mags = {n: w.detach().abs().double() for n, w in weights.items()}

    if scope == "uniform":
        assert amount is not None
        new = {n: _prune_smallest(mags[n], keep[n], _count(amount, keep[n])) for n in weights}
    elif scope == "blind":
        assert amount is not None
        new = _prune_global(mags, keep, amount)
    else:
        sigma = {n: _alive_std(weights[n], keep[n]) for n in weights}
        if threshold is not None:
            new = {n: keep[n] & ~(mags[n] < threshold * sigma[n]) for n in weights}
        else:
            assert amount is not None
            new = _prune_global({n: mags[n] / sigma[n] for n in weights}, keep, amount)

    result = {**previous, **new}
    apply_masks(model, result)
    return result


def _count(amount: float, keep: torch.Tensor) -> int:
    """How many of the alive weights ``amount`` asks to prune."""
    return round(amount * int(keep.sum()))


def _prune_smallest(scores: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """``keep`` with its ``k`` lowest-scoring alive entries set to False (ties: lower index)."""
    alive = keep.flatten().nonzero().squeeze(1)
    # stable sort instead of topk: topk's order among equal values is unspecified.
    order = torch.argsort(scores.flatten()[alive], stable=True)
    out = keep.flatten().clone()
    out[alive[order[:k]]] = False
    return out.view_as(keep)


def _prune_global(scores: Masks, keep: Masks, amount: float) -> Masks:
    """One ranking over all layers' alive scores; returns the per-layer masks."""
    names = list(scores)
    flat_keep = torch.cat([keep[n].flatten().cpu() for n in names])
    flat_scores = torch.cat([scores[n].flatten().cpu() for n in names])
    flat = _prune_smallest(flat_scores, flat_keep, _count(amount, flat_keep))
    out: Masks = {}
    for n, part in zip(names, flat.split([keep[n].numel() for n in names])):
        out[n] = part.view_as(keep[n]).to(keep[n].device)
    return out


def _alive_std(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Std of the layer's alive weights, clamped so a constant layer does not divide by zero."""
    alive = weight.detach().double()[keep]
    sigma = alive.std() if alive.numel() > 1 else alive.new_zeros(())
    # A layer with <= 1 alive or all-equal weights gets a tiny sigma: its weights rank last.
    return sigma.nan_to_num(0.0).clamp_min(torch.finfo(torch.float64).tiny)
