"""Groups of coupled units, where each group's gate acts, and where a layer may become linear.

A *unit group* is one set of units kept or removed together, with one gate per unit:

* ``"channels"``: Torch-Pruning's pruning group rooted at a layer's output channels (channels
  added by a residual, concatenated, flattened into a Linear, normalised by a BatchNorm, or read
  by a depthwise convolution, which passes them through);
* ``"heads"``: the heads of one attention module (``attention.py``);
* ``"blocks"``: the channel blocks of a grouped convolution (``1 < groups < channels``): block
  ``b`` is its input channels ``b`` (and the layer producing them) and its output channels ``b``;
* ``"hidden"``: the dimensions of a residual stream behind LayerNorms (embedding columns,
  LayerNorm entries, the rows writing and the columns reading the stream; ``stream.py``).

The gate multiplies the group's channels at the *inputs of the group's consumers* (every layer
that reads them, see ``handlers.py``). Gating there, rather than at the producer's output, makes
removal exact whatever per-channel operation sits in between: BatchNorm (which maps a zero
channel to a non-zero constant), residual adds, a sigmoid, a depthwise convolution. This is the
tri-state ReLU's own form, ``w * act(x)``, and the switcher network's ``(x * g) W``.

What cannot be followed exactly is *skipped* with the reason (an op outside the allow-list of
``ops.py``, a layer type without a handler, a failed trace of one group); ``verify.py`` then
shrinks a copy with a random pattern to catch anything these rules missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.ops import OPTYPE

from archlearn.errors import ArchlearnError
from archlearn.structure.attention import HeadLayout, find_heads
from archlearn.structure.graph import (
    CallTrace,
    dependency_graph,
    flatten_tensors,
    preserved_mode,
    run_model,
    trace_calls,
)
from archlearn.structure.handlers import Layer, handler_for, is_depthwise, is_grouped, out_pruner
from archlearn.structure.ops import (
    LAYOUT,
    channel_shuffle,
    inside_layer,
    norm_problem,
    op_caveat,
    op_name,
    op_problem,
)
from archlearn.structure.stream import (
    StreamLayout,
    channels_last_detour,
    embedding_problem,
    inside_norm,
    norm_dim,
    parameter_problem,
    patch_embedding,
    pooled_to_channels,
)
from archlearn.structure.stream import norm_problem as ln_problem

_RELU_GRAD_FNS = ("ReluBackward0", "ReluBackward1")
_LAYER_TYPES = {OPTYPE.CONV, OPTYPE.LINEAR, OPTYPE.CUSTOMIZED}


@dataclass
class GateSite:
    """A consumer whose input channels ``channels`` are scaled by ``gate[units]``.

    For an ``nn.MultiheadAttention`` site, channels and units are head indices. A LayerNorm
    site of a ``"hidden"`` group is masked: its statistics skip the channels gated off.
    """

    module: str
    channels: list[int]
    units: list[int]


@dataclass
class DepthSite:
    """producer -> [norm] -> act -> consumer with nothing else in between: may become linear."""

    producer: str
    norm: str | None
    act: str
    consumer: str


@dataclass
class BlockLayout:
    """A grouped convolution whose channel blocks are the units."""

    conv: str
    input_root: str
    in_per_block: int
    out_per_block: int

    def step(self, blocks_off: list[int]) -> dict:
        return {"op": "prune_blocks", "conv": self.conv, "input_root": self.input_root,
                "blocks": blocks_off, "in_per_block": self.in_per_block,
                "out_per_block": self.out_per_block}


@dataclass
class UnitGroup:
    """One gate vector: ``size`` coupled units rooted at module ``name``."""

    name: str
    size: int
    kind: str  # "channels" | "heads" | "blocks" | "hidden"
    sites: list[GateSite]
    depth: DepthSite | None = None
    members: list[str] = field(default_factory=list)
    heads: HeadLayout | None = None
    blocks: BlockLayout | None = None
    stream: StreamLayout | None = None
    caveat: str | None = None  # why it would be refused if the trial shrink fails (verify.py)
    producers: list[str] = field(default_factory=list)  # layers whose outputs are the units


@dataclass
class Skipped:
    """A group left ungated, and why (reported by ``learner.architecture()``)."""

    name: str
    reason: str


def _name(dg: tp.DependencyGraph, module) -> str:
    if isinstance(module, nn.Parameter) and module in dg._param_to_name:
        return dg._param_to_name[module]  # a free parameter (ConvNeXt's layer scale)
    return dg._module2name.get(module, getattr(module, "name", None) or repr(module))


def _is_output_node(node) -> bool:
    return node.type == getattr(OPTYPE, "OUTPUT", -1) or not node.outputs


def find_groups(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    ignored: set[str] | None = None,
) -> tuple[list[UnitGroup], list[Skipped]]:
    """Every gateable group of the model, in forward order, and the groups left out with reasons.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> groups, skipped = find_groups(net, (torch.zeros(1, 4),))
    >>> [(g.name, g.size, g.kind, g.depth.act) for g in groups]
    [('0', 8, 'channels', '1')]
    """
    ignored = ignored or set()
    dg = _traced(model, inputs)
    trace = trace_calls(model, inputs)
    groups, skipped = _head_groups(model, inputs, dg, ignored)
    claimed = _claimed(groups)
    tp_groups = _tp_groups(dg, skipped)
    handled: set[nn.Module] = set()
    for conv, producer in _grouped_conv_inputs(dg, tp_groups).items():
        handled |= {conv, producer}
        unit, reason = _block_group(dg, conv, tp_groups.get(conv), tp_groups[producer], ignored,
                                    claimed)
        if unit is not None:
            groups.append(unit)
            continue
        conv_name = dg._module2name[conv]
        skipped.append(Skipped(conv_name, str(reason)))
        skipped.append(Skipped(dg._module2name[producer], f"its channels are read by the grouped "
                                                           f"convolution {conv_name}: {reason}"))
    for root, group in tp_groups.items():
        name = dg._module2name[root]
        if (name, "out") in claimed or root in handled:
            continue  # gated by head, or one side of a grouped convolution's blocks
        if is_grouped(root):
            skipped.append(Skipped(name, "a grouped convolution whose input channels no "
                                         "gateable layer produces"))
            continue
        if any(d.target.type == OPTYPE.LN for d, _ in group):
            hidden, reason = _stream_group(dg, root, group, ignored, claimed)
            if hidden is not None:
                groups.append(hidden)
            else:
                skipped.append(Skipped(name, f"residual stream (hidden dimensions): {reason}"))
            continue
        reason = _group_problem(dg, group, ignored, claimed)
        if reason == "output":
            continue  # the model's own outputs are never pruned
        if reason:
            skipped.append(Skipped(name, reason))
            continue
        unit = UnitGroup(
            name=name,
            size=int(dg.get_out_channels(root) or 0),
            kind="channels",
            sites=_gate_sites(dg, group),
            members=sorted({_name(dg, d.target.module) for d, _ in group}),
            caveat=next((c for d, _ in group if (c := op_caveat(d.target))), None),
            producers=_producers(dg, group),
        )
        unit.depth = _depth_site(dg, group, trace, model)
        groups.append(unit)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    groups.sort(key=lambda g: order.get(g.name, 0))
    return groups, skipped


def _traced(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tp.DependencyGraph:
    """The dependency graph; a failed trace is one error that names the op where it can."""
    try:
        return dependency_graph(model, inputs)
    except ArchlearnError as exc:
        if "key/value cache" in str(exc):
            raise  # a cache's head transposes look like a shuffle; the cache is the cause
        with preserved_mode(model), torch.enable_grad():
            model.eval()
            shuffle = channel_shuffle([t for t in flatten_tensors(run_model(model, inputs))
                                       if t.is_floating_point()])
        if shuffle is None:
            raise
        raise ArchlearnError(f"the model's channels pass through {shuffle}: they cannot be "
                             f"gated exactly ({exc})") from exc


def _tp_groups(dg: tp.DependencyGraph, skipped: list[Skipped]) -> dict[nn.Module, Any]:
    """Torch-Pruning's group of every layer's output channels (as ``get_all_groups`` does, but a
    group Torch-Pruning cannot follow is skipped with the reason instead of ending the loop)."""
    out: dict[nn.Module, Any] = {}
    visited: set[nn.Module] = set()
    # roots in the model's own order: a group is named after its first layer (an expansion
    # convolution, not the squeeze-excitation layer that multiplies the same channels)
    for m in dg.model.modules():
        if m in visited or m not in dg.module2node:
            continue
        if handler_for(m) is None and not is_grouped(m):
            continue
        pruner: Any = dg.get_pruner_of_module(m)
        try:
            group = dg.get_pruning_group(m, pruner.prune_out_channels,
                                         list(range(pruner.get_out_channels(m))))
        except Exception as exc:  # Torch-Pruning's index mapping fails on e.g. channel shuffles
            skipped.append(Skipped(dg._module2name[m], "Torch-Pruning cannot follow its channels "
                                   f"({type(exc).__name__}: {exc})"))
            continue
        for dep, _ in group:
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module,
                                                                        nn.Module):
                visited.add(dep.target.module)
        out[m] = group
    return out


def _head_groups(model, inputs, dg, ignored) -> tuple[list[UnitGroup], list[Skipped]]:
    layouts, refused = find_heads(model, inputs, run_model)
    groups: list[UnitGroup] = []
    skipped = [Skipped(name, reason) for name, reason in refused]
    for lay in layouts:
        layers = {p for p, _ in lay.projections} | ({lay.output} if lay.output else set())
        if lay.module in ignored or layers & ignored:
            skipped.append(Skipped(lay.module, "ignored by the user"))
            continue
        reason = _reaches_output(dg, model, lay)
        if reason:
            skipped.append(Skipped(lay.module, reason))
            continue
        if lay.style == "mha":
            sites = [GateSite(lay.module, list(range(lay.heads)), list(range(lay.heads)))]
        else:
            inner = lay.heads * lay.head_dim
            sites = [GateSite(str(lay.output), list(range(inner)),
                              [c // lay.head_dim for c in range(inner)])]
        producers = sorted({p for p, _ in lay.projections}) or [lay.module]
        groups.append(UnitGroup(lay.module, lay.heads, "heads", sites,
                                members=sorted(layers | {lay.module}), heads=lay,
                                producers=producers))
    return groups, skipped


def _reaches_output(dg, model, lay: HeadLayout) -> str | None:
    """Keys or values that the model returns (a key/value cache) cannot lose heads."""
    for proj, _ in lay.projections:
        module = model.get_submodule(proj)
        if module not in dg.module2node:
            return f"its projection {proj} is not in the traced graph"
        pruner = dg.get_pruner_of_module(module)
        try:
            group = dg.get_pruning_group(module, pruner.prune_out_channels,
                                         list(range(pruner.get_out_channels(module))))
        except Exception as exc:
            return f"Torch-Pruning cannot follow {proj}'s channels ({type(exc).__name__}: {exc})"
        if any(d.target.type == OPTYPE.OUTPUT for d, _ in group):
            return ("its keys/values are returned by the model (a key/value cache): call the "
                    "model without a cache (use_cache=False) to gate its heads")
    return None


def _claimed(groups: list[UnitGroup]) -> set[tuple[str, str]]:
    """(layer, "out"|"in") channel sides that head groups own."""
    claimed: set[tuple[str, str]] = set()
    for g in groups:
        if g.heads is None:
            continue
        claimed |= {(p, "out") for p, _ in g.heads.projections}
        if g.heads.output:
            claimed.add((g.heads.output, "in"))
    return claimed


def _grouped_conv_inputs(dg, tp_groups) -> dict[nn.Module, nn.Module]:
    """grouped conv -> the root of the group producing its input channels (its blocks' inputs)."""
    out = {}
    for root, group in tp_groups.items():
        for dep, _ in group:
            m = dep.target.module
            if (m is not root and is_grouped(m) and dg.is_in_channel_pruning_fn(dep.handler)):
                out[m] = root
    return out


def _member_problem(dg, dep, ignored, claimed, grouped_ok: nn.Module | None = None,
                    channel_dim: int | None = None, stream: bool = False,
                    internal: frozenset = frozenset()) -> str | None:
    node = dep.target
    if node in internal:
        return None  # inside a channels-first LayerNorm's forward, masked with it
    module = node.module
    name = _name(dg, module)
    side = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
    if name in ignored and side == "out":  # a layer's own units; what it reads stays gateable
        return "ignored by the user"
    if (name, side) in claimed:
        return f"its channels are coupled with the attention layer {name}"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return norm_problem(node)
    if stream and node.type == OPTYPE.LN:
        return ln_problem(module)
    if stream and node.type == OPTYPE.EMBED:
        return embedding_problem(module)
    if stream and node.type == OPTYPE.PARAMETER:
        return parameter_problem(module, getattr(node, "pruning_dim", None), channel_dim)
    if stream and node.type == OPTYPE.EXPAND and node.inputs and all(
            i.type == OPTYPE.PARAMETER for i in node.inputs):
        return None  # a free parameter broadcast over the batch (a ViT's class token)
    if stream and node.type == OPTYPE.OUTPUT:
        return None  # which LayerNorm the model returns: _returned_norms
    if isinstance(module, nn.Module) and node.type in _LAYER_TYPES | {OPTYPE.DEPTHWISE_CONV}:
        if is_depthwise(module) or handler_for(module) is not None or module is grouped_ok:
            return None
        if is_grouped(module):
            return f"its channels are read by the grouped convolution {name} with other layers"
        return f"contains a {type(module).__name__} ({name}), a layer type without a handler"
    return op_problem(node, channel_dim)


def _inside_norms(group) -> frozenset:
    """The nodes computed inside the group's channels-first LayerNorms, the reshape and
    transpose of a patch embedding and the permutes of a channels-last detour
    (``stream.py``): no layout change of the group."""
    return frozenset(n for d, _ in group for n in inside_norm(d.target)
                     + patch_embedding(d.target) + channels_last_detour(d.target))


def _norm_dim(node, internal: frozenset) -> int | None:
    """The stream dimension a LayerNorm's node normalises: 1 for a channels-last LayerNorm
    reached through a channels-last detour of an NCHW stream or reading it pooled to (N, C)."""
    detour = channels_last_detour(node)
    if (detour and detour[0] in internal) or pooled_to_channels(node):
        return 1
    return norm_dim(node.module)


def _channel_dim(dg, group, internal: frozenset = frozenset()) -> int | None:
    """Where the group's channels sit in its activations, if every producer agrees and no
    permute/transpose moves them (other than inside a channels-first LayerNorm)."""
    if any(d.target.type == OPTYPE.ELEMENTWISE and op_name(d.target.grad_fn) in LAYOUT
           and d.target not in internal for d, _ in group):
        return None
    dims = set()
    for dep, _ in group:
        m = dep.target.module
        if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(m, nn.Module):
            h = handler_for(m)
            if h is not None and patch_embedding(dep.target) and dep.target.outputs[0] in internal:
                dims.add(-1)  # tokens after flatten(2).transpose(1, 2): channels last
            elif h is not None and set(channels_last_detour(dep.target)) & internal:
                dims.add(1)  # a Linear writing NHWC, permuted back to the NCHW stream
            elif h is not None:
                dims.add(h.channel_dim)
            elif isinstance(m, nn.modules.conv._ConvNd):
                dims.add(1)
    return dims.pop() if len(dims) == 1 else None


def _group_problem(dg: tp.DependencyGraph, group, ignored: set[str], claimed,
                   grouped_ok: nn.Module | None = None, stream: bool = False) -> str | None:
    for dep, _ in group:
        if not stream and dg.is_out_channel_pruning_fn(dep.handler) and _is_output_node(
                dep.target):
            return "output"
    internal = _inside_norms(group) if stream else frozenset()
    channel_dim = _channel_dim(dg, group, internal)
    for dep, _ in group:
        reason = _member_problem(dg, dep, ignored, claimed, grouped_ok, channel_dim, stream,
                                 internal)
        if reason:
            return reason
    names = {op_name(d.target.grad_fn) for d, _ in group if d.target.type == OPTYPE.ELEMENTWISE
             and d.target not in internal}
    if names & LAYOUT and any(d.target.type == OPTYPE.RESHAPE for d, _ in group):
        return ("its channels are reshaped and permuted (e.g. a channel shuffle), which cannot "
                "be followed exactly")
    if not any(dg.is_in_channel_pruning_fn(dep.handler) and _is_site(dep.target.module)
               for dep, _ in group):
        return "has no consumer layer to gate"
    return None


def _producers(dg, group) -> list[str]:
    return sorted({dg._module2name[d.target.module] for d, _ in group
                   if dg.is_out_channel_pruning_fn(d.handler)
                   and isinstance(d.target.module, nn.Module)
                   and getattr(d.target.module, "weight", None) is not None
                   and d.target.type in _LAYER_TYPES | {OPTYPE.DEPTHWISE_CONV}})


def _is_site(module) -> bool:
    return isinstance(module, nn.Module) and handler_for(module) is not None


def _gate_sites(dg: tp.DependencyGraph, group, per_unit: int = 1) -> list[GateSite]:
    sites = []
    for item in group:
        dep = item.dep
        if dg.is_in_channel_pruning_fn(dep.handler) and _is_site(dep.target.module):
            sites.append(
                GateSite(
                    module=dg._module2name[dep.target.module],
                    channels=[int(i) for i in item.idxs],
                    units=[int(i) // per_unit for i in item.root_idxs],
                )
            )
    return sites


def _stream_group(dg, root: nn.Module, group, ignored, claimed):
    """A residual stream behind LayerNorms as one group of hidden dimensions (``stream.py``).

    Every member must be a layer with a handler, a LayerNorm over the stream's channel
    dimension (the last one, or dimension 1 of a channels-first LayerNorm after convolutions),
    an embedding table, a per-channel free parameter or a per-channel op; no two members may
    share a weight (tied embeddings); the model may return the stream only as a LayerNorm's
    output (kept at full width).
    """
    name = dg._module2name[root]
    reason = _group_problem(dg, group, ignored, claimed, stream=True)
    if reason:
        return None, reason
    internal = _inside_norms(group)
    channel_dim = _channel_dim(dg, group, internal)
    dims = {_norm_dim(d.target, internal) for d, _ in group if d.target.type == OPTYPE.LN}
    if channel_dim is None or dims != {channel_dim}:
        return None, ("does not hold its channels in the dimension every LayerNorm normalises "
                      "(the last one, or the first after the batch for a channels-first one)")
    tied = _tied(dg, group)
    if tied:
        return None, tied
    returned = _returned_norms(dg, group)
    if isinstance(returned, str):
        return None, returned
    padded, full_readers = returned
    norms = [item for item in group if item.dep.target.type == OPTYPE.LN]
    sites = _gate_sites(dg, group) + [
        GateSite(_name(dg, item.dep.target.module), [int(i) for i in item.idxs],
                 [int(i) for i in item.root_idxs]) for item in norms]
    layout = StreamLayout(name, sorted({s.module for s in sites[-len(norms):]}), padded,
                          full_readers)
    return UnitGroup(
        name=name,
        size=int(dg.get_out_channels(root) or 0),
        kind="hidden",
        sites=sites,
        members=sorted({_name(dg, d.target.module) for d, _ in group} - set(full_readers)),
        stream=layout,
        caveat=next((c for d, _ in group if (c := op_caveat(d.target))), None),
        producers=_producers(dg, group),
    ), None


def _tied(dg, group) -> str | None:
    """Two members of the group sharing a parameter (an embedding tied to an output layer)."""
    owner: dict[int, str] = {}
    for dep, _ in group:
        module = dep.target.module
        if not isinstance(module, nn.Module):
            continue
        name = _name(dg, module)
        for p in module.parameters(recurse=False):
            other = owner.setdefault(id(p), name)
            if other != name:
                return f"has layers sharing one weight ({other} and {name}, tied embeddings)"
    return None


def _returned_norms(dg, group) -> tuple[list[str], list[str]] | str:
    """The LayerNorms whose output the model returns, and the layers reading those outputs.

    In the shrunk model such a LayerNorm writes the full width (zeros at removed dimensions),
    so what reads its output must be a layer keeping its full input width, or the model's
    output itself; the stream may not go on from there (a residual sum would mix widths).
    """
    returned = {id(fn) for fn in getattr(dg, "archlearn_returned", [])}
    members = {d.target for d, _ in group}
    padded: set[nn.Module] = set()
    for dep, _ in group:
        node = dep.target
        if not dg.is_out_channel_pruning_fn(dep.handler):
            continue
        if node.type != OPTYPE.OUTPUT and id(node.grad_fn) not in returned:
            continue
        while node.type != OPTYPE.LN:  # back through one-input ops to a LayerNorm
            if node.type not in (OPTYPE.OUTPUT, OPTYPE.RESHAPE, OPTYPE.ELEMENTWISE) or len(
                    node.inputs) != 1:
                return ("is returned by the model other than as a LayerNorm's output, so its "
                        "dimensions cannot be removed without changing the output")
            node = node.inputs[0]
        padded.add(node.module)
    readers: set[str] = set()
    for norm in padded:
        stack, seen = list(dg.module2node[norm].outputs), set()
        while stack:
            node = stack.pop()
            if node in seen or node not in members:
                continue
            seen.add(node)
            if node.type in _LAYER_TYPES and _is_site(node.module):
                readers.add(_name(dg, node.module))
                continue
            if node.type == OPTYPE.OUTPUT or inside_layer(node) or (
                    node.type in (OPTYPE.RESHAPE, OPTYPE.ELEMENTWISE) and len(node.inputs) == 1):
                stack.extend(node.outputs)
                continue
            return (f"is returned by the model as the output of {_name(dg, norm)}, which also "
                    "feeds the stream further (e.g. output_hidden_states=True)")
    return sorted(_name(dg, m) for m in padded), sorted(readers)


def _block_group(dg, conv: Layer, out_group, in_group, ignored, claimed):
    """Units = the channel blocks of a grouped convolution (its input and output channels ``b``).

    The output side is ``conv``'s own group; the input side, the group of the layer producing
    its input, must have no other reader, so removing block ``b`` removes exactly that block.
    """
    name = dg._module2name[conv]
    if out_group is None:
        return None, "Torch-Pruning cannot follow the grouped convolution's output channels"
    reason = _group_problem(dg, out_group, ignored, claimed, grouped_ok=conv)
    if reason == "output":
        return None, "the grouped convolution's channels are the model's output"
    if reason:
        return None, reason
    reason = _group_problem(dg, in_group, ignored, claimed, grouped_ok=conv)
    if reason not in (None, "has no consumer layer to gate"):
        return None, f"the grouped convolution's input group: {reason}"
    readers = [d.target.module for d, _ in in_group
               if dg.is_in_channel_pruning_fn(d.handler) and isinstance(d.target.module, nn.Module)
               and d.target.type in _LAYER_TYPES | {OPTYPE.DEPTHWISE_CONV}]
    if readers != [conv]:
        return None, "the channels read by the grouped convolution are also read by other layers"
    for item in in_group:
        if item.dep.target.module is conv and list(item.idxs) != list(item.root_idxs):
            return None, "the grouped convolution's input channels are reordered"
    g = conv.groups
    out_per, in_per = conv.out_channels // g, conv.in_channels // g
    root = in_group[0].dep.target.module
    sites = _gate_sites(dg, out_group, per_unit=out_per)
    members = {_name(dg, d.target.module) for d, _ in out_group}
    members |= {_name(dg, d.target.module) for d, _ in in_group}
    layout = BlockLayout(name, dg._module2name[root], in_per, out_per)
    producers = sorted(set(_producers(dg, out_group)) | set(_producers(dg, in_group)))
    return UnitGroup(name, g, "blocks", sites, members=sorted(members), blocks=layout,
                     producers=producers), None


def _depth_site(dg: tp.DependencyGraph, group, trace: CallTrace, model: nn.Module):
    """A producer -> [BN] -> ReLU module -> consumer chain that could collapse into one layer."""
    producers = [d.target for d, _ in group if dg.is_out_channel_pruning_fn(d.handler)
                 and d.target.type in (OPTYPE.CONV, OPTYPE.LINEAR)]
    if len(producers) != 1:
        return None  # residual or concatenated channels: no single chain to merge
    node = producers[0]
    norm = None
    if len(node.outputs) != 1:
        return None
    nxt = node.outputs[0]
    if nxt.type == OPTYPE.BN:
        norm, node = nxt, nxt
        if len(node.outputs) != 1:
            return None
        nxt = node.outputs[0]
    if type(nxt.grad_fn).__name__ not in _RELU_GRAD_FNS or len(nxt.outputs) != 1:
        return None
    consumer = nxt.outputs[0]
    prod_mod, cons_mod = producers[0].module, consumer.module
    if not _mergeable(prod_mod, cons_mod):
        return None
    before = dg._module2name[(norm or producers[0]).module]
    act = _activation_module(trace, model, before, dg._module2name[cons_mod])
    if act is None:
        return None  # a functional relu: no module to put the depth gate on
    return DepthSite(
        producer=dg._module2name[prod_mod],
        norm=dg._module2name[norm.module] if norm else None,
        act=act,
        consumer=dg._module2name[cons_mod],
    )


def _mergeable(a: nn.Module, b: nn.Module) -> bool:
    if type(a) is nn.Linear and type(b) is nn.Linear:
        return True
    if type(a) is nn.Conv2d and type(b) is nn.Conv2d:
        return (
            b.kernel_size == (1, 1) and b.stride == (1, 1) and b.padding in ((0, 0), "valid")
            and b.dilation == (1, 1) and b.groups == 1 and a.groups == 1
        )
    return False


def _activation_module(trace: CallTrace, model: nn.Module, before: str, after: str) -> str | None:
    out = trace.output_of.get(before)
    for name, ins in trace.inputs_of.items():
        module = model.get_submodule(name)
        if isinstance(module, nn.ReLU) and out in ins and trace.calls.get(name) == 1:
            if trace.output_of.get(name) in trace.inputs_of.get(after, []):
                return name
    return None


__all__ = ["BlockLayout", "DepthSite", "GateSite", "Skipped", "UnitGroup", "find_groups",
           "out_pruner"]
