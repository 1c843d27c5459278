"""What a model costs as a function of which units are alive: parameters, MACs or latency.

A :class:`CostModel` is a polynomial in the *alive counts* of the unit groups, exact for the
shrunk model. Every layer contributes one term ``coef * f_in * f_out`` where ``f_in`` is the
fraction of the layer's input channels that are alive (its channel -> unit map comes from the
groups: Torch-Pruning's dependency items for channel groups, the head layout for heads, the
block layout for grouped convolutions) and ``f_out`` likewise for its output channels; a side
no group gates stays at 1. ``coef`` is what the layer costs at full width:

* ``"macs"``: its own multiply-accumulates from one traced forward (``measure.layer_macs``,
  PyTorch's ``FlopCounterMode``, a module's children subtracted);
* ``"params"``: each weight counts ``f_in * f_out``, each bias ``f_out`` (a BatchNorm's scale
  and shift ``f`` of its channels);
* ``"latency"``: a per-layer time measured once on this machine (``latency_table.py``);
* ``"units"``: one per unit, the paper's unweighted count.

Depthwise and grouped convolutions, whose every output channel reads a fixed number of input
channels, are one factor ``f``; an attention module's own products (``q k^T``, ``p v``) scale
with its heads. A residual stream's hidden dimensions (``stream.py``) scale every layer reading
or writing the stream, the embedding tables' columns, the LayerNorms' entries and the entries
of a free per-channel parameter (ConvNeXt's layer scale) like any other side. Everything
else (layers on skipped groups, the input columns of layers reading a LayerNorm the model
returns) is a constant. At full width the polynomial equals ``count_macs``/``count_params``
exactly, and for any decision it equals the shrunk model's count (tests/test_cost.py checks
both on convnets, MLPs, transformers' BERT/GPT-2/ViT/MobileNetV2).

Because the polynomial is differentiable in the alive counts, a unit's *complexity weight* is
``d total / d alive_unit`` at the current widths: what removing it saves now. As in MorphNet
(Gordon et al., 2018), a channel's cost depends on how many of its producers' inputs and its
consumers' outputs are still alive, so the weights are recomputed as widths change.

>>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
>>> from archlearn.structure.groups import find_groups
>>> groups, _ = find_groups(net, (torch.zeros(1, 4),))
>>> cost = build_cost(net, groups, (torch.zeros(1, 4),), "macs")
>>> cost.full, cost.total([torch.ones(8)]).item(), cost.total([torch.zeros(8)]).item()
(48.0, 48.0, 0.0)
>>> [round(w, 3) for w in cost.weights([torch.ones(8)])[0][:2].tolist()]  # 6 MACs a unit
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.graph import dependency_graph
from archlearn.structure.groups import UnitGroup
from archlearn.structure.handlers import handler_for, is_depthwise, is_grouped
from archlearn.structure.measure import count_params, layer_macs

KINDS = ("units", "params", "macs", "latency")


@dataclass
class Side:
    """One side (input or output channels) of a layer: ``fixed`` ungated channels plus, per
    gated group, the unit of each of its channels (a unit may own several channels)."""

    full: int
    fixed: int = 0
    parts: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (group, units)

    def fraction(self, alive: Sequence[torch.Tensor]) -> torch.Tensor | float:
        if not self.parts:
            return 1.0
        count = self.fixed + sum(alive[g].index_select(0, units).sum() for g, units in self.parts)
        return count / self.full


@dataclass
class Term:
    """``coef * prod(side fractions)``: one layer's cost (``module`` names it)."""

    module: str
    coef: float
    sides: tuple[Side, ...]


