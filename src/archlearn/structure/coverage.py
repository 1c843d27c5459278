"""How much of a model the attached gates can learn: shares of channels, parameters and MACs.

A layer's output channels are *gated* when they are the units of a gate group (a layer of a
channel group, the query/key/value rows of a head group, a grouped convolution's blocks). A
layer is *touched* when any of its dimensions belongs to a gate group; its parameters and MACs
are then those that structure learning can shrink. Everything else (the classifier, what was
skipped) stays as it is. A residual stream's writers count as gated when its hidden dimensions
are a group; embedding tables and LayerNorms have no output channels here.
"""

from __future__ import annotations

from torch import nn

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


def coverage(learner) -> dict[str, float]:
    """Shares of output channels, parameters and MACs that the learner's groups can shrink.

    >>> import archlearn as al, torch
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> coverage(al.attach(net, torch.zeros(1, 4), total_steps=10))["channels"]
    0.8
    """
    model = learner.model
    layers = {n: m for n, m in model.named_modules() if _out_channels(m)}
    gated = {p for g in learner.groups for p in g.producers}
    touched = {m for g in learner.groups for m in g.members} & set(layers)
    # a residual stream's embedding tables and LayerNorms shrink with its hidden dimensions
    modules = dict(model.named_modules())
    stream = {m for g in learner.groups if g.kind == "hidden" for m in g.members} - touched
    shrinking = {id(p): p.numel() for n in touched | stream if n in modules
                 for p in modules[n].parameters()}
    total_channels = sum(_out_channels(m) for m in layers.values())
    with learner.hooks.suspended():
        macs = layer_macs(model, learner.inputs)
    total_macs = macs[""] or 1
    return {
        "channels": sum(_out_channels(layers[n]) for n in gated if n in layers) / total_channels,
        "params": sum(shrinking.values()) / count_params(model),
        "macs": sum(macs.get(n, 0) for n in touched) / total_macs,
    }
