"""Groups of coupled units, where each group's gate acts, and where a layer may become linear.

A *unit group* is one set of channels that must be kept or removed together (Torch-Pruning's
pruning group, rooted at a Linear/Conv's output channels). Its gate vector is applied at the
*inputs of the group's consumers* (every Linear/Conv that reads those channels). Gating there,
rather than at the producer's output, makes removal exact whatever sits in between: BatchNorm
(which maps a zero channel to a non-zero constant), residual adds, concatenations, a sigmoid.
This is the tri-state ReLU's own form, ``w * act(x)``, and the switcher network's ``(x * g) W``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.ops import OPTYPE

from archlearn.structure.graph import CallTrace, dependency_graph, trace_calls

# Member types a group may contain and still be removed exactly by gating consumer inputs.
_SUPPORTED = {
    OPTYPE.CONV,
    OPTYPE.LINEAR,
    OPTYPE.BN,
    OPTYPE.ELEMENTWISE,
    OPTYPE.CONCAT,
    OPTYPE.SPLIT,
    OPTYPE.RESHAPE,
}
_RELU_GRAD_FNS = ("ReluBackward0", "ReluBackward1")


@dataclass
class GateSite:
    """A consumer whose input channels ``channels`` are scaled by ``gate[units]``."""

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
class UnitGroup:
    """One gate vector: ``size`` coupled units rooted at module ``name``."""

    name: str
    size: int
    kind: str  # "linear" | "conv"
    sites: list[GateSite]
    depth: DepthSite | None = None
    members: list[str] = field(default_factory=list)


@dataclass
class Skipped:
    """A group left ungated, and why (reported by ``learner.architecture()``)."""

    name: str
    reason: str


def _node_name(dg: tp.DependencyGraph, node) -> str:
    return dg._module2name.get(node.module, node.name)


def _is_output_node(node) -> bool:
    return node.type == getattr(OPTYPE, "OUTPUT", -1) or not node.outputs


def _unsupported_reason(dep) -> str | None:
    node = dep.target
    if node.type not in _SUPPORTED:
        return f"contains a {type(node.module).__name__} ({node.type.name}), which cannot be gated"
    if node.type in (OPTYPE.ELEMENTWISE, OPTYPE.CONCAT) and _reads_untraced_tensor(node):
        return (
            f"its channels meet, in a {node.grad_fn.name()}, a tensor that no layer computes "
            "(the model's input, a buffer or a constant), which cannot be pruned with them"
        )
    module = node.module
    if isinstance(module, nn.modules.conv._ConvNd) and module.groups != 1:
        return "contains a grouped convolution"
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.affine:
        return "contains a BatchNorm without affine parameters"
    return None


def _reads_untraced_tensor(node) -> bool:
    """An add, multiply or concatenation with an operand Torch-Pruning does not track.

    The graph follows autograd, so the model's input, a buffer or a constant tensor has no
    node: pruning the group would shrink one operand and leave the other (``h + x`` with ``x``
    the input then broadcasts or crashes). Free parameters do get nodes (and are refused as
    unsupported members), so only operands without any autograd history are flagged here.
    """
    return any(fn is None for fn, _ in getattr(node.grad_fn, "next_functions", ()))


def find_groups(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    ignored: set[str] | None = None,
) -> tuple[list[UnitGroup], list[Skipped]]:
    """Every gateable group of the model, in forward order, and the groups left out with reasons.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> groups, skipped = find_groups(net, (torch.zeros(1, 4),))
    >>> [(g.name, g.size, g.depth.act) for g in groups]
    [('0', 8, '1')]
    """
    ignored = ignored or set()
    dg = dependency_graph(model, inputs)
    trace = trace_calls(model, inputs)
    groups: list[UnitGroup] = []
    skipped: list[Skipped] = []
    for group in dg.get_all_groups(root_module_types=(nn.Linear, nn.modules.conv._ConvNd)):
        root = group[0].dep.target.module
        name = dg._module2name[root]
        reason = _group_problem(dg, group, ignored)
        if reason == "output":
            continue  # the model's own outputs are never pruned
        if reason:
            skipped.append(Skipped(name, reason))
            continue
        sites = _gate_sites(dg, group)
        unit = UnitGroup(
            name=name,
            size=dg.get_out_channels(root),
            kind="linear" if isinstance(root, nn.Linear) else "conv",
            sites=sites,
            members=sorted({_node_name(dg, d.target) for d, _ in group}),
        )
        unit.depth = _depth_site(dg, group, trace, model)
        groups.append(unit)
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    groups.sort(key=lambda g: order.get(g.name, 0))
    return groups, skipped


def _group_problem(dg: tp.DependencyGraph, group, ignored: set[str]) -> str | None:
    for dep, _ in group:
        node = dep.target
        if dg.is_out_channel_pruning_fn(dep.handler) and _is_output_node(node):
            return "output"
    for dep, _ in group:
        reason = _unsupported_reason(dep)
        if reason:
            return reason
        if _node_name(dg, dep.target) in ignored:
            return "ignored by the user"
    if dg._module2name.get(group[0].dep.target.module) in dg.IGNORED_LAYERS_IN_TRACING:
        return "ignored"
    if not any(dg.is_in_channel_pruning_fn(dep.handler) for dep, _ in group):
        return "has no consumer layer to gate"
    return None


def _gate_sites(dg: tp.DependencyGraph, group) -> list[GateSite]:
    sites = []
    for item in group:
        dep = item.dep
        if dg.is_in_channel_pruning_fn(dep.handler) and isinstance(
            dep.target.module, (nn.Linear, nn.modules.conv._ConvNd)
        ):
            sites.append(
                GateSite(
                    module=dg._module2name[dep.target.module],
                    channels=[int(i) for i in item.idxs],
                    units=[int(i) for i in item.root_idxs],
                )
            )
    return sites


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
    if isinstance(a, nn.Linear) and isinstance(b, nn.Linear):
        return True
    if isinstance(a, nn.Conv2d) and isinstance(b, nn.Conv2d):
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