class CostModel:
    """The model's cost as a differentiable function of per-group alive vectors.

    ``alive[i]`` has one entry per unit of group ``i`` (1 alive, 0 removed; anything in
    between for a soft count). ``full`` is the cost with every unit alive.
    """

    def __init__(self, kind: str, terms: list[Term], constant: float, sizes: list[int]) -> None:
        self.kind, self.terms, self.constant, self.sizes = kind, terms, constant, sizes
        ones = [torch.ones(n, dtype=torch.float64) for n in sizes]
        self.full = float(self.total(ones))
        raw = self._gradients(ones)
        n_units = sum(sizes)
        mean = float(sum(g.sum() for g in raw)) / n_units if n_units else 0.0
        self.scale = mean if mean > 0 else 1.0  # weights have mean 1 over units at full width

    def total(self, alive: Sequence[torch.Tensor]) -> torch.Tensor:
        """The cost with these alive vectors (differentiable in them)."""
        alive = [a.to(torch.float64) for a in alive]
        total = torch.tensor(self.constant, dtype=torch.float64)
        for term in self.terms:
            value = term.coef
            for side in term.sides:
                value = value * side.fraction(alive)
            total = total + value
        return total

    def _gradients(self, alive: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # autograd on even where the caller is in no_grad (a method's freeze): a landing that
        # saw zero marginal costs there could not exchange units and missed its budget by 4%
        with torch.enable_grad():
            leaves = [a.detach().to(torch.float64).clone().requires_grad_(True) for a in alive]
            total = self.total(leaves)
            if not total.requires_grad:
                return [torch.zeros_like(a) for a in leaves]
            grads = torch.autograd.grad(total, leaves, allow_unused=True)
        return [torch.zeros_like(a) if g is None else g for a, g in zip(leaves, grads)]

    def weights(self, alive: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each unit's complexity weight at these widths: ``d total / d alive``, divided by the
        mean over units at full width (so the weights average 1 on the full model)."""
        return [g / self.scale for g in self._gradients(alive)]

    def of(self, scales: Sequence[torch.Tensor]) -> float:
        """The cost of the model shrunk with these unit scales (0 removes a unit).

        A group with every unit off keeps one zeroed unit (as shrinking does), so this is the
        count of the model ``shrink`` returns (depth merges aside).
        """
        alive = []
        for s in scales:
            a = (s.detach().cpu() != 0).to(torch.float64)
            if a.numel() and not a.any():
                a[0] = 1.0
            alive.append(a)
        return float(self.total(alive))

    def per_module(self) -> dict[str, float]:
        """Full-width cost of each layer that has a term (for reports and tests)."""
        return {t.module: t.coef for t in self.terms}


def build_cost(
    model: nn.Module,
    groups: Sequence[UnitGroup],
    inputs: tuple[torch.Tensor, ...],
    kind: str,
) -> CostModel:
    """The cost model of ``kind`` ("units" | "params" | "macs" | "latency") for these groups.

    MACs are traced, parameters counted, latencies measured once (``latency_table.py``).
    """
    if kind not in KINDS:
        raise ArchlearnError(f"unknown cost {kind!r}; choose one of {list(KINDS)}")
    sizes = [g.size for g in groups]
    if kind == "units":
        terms = [Term(g.name, float(g.size), (Side(g.size, 0, [(i, torch.arange(g.size))]),))
                 for i, g in enumerate(groups)]
        return CostModel(kind, terms, 0.0, sizes)
    sides = _sides(model, groups, inputs)
    heads = {g.heads.module: i for i, g in enumerate(groups) if g.heads is not None}
    blocks = {g.blocks.conv: i for i, g in enumerate(groups) if g.blocks is not None}
    if kind == "params":
        terms, constant = _param_terms(model, sides, heads, blocks)
    elif kind == "macs":
        terms, constant = _compute_terms(model, _own_macs(model, inputs), sides, heads, blocks)
    else:
        from archlearn.structure.latency_table import latency_cost

        return latency_cost(model, groups, inputs)
    return CostModel(kind, terms, constant, sizes)


# --- which unit each channel of each layer belongs to -------------------------------------------

def _sides(model, groups, inputs) -> dict[tuple[str, str], Side]:
    """``(module, "in" | "out" | "heads" | "blocks") -> Side`` for every gated side."""
    maps: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}

    def put(key, channels, units, g):
        slot = maps.setdefault(key, {})
        for c, u in zip(channels, units):
            slot[int(c)] = (g, int(u))

    dg = None
    for i, g in enumerate(groups):
        if g.heads is not None:
            lay = g.heads
            hd = lay.head_dim
            put((lay.module, "heads"), range(lay.heads), range(lay.heads), i)
            inner = lay.heads * hd
            for proj, offset in lay.projections:
                put((proj, "out"), range(offset, offset + inner), [c // hd for c in range(inner)],
                    i)
            if lay.style == "mha":
                put((f"{lay.module}.out_proj", "in"), range(inner),
                    [c // hd for c in range(inner)], i)
            for site in g.sites:
                if site.module != lay.module:
                    put((site.module, "in"), site.channels, site.units, i)
            continue
        dg = dg or dependency_graph(model, inputs)
        if g.blocks is not None:
            lay = g.blocks
            put((lay.conv, "blocks"), range(g.size), range(g.size), i)
            for root, per in ((lay.conv, lay.out_per_block), (lay.input_root, lay.in_per_block)):
                for name, side, channels, units in _items(dg, model.get_submodule(root)):
                    if name != lay.conv:
                        put((name, side), channels, [u // per for u in units], i)
            continue
        full = set(g.stream.full_readers) if g.stream is not None else set()
        for name, side, channels, units in _items(dg, model.get_submodule(g.name)):
            if not (side == "in" and name in full):  # reads a returned, full-width LayerNorm
                put((name, side), channels, units, i)
    out = {}
    params = dict(model.named_parameters())
    for (name, side), slot in maps.items():
        if name in params:  # a free parameter of a stream: every channel entry is in its group
            full = len(slot)
        else:
            full = _width(model.get_submodule(name), side, len(slot))
        by_group: dict[int, list[int]] = {}
        for c in sorted(slot):
            g, u = slot[c]
            by_group.setdefault(g, []).append(u)
        parts = [(g, torch.tensor(units, dtype=torch.long)) for g, units in by_group.items()]
        out[(name, side)] = Side(full, full - len(slot), parts)
    return out


def _items(dg, root: nn.Module):
    """(module, side, channels, root units) of every layer in the pruning group of ``root``."""
    pruner = dg.get_pruner_of_module(root)
    with torch.enable_grad():
        group = dg.get_pruning_group(root, pruner.prune_out_channels,
                                     list(range(pruner.get_out_channels(root))))
    for item in group:
        dep = item.dep
        module = dep.target.module
        if isinstance(module, nn.Parameter) and module in dg._param_to_name:
            yield dg._param_to_name[module], "out", list(item.idxs), list(item.root_idxs)
            continue
        if not isinstance(module, nn.Module) or module not in dg._module2name:
            continue
        side = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
        yield dg._module2name[module], side, list(item.idxs), list(item.root_idxs)


def _width(module: nn.Module, side: str, default: int) -> int:
    """How many channels a side of a layer has at full width."""
    h = handler_for(module)
    if h is not None and side in ("in", "out"):
        return h.in_channels(module) if side == "in" else h.out_channels(module)
    if isinstance(module, nn.modules.conv._ConvNd) and side in ("in", "out"):
        return module.in_channels if side == "in" else module.out_channels
    if isinstance(module, nn.MultiheadAttention) and side == "heads":
        return module.num_heads
    if side == "heads":
        from archlearn.structure.attention import HEADS_ATTRS

        for attr in HEADS_ATTRS:
            if isinstance(getattr(module, attr, None), int):
                return getattr(module, attr)
    if isinstance(module, nn.modules.conv._ConvNd) and side == "blocks":
        return module.groups
    for attr in ("num_features", "normalized_shape", "num_channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return default


# --- the terms ----------------------------------------------------------------------------------

def _own_macs(model: nn.Module, inputs) -> dict[str, float]:
    """Each module's MACs minus its children's (summed, they telescope to the model's total)."""
    totals = layer_macs(model, inputs)
    own = {}
    for name, module in model.named_modules():
        children = sum(totals.get(f"{name}.{c}" if name else c, 0)
                       for c, _ in module.named_children())
        value = totals.get(name, 0) - children
        if value:
            own[name] = float(value)
    return own


def _layer_sides(name: str, module: nn.Module, sides, heads, blocks) -> tuple[Side, ...]:
    """The sides whose fractions a module's compute scales with."""
    if name in heads:
        side = sides.get((name, "heads"))
        return (side,) if side else ()
    if name in blocks:
        side = sides.get((name, "blocks"))
        return (side,) if side else ()
    if is_depthwise(module) or is_grouped(module):
        side = sides.get((name, "out")) or sides.get((name, "in"))
        return (side,) if side else ()
    if handler_for(module) is not None:
        return tuple(s for s in (sides.get((name, "in")), sides.get((name, "out"))) if s)
    side = sides.get((name, "out")) or sides.get((name, "in"))
    return (side,) if side else ()


def _compute_terms(model, own: dict[str, float], sides, heads, blocks):
    """One term per module with its own cost (MACs or time); ungated ones add to the constant.

    Element-wise modules (BatchNorm, activations, pooling) have no MACs; with a latency table
    they scale with the fraction of their channels alive.
    """
    terms, constant = [], 0.0
    modules = dict(model.named_modules())
    for name, value in own.items():
        module = modules.get(name)
        layer_sides = () if module is None else _layer_sides(name, module, sides, heads, blocks)
        if layer_sides:
            terms.append(Term(name, value, layer_sides))
        else:
            constant += value
    return terms, constant


def _param_terms(model, sides, heads, blocks):
    """Per module: a weight scales with both sides, a bias or a per-channel vector with its
    output side; an attention module's own projections (``nn.MultiheadAttention``) with its
    heads; a depthwise or grouped convolution's parameters with its one factor."""
    terms, constant = [], 0.0
    for name, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            n = float(p.numel())
            free = sides.get((f"{name}.{pname}" if name else pname, "out"))
            fractions = (free,) if free else _param_sides(name, module, pname, p, sides, heads,
                                                          blocks)
            if fractions:
                terms.append(Term(f"{name}.{pname}" if name else pname, n, fractions))
            else:
                constant += n
    expected = count_params(model)
    assert abs(constant + sum(t.coef for t in terms) - expected) < 0.5, "parameters missed"
    return terms, constant


def _param_sides(name, module, pname, p, sides, heads, blocks) -> tuple[Side, ...]:
    if name in heads:
        side = sides.get((name, "heads"))
        return (side,) if side and isinstance(module, nn.MultiheadAttention) else ()
    if name in blocks or is_depthwise(module) or is_grouped(module):
        return _layer_sides(name, module, sides, heads, blocks)
    h = handler_for(module)
    inside, outside = sides.get((name, "in")), sides.get((name, "out"))
    if isinstance(module, nn.Embedding):  # a table's columns are the stream
        return (outside,) if outside and p.dim() == 2 and p.shape[1] == outside.full else ()
    if h is not None:
        if pname == "weight":
            return tuple(s for s in (inside, outside) if s)
        return (outside,) if outside and p.dim() == 1 and p.shape[0] == outside.full else ()
    if outside and p.dim() >= 1 and p.shape[0] == outside.full:
        return (outside,)
    return ()


__all__ = ["KINDS", "CostModel", "Side", "Term", "build_cost"]
