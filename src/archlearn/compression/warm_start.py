"""The compressed model's weights carried back into the full-size model, to learn from there.

``al.compress`` re-fits the layers that read removed units (``refit.py``). To learn from that
point (``al.attach(full, x, init=small, ...)``: gates at the compressed decision) the full
model should compute what the compressed one computes, so :func:`expand` writes every weight of
the compressed model back at its place in a copy of the full one. The entries the compressed
model no longer has (rows of removed units, the reading layers' columns of removed inputs) keep
the original's trained values: a unit that comes back during learning returns with the
weights it was trained with (zeroed columns would also give its gate no gradient, so it could
never come back).

Where each compressed weight came from is found by replaying the compressed model's recipe on
a float64 copy of the full model whose every entry holds its own flat index: what survives the
slicing is the list of kept indices, for any layer the recipe prunes, exactly.

>>> import torch, archlearn as al
>>> from torch import nn
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
>>> small = al.compress(net, torch.randn(128, 8), budget={"params": 0.5}, progress=False)
>>> full = expand(net, small)
>>> learner = al.attach(full, torch.zeros(1, 8), method="tsrelu", total_steps=100, init=small)
>>> x = torch.randn(4, 8)
>>> torch.allclose(full.eval()(x), small.eval()(x), atol=1e-5)
True
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.shrink import apply_steps

__all__ = ["expand", "kept_indices"]


def kept_indices(model: nn.Module, small: nn.Module) -> dict[str, torch.Tensor]:
    """For every floating-point entry of ``small``'s state dict: the flat indices in ``model``'s
    tensor of the same name that its entries came from (``small`` shrunk from ``model`` by an
    archlearn recipe: ``al.compress`` or ``learner.shrink``, without layer merges)."""
    recipe = getattr(small, "archlearn_recipe", None)
    if not isinstance(recipe, dict) or "steps" not in recipe:
        raise ArchlearnError("the small model carries no archlearn recipe: give the model "
                             "al.compress or learner.shrink returned")
    merged = [s for s in recipe["steps"] if s["op"] in ("merge", "identity")]
    if merged:  # a merged layer's weights are products of two layers': no place to go back to
        raise ArchlearnError(f"the small model merged layers ({merged[0]['op']} "
                             f"{merged[0].get('module') or merged[0].get('consumer')}): its "
                             "weights cannot be written back into the full model")
    probe = copy.deepcopy(model).to("cpu", torch.float64)
    with torch.no_grad():
        for t in [*probe.parameters(), *probe.buffers()]:
            if t.is_floating_point():
                # float64 holds every index below 2**53 exactly
                t.copy_(torch.arange(t.numel(), dtype=torch.float64).view_as(t))
    inputs = tuple(torch.zeros(s["shape"], dtype=getattr(torch, s["dtype"]))
                   for s in recipe["inputs"])
    inputs = tuple(t.double() if t.is_floating_point() else t for t in inputs)
    apply_steps(probe, recipe["steps"], inputs)
    probed = probe.state_dict()
    out = {}
    for name, value in small.state_dict().items():
        if not value.is_floating_point():
            continue
        if name not in probed or probed[name].shape != value.shape:
            raise ArchlearnError(f"{name!r} of the small model has no counterpart in the full "
                                 "model: was it shrunk from this model?")
        out[name] = probed[name].flatten().round().long()
    return out


def expand(model: nn.Module, small: nn.Module) -> nn.Module:
    """A copy of ``model`` holding ``small``'s weights where ``small`` kept them, ``model``'s own
    elsewhere (see the module docstring); ``model`` and ``small`` are left as they are.

    With the gates of ``small``'s decision (``al.attach(full, x, init=small)``) the copy
    computes what ``small`` computes (exactly where the method's kept gates are 1, as tsrelu's).
    """
    indices = kept_indices(model, small)
    full = copy.deepcopy(model)
    state = full.state_dict()
    with torch.no_grad():
        for name, value in small.state_dict().items():
            if name in indices:
                target = state[name]
                flat = target.detach().clone().flatten()
                flat[indices[name].to(target.device)] = value.flatten().to(target)
                target.copy_(flat.view_as(target))
    return full
