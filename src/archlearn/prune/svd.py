"""Low-rank baseline: replace a Linear by two thinner ones from its truncated SVD.

W (out x in) ~= U_r S_r V_r^T becomes Linear(in, r, bias=False) -> Linear(r, out). This saves
parameters when r * (in + out) < in * out, and is exact when r = min(in, out).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def param_count(module: nn.Module) -> int:
    """Number of scalars in the module's parameters (shared ones counted once).

    Example:
        >>> param_count(nn.Linear(4, 3))
        15
    """
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def svd_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """Two-layer rank-``rank`` factorisation of ``linear`` (the best one in Frobenius norm).

    Example:
        >>> lin = nn.Linear(8, 6)
        >>> low = svd_linear(lin, 6)  # full rank: same function
        >>> x = torch.randn(2, 8)
        >>> torch.allclose(low(x), lin(x), atol=1e-5)
        True
        >>> param_count(svd_linear(lin, 2))  # 2*8 + 6*2 + 6
        34
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"svd_linear needs an nn.Linear, got {type(linear).__name__}")
    out_f, in_f = linear.weight.shape
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(in_f, out_f):
        raise ValueError(f"rank must be an int in [1, {min(in_f, out_f)}], got {rank!r}")
    w = linear.weight
    # float64 SVD: the factors are rounded to the layer's dtype once, at the end.
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    root = s[:rank].sqrt()  # split S evenly so both factors have the same scale
    first = nn.Linear(in_f, rank, bias=False, device=w.device, dtype=w.dtype)
    second = nn.Linear(rank, out_f, bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    first.weight.copy_(root[:, None] * vh[:rank])
    second.weight.copy_(u[:, :rank] * root)
    if linear.bias is not None:
        second.bias.copy_(linear.bias)
    return nn.Sequential(first, second).train(linear.training)


def svd_compress(model: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """A deep copy of ``model`` with each named Linear replaced by :func:`svd_linear` at its rank.

    Example:
        >>> net = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 2))
        >>> small = svd_compress(net, {"0": 4})
        >>> param_count(small) < param_count(net)
        True
    """
    new = copy.deepcopy(model)
    for name, rank in ranks.items():
        if not name:
            raise ValueError("name a Linear inside the model; use svd_linear for a bare Linear")
        try:
            target = new.get_submodule(name)
        except AttributeError as err:
            raise ValueError(f"model has no submodule {name!r}") from err
        if not isinstance(target, nn.Linear):
            raise TypeError(f"{name!r} is a {type(target).__name__}, not an nn.Linear")
        parent_name, _, child = name.rpartition(".")
        setattr(new.get_submodule(parent_name), child, svd_linear(target, rank))
    return new
