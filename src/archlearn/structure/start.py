"""Where learning starts: a decision (which units of each group to keep) given to ``attach``.

``al.attach(model, x, method=..., budget=..., init=...)`` starts the gates from a decision
instead of all-on, so that learning starts at the budget and refines it (units may come back,
others go). ``init`` is any of:

* a compressed or shrunk model (``al.compress``'s result, ``learner.shrink()``): the units its
  recipe removed (``archlearn_recipe``) are off. A group whose every unit was removed keeps unit
  0 in the shrunk model (zeroed), and starts with unit 0 on here;
* a ``Decided`` from ``archlearn.compression.decide`` (anything with ``.groups`` and ``.alive``);
* a mapping group name -> per-unit keep mask (bools or 0/1, a tensor or a list).

Groups the decision does not name start all-on; a name the learner does not gate is an error
unless its mask keeps every unit.

>>> from torch import nn
>>> from archlearn.structure.groups import find_groups
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> groups, _ = find_groups(net, (torch.zeros(1, 4),))
>>> start_masks({"0": [True, False, True]}, groups)
[tensor([1., 0., 1.])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.groups import UnitGroup


def start_masks(init: Any, groups: Sequence[UnitGroup]) -> list[torch.Tensor]:
    """Per group of ``groups``, a float 0/1 vector of the units ``init`` keeps (see above)."""
    if isinstance(init, nn.Module):
        given = _from_recipe(init, groups)
    elif hasattr(init, "groups") and hasattr(init, "alive"):
        given = {g.name: a for g, a in zip(init.groups, init.alive)}
    elif isinstance(init, Mapping):
        given = dict(init)
    else:
        raise ArchlearnError(f"init must be a compressed model, a Decided from "
                             f"archlearn.compression.decide or a dict group name -> keep mask; "
                             f"got {type(init).__name__}")
    index = {g.name: i for i, g in enumerate(groups)}
    masks = [torch.ones(g.size) for g in groups]
    for name, raw in given.items():
        mask = _mask(name, raw)
        if name not in index:
            if bool(mask.all()):
                continue  # nothing removed: nothing to start from
            raise ArchlearnError(f"init removes units of {name!r}, which this learner does not "
                                 f"gate; gated groups are {sorted(index)}")
        size = groups[index[name]].size
        if mask.numel() != size:
            raise ArchlearnError(f"init's mask for {name!r} has {mask.numel()} entries, the "
                                 f"group has {size} units")
        masks[index[name]] = mask
    return masks


def _mask(name: str, raw: Any) -> torch.Tensor:
    mask = torch.as_tensor(raw).detach().cpu().flatten()
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ArchlearnError(f"init's mask for {name!r} must hold bools or 0/1")
    return (mask != 0).to(torch.float32)


def _from_recipe(model: nn.Module, groups: Sequence[UnitGroup]) -> dict[str, torch.Tensor]:
    """The units a shrunk model's recipe removed, by group name."""
    recipe = getattr(model, "archlearn_recipe", None)
    if not isinstance(recipe, dict) or "steps" not in recipe:
        raise ArchlearnError("init is a model without an archlearn recipe: give the model "
                             "al.compress or learner.shrink returned")
    # each prune step names its group by the module it is rooted at
    keys: dict[tuple[str, str], UnitGroup] = {}
    for g in groups:
        if g.heads is not None:
            keys[("prune_heads", g.heads.module)] = g
        elif g.stream is not None:
            keys[("prune_stream", g.stream.root)] = g
        elif g.blocks is not None:
            keys[("prune_blocks", g.blocks.conv)] = g
        else:
            keys[("prune", g.name)] = g
    field = {"prune": ("root", "units"), "prune_heads": ("module", "heads"),
             "prune_stream": ("root", "units"), "prune_blocks": ("conv", "blocks")}
    out: dict[str, torch.Tensor] = {}
    for step in recipe["steps"]:
        if step["op"] not in field:
            continue  # identity, merge and mask steps change no width
        where, what = field[step["op"]]
        group = keys.get((step["op"], step[where]))
        if group is None:
            raise ArchlearnError(f"init's recipe removes units of {step[where]!r}, which this "
                                 "learner does not gate")
        mask = out.setdefault(group.name, torch.ones(group.size))
        mask[torch.as_tensor(step[what], dtype=torch.long)] = 0.0
    return out


__all__ = ["start_masks"]
