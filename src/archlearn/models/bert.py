"""BERT-style encoders (transformers' ``BertModel``) of other shapes: fewer layers, or fewer
heads and FFN neurons per layer, each reloadable with ``al.load(dir, model=BertModel(config))``.

* :func:`truncated`: the first ``k`` layers, what anyone can do by hand (a ``BertModel`` of
  ``k`` layers; its ``config.num_hidden_layers`` says so).
* :func:`keeping`: a copy with, per layer, only the given heads and FFN neurons, made by
  archlearn's own shrinking (gates set to the kept units, then ``shrink``), so it carries the
  recipe that ``al.save``/``al.load`` replay.
* :func:`widths`: heads and FFN neurons per layer of any of them.
(Models are typed ``Any``: their BERT attributes are read by name.)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from archlearn.errors import ArchlearnError

__all__ = ["keeping", "truncated", "widths"]


def _layers(model: Any) -> list[Any]:
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ArchlearnError(f"{type(model).__name__} is not a BERT-style encoder "
                             "(no encoder.layer)")
    return list(layers)


def widths(model: Any) -> dict[str, list[int]]:
    """``{"heads": [...], "ffn": [...]}``: attention heads and FFN neurons of each layer.

    >>> from transformers import BertConfig, BertModel
    >>> widths(BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    ...                             intermediate_size=64)))
    {'heads': [4, 4], 'ffn': [64, 64]}
    """
    layers = _layers(model)
    return {"heads": [int(layer.attention.self.num_attention_heads) for layer in layers],
            "ffn": [int(layer.intermediate.dense.out_features) for layer in layers]}


def truncated(model: Any, k: int) -> Any:
    """A copy of ``model`` with only its first ``k`` layers (embeddings and pooler kept)."""
    n = len(_layers(model))
    if not 1 <= k <= n:
        raise ArchlearnError(f"keep between 1 and {n} layers, got {k}")
    small: Any = copy.deepcopy(model)
    small.encoder.layer = nn.ModuleList(list(small.encoder.layer)[:k])
    small.config = copy.deepcopy(model.config)
    small.config.num_hidden_layers = k
    return small


def keeping(model: Any, heads: Sequence[Sequence[int]], ffn: Sequence[Sequence[int]],
            example_inputs: torch.Tensor) -> Any:
    """A copy of ``model`` keeping, in layer ``i``, heads ``heads[i]`` and FFN neurons
    ``ffn[i]`` (indices into the original layer), shrunk by archlearn (with its recipe).
    """
    import archlearn as al

    layers = _layers(model)
    if len(heads) != len(layers) or len(ffn) != len(layers):
        raise ArchlearnError(f"give the kept heads and FFN neurons of each of the "
                             f"{len(layers)} layers, got {len(heads)} and {len(ffn)}")
    work = copy.deepcopy(model)
    learner = al.attach(work, example_inputs, method="tsrelu", freeze=None)
    names = {}
    for i in range(len(layers)):
        names[f"encoder.layer.{i}.attention.self"] = heads[i]
        names[f"encoder.layer.{i}.intermediate.dense"] = ffn[i]
    found = {g.name for g in learner.groups}
    missing = sorted(set(names) - found)
    if missing:
        raise ArchlearnError(f"these layers are not gated, so they cannot be shrunk: {missing}")
    with torch.no_grad():
        for i, group in enumerate(learner.groups):
            if group.name not in names:
                continue
            keep = torch.as_tensor(list(names[group.name]), dtype=torch.long)
            if keep.numel() and (keep.min() < 0 or keep.max() >= group.size):
                raise ArchlearnError(f"{group.name} has {group.size} units; cannot keep "
                                     f"{keep.tolist()}")
            mask = torch.zeros(group.size)
            mask[keep] = 1.0
            gates: Any = learner.method  # tsrelu: one gate vector w per group
            gates.w[i].copy_(mask)
    small = learner.shrink()
    learner.detach()
    return small
