"""How much of a model the attached gates can learn: shares of channels, parameters and MACs.

A layer's output channels are *gated* when they are the units of a gate group (a layer of a
channel group, the query/key/value rows of a head group, a grouped convolution's blocks). The
channel share counts only *removable* channels: the output channels of every layer (Linear,
convolution, transformers' Conv1D, attention) except the model's output layers, whose output
channels are the model's own outputs (the classifier's 1000 logits, a pooler's outputs: the
layers whose Torch-Pruning group reaches an output of the model). Those can never be removed
by any structure learning; counted, they would make a 1000-class ResNet-18 look 17% ungated.
The raw share of all output channels, output layers included, is reported too
(``channels_all``).

A layer is *touched* when any of its dimensions belongs to a gate group; its parameters and MACs
are then those that structure learning can shrink. Everything else (the classifier, what was
skipped) stays as it is. A residual stream's writers count as gated when its hidden dimensions
are a group; embedding tables, LayerNorms and free per-channel parameters (ConvNeXt's layer
scale) have no output channels here, but their parameters shrink with the stream.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from archlearn.structure.graph import dependency_graph
from archlearn.structure.groups import _is_output_node
from archlearn.structure.handlers import handler_for
from archlearn.structure.measure import count_params, layer_macs


def _out_channels(module: nn.Module) -> int:
    if isinstance(module, nn.MultiheadAttention):
        return 3 * module.embed_dim
    h = handler_for(module)
    if h is not None:
        return h.out_channels(module)
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels
    return 0


def output_layers(model: nn.Module, inputs: tuple[torch.Tensor, ...],
                  candidates: list[str]) -> set[str]:
    """Those of the ``candidates`` (layer names) whose output channels are the model's outputs:
    Torch-Pruning's group of their output channels holds an output of the model.

    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> sorted(output_layers(net, (torch.zeros(1, 4),), ["0", "2"]))
    ['2']
    """
    dg = dependency_graph(model, inputs)
    out = set()
    for name in candidates:
        module = model.get_submodule(name)
        if module not in dg.module2node:
            continue
        pruner: Any = dg.get_pruner_of_module(module)
        if pruner is None:
            continue
        try:
            with torch.enable_grad():
                group = dg.get_pruning_group(module, pruner.prune_out_channels,
                                             list(range(pruner.get_out_channels(module))))
        except Exception:  # a group Torch-Pruning cannot follow is no output (and was skipped)
            continue
        # the rule by which find_groups leaves a group out as "the model's own outputs"
        if any(dg.is_out_channel_pruning_fn(d.handler) and _is_output_node(d.target)
               for d, _ in group):
            out.add(name)
    return out


def coverage(learner) -> dict[str, float]:
    """Shares of removable output channels, of parameters and of MACs that the learner's groups
    can shrink, and ``channels_all``, the share of all output channels (the model's output
    layers included; see the module docstring).

    >>> import archlearn as al, torch
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> share = coverage(al.attach(net, torch.zeros(1, 4), total_steps=10))
    >>> share["channels"], share["channels_all"]  # the 2 outputs are the model's own
    (1.0, 0.8)
    """
    model = learner.model
    layers = {n: m for n, m in model.named_modules() if _out_channels(m)}
    gated = {p for g in learner.groups for p in g.producers}
    touched = {m for g in learner.groups for m in g.members} & set(layers)
    # a residual stream's embedding tables, LayerNorms and free parameters shrink with its
    # hidden dimensions
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    stream = {m for g in learner.groups if g.kind == "hidden" for m in g.members} - touched
    shrinking = {id(p): p.numel() for n in touched | stream if n in modules
                 for p in modules[n].parameters()}
    shrinking |= {id(params[n]): params[n].numel() for n in stream if n in params}
    with ExitStack() as stack:
        for hooks in (learner.hooks, getattr(learner, "weight_hooks", None)):
            if hooks is not None:
                stack.enter_context(hooks.suspended())
        macs = layer_macs(model, learner.inputs)
        outputs = output_layers(model, learner.inputs, sorted(set(layers) - gated))
    total_macs = macs[""] or 1
    total_channels = sum(_out_channels(m) for m in layers.values())
    removable = total_channels - sum(_out_channels(layers[n]) for n in outputs)
    gated_channels = sum(_out_channels(layers[n]) for n in gated if n in layers)
    return {
        "channels": gated_channels / max(removable, 1),
        "channels_all": gated_channels / total_channels,
        "params": sum(shrinking.values()) / count_params(model),
        "macs": sum(macs.get(n, 0) for n in touched) / total_macs,
    }
