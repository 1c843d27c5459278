"""From gate decisions to a physically smaller model, and the recipe that replays it.

A *recipe* is a short JSON list of steps (make an activation the identity, remove units of a
group, merge two layers). ``shrink`` computes it and applies it to a copy of the gated model;
``apply_recipe`` replays it on a fresh instance of the user's class before its weights are
loaded, so saving never needs pickle. Torch-Pruning's dependency graph does the slicing of every
coupled layer (weights, biases, BatchNorm statistics, flatten offsets, concatenations).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.attention import fold_mha, prune_heads
from archlearn.structure.graph import dependency_graph, layer, set_module
from archlearn.structure.groups import UnitGroup
from archlearn.structure.handlers import handler_for
from archlearn.structure.merge import merge, merged_cost
from archlearn.structure.stream import prune_stream
from archlearn.structure.weight_gates import fold, keep_zeros

RECIPE_FORMAT = "archlearn.recipe/1"


@dataclass
class Decision:
    """What a method decided for one group: per-unit scale (0 removes the unit) and linearity.

    ``weights``: elementwise scales of whole layers (layer name -> the weight's shape, or
    ``[out, in]`` for a conv), from unstructured methods; folded into the weights, whose zeros
    the shrunk model then keeps (see ``weight_gates.py``). Any decision may carry them.
    """

    scale: torch.Tensor
    linear: bool = False
    weights: dict[str, torch.Tensor] | None = None

    @property
    def kept(self) -> torch.Tensor:
        return (self.scale != 0).nonzero().flatten()


def plan(groups: Sequence[UnitGroup], decisions: Sequence[Decision]) -> list[dict]:
    """The identity and prune steps implied by the decisions (merges are added when applied).

    Ordered so that one dependency graph serves every Torch-Pruning step: activations made the
    identity first (they change the graph), then channel and block removals (the graph follows
    them), then hidden dimensions of residual streams (a returned LayerNorm is replaced, so the
    graph is rebuilt after each), then attention heads (sliced directly, without the graph).
    """
    steps: list[dict] = []
    streams: list[dict] = []
    heads: list[dict] = []
    for group, dec in zip(groups, decisions):
        if dec.linear and group.depth is not None:
            steps.append({"op": "identity", "module": group.depth.act})
    for group, dec in zip(groups, decisions):
        off = (dec.scale == 0).nonzero().flatten().tolist()
        if len(off) == group.size:
            off = off[1:]  # never zero width: keep unit 0, whose consumers' weights are now 0
        if not off:
            continue
        if group.heads is not None:
            heads.append(group.heads.step(off))
        elif group.stream is not None:
            streams.append(group.stream.step(off))
        elif group.blocks is not None:
            steps.append(group.blocks.step(off))
        else:
            steps.append({"op": "prune", "root": group.name, "units": off})
    return steps + streams + heads


def fold_scales(model: nn.Module, groups: Sequence[UnitGroup], decisions: Sequence[Decision]):
    """Multiply each consumer's input-channel weights by its group's unit scales."""
    with torch.no_grad():
        for group, dec in zip(groups, decisions):
            for site in group.sites:
                module = model.get_submodule(site.module)
                scale = dec.scale[torch.tensor(site.units, dtype=torch.long)]
                if isinstance(module, nn.MultiheadAttention):
                    fold_mha(module, scale)
                elif isinstance(module, nn.LayerNorm):  # masked: zero where gated off
                    fold_norm(module, site.channels, scale)
                else:
                    handler = handler_for(module)
                    if handler is None:  # find_groups only makes sites of handled layers
                        raise ArchlearnError(f"no layer handler for gate site {site.module}")
                    handler.fold_input(module, site.channels, scale)


def fold_norm(norm: nn.LayerNorm, channels: Sequence[int], scale: torch.Tensor) -> None:
    """Zero a masked LayerNorm's weight and bias where the gate is off.

    Those entries are removed, except when a whole stream is off and one dimension stays:
    then it must output zero, as the masked LayerNorm does.
    """
    index = torch.as_tensor(list(channels), dtype=torch.long)
    for p in (norm.weight, norm.bias):
        if p is not None:
            on = (scale != 0).to(p)
            p.index_copy_(0, index.to(p.device), p.index_select(0, index.to(p.device)) * on)


def shrink(
    model: nn.Module,
    groups: Sequence[UnitGroup],
    decisions: Sequence[Decision],
    inputs: tuple[torch.Tensor, ...],
) -> tuple[nn.Module, dict]:
    """A smaller copy of ``model`` (which must carry no hooks) and the recipe that rebuilds it."""
    small = copy.deepcopy(model)
    fold_scales(small, groups, decisions)
    scaled = {k: v for d in decisions for k, v in (d.weights or {}).items()}
    fold(small, scaled)
    steps = plan(groups, decisions)
    apply_steps(small, steps, inputs)
    merges = []
    merged_into: dict[str, str] = {}  # a consumer merged away -> the layer that now holds it
    for group, dec in zip(groups, decisions):
        site = group.depth
        if not (dec.linear and site):
            continue
        producer = merged_into.get(site.producer, site.producer)  # chains: A->B->C all linear
        a, b = small.get_submodule(producer), small.get_submodule(site.consumer)
        before, after = merged_cost(a, b)
        if after < before:  # a bottleneck stays: merging it would cost more
            step = {"op": "merge", "producer": producer, "norm": site.norm,
                    "act": site.act, "consumer": site.consumer}
            apply_steps(small, [step], inputs)
            merges.append(step)
            merged_into[site.consumer] = producer
    masks = [{"op": "mask", "modules": sorted(scaled)}] if scaled else []
    keep_zeros(small, sorted(scaled))
    recipe = {
        "format": RECIPE_FORMAT,
        "inputs": [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
                   for t in inputs],
        "steps": steps + merges + masks,
    }
    return small, recipe


def apply_steps(model: nn.Module, steps: Sequence[dict], inputs: tuple[torch.Tensor, ...]):
    """Apply recipe steps in place (identity, prune, merge, mask), in order."""
    dg = None
    for step in steps:
        op = step["op"]
        if op == "identity":
            set_module(model, step["module"], nn.Identity())
            dg = None
        elif op == "prune":
            if dg is None:
                dg = dependency_graph(model, inputs)
            root = model.get_submodule(step["root"])
            pruner: Any = dg.get_pruner_of_module(root)
            with torch.enable_grad():
                dg.get_pruning_group(root, pruner.prune_out_channels, list(step["units"])).prune()
        elif op == "prune_stream":
            prune_stream(model, step, dg or dependency_graph(model, inputs))
            dg = None
        elif op == "prune_heads":
            prune_heads(model, step)
            dg = None
        elif op == "prune_blocks":
            if dg is None:
                dg = dependency_graph(model, inputs)
            prune_blocks(model, step, dg)
        elif op == "merge":
            a = model.get_submodule(step["producer"])
            bn = model.get_submodule(step["norm"]) if step.get("norm") else None
            b = model.get_submodule(step["consumer"])
            set_module(model, step["producer"], merge(a, bn, b))
            for name in (step.get("norm"), step["act"], step["consumer"]):
                if name:
                    set_module(model, name, nn.Identity())
            dg = None
        elif op == "mask":  # replayed before loading: containers for the saved masks
            keep_zeros(model, step["modules"], placeholder=True)
        else:
            raise ValueError(f"unknown recipe step {op!r}")
    return model


def prune_blocks(model: nn.Module, step: dict, dg: tp.DependencyGraph) -> None:
    """Remove whole channel blocks of a grouped convolution, with what produces and reads them.

    Torch-Pruning slices every other member of the two groups (the layer producing the blocks'
    inputs, BatchNorms, readers); the grouped convolution itself is sliced here, because its
    ``groups`` must drop with the blocks (Torch-Pruning's convolution handler keeps it).
    """
    conv = layer(model, step["conv"])
    blocks = sorted(int(b) for b in step["blocks"])
    out_per, in_per = int(step["out_per_block"]), int(step["in_per_block"])
    out_idx = [b * out_per + j for b in blocks for j in range(out_per)]
    in_idx = [b * in_per + j for b in blocks for j in range(in_per)]
    producer = model.get_submodule(step["input_root"])
    with torch.enable_grad():
        pruner: Any = dg.get_pruner_of_module
        sides = [dg.get_pruning_group(conv, pruner(conv).prune_out_channels, out_idx),
                 dg.get_pruning_group(producer, pruner(producer).prune_out_channels, in_idx)]
        for group in sides:
            for dep, idxs in group:
                if dep.target.module is not conv:
                    dep(idxs)
    keep = torch.tensor([i for i in range(conv.out_channels) if i not in set(out_idx)])
    with torch.no_grad():
        conv.weight = nn.Parameter(conv.weight.index_select(0, keep.to(conv.weight.device)))
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.index_select(0, keep.to(conv.bias.device)))
    conv.out_channels -= len(out_idx)
    conv.in_channels -= len(in_idx)
    conv.groups -= len(blocks)


def apply_recipe(model: nn.Module, recipe: dict) -> nn.Module:
    """Replay a recipe on a fresh instance of the original class (weights are loaded after)."""
    if recipe.get("format") != RECIPE_FORMAT:
        raise ValueError(f"not an archlearn recipe (format {recipe.get('format')!r})")
    inputs = tuple(
        torch.zeros(spec["shape"], dtype=getattr(torch, spec["dtype"])) for spec in recipe["inputs"]
    )
    return apply_steps(model, recipe["steps"], inputs)
