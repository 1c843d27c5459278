"""The baselines archlearn's shrunk MiniLM is compared with.

* **Keep the first k layers** (:func:`archlearn.models.bert.truncated`): what anyone can do by
  hand; then the same distillation as archlearn's student.
* **Torch-Pruning** (:func:`torch_pruning_selection`): the heads and FFN neurons Torch-Pruning
  removes from a BERT, as its Hugging Face BERT example configures it: L2-magnitude importance
  averaged over each coupled group, the same ratio in every layer (no global ranking), whole
  heads (``num_heads`` of the query/key/value projections, ``prune_num_heads=True``,
  ``prune_head_dims=False``, ``head_pruning_ratio`` equal to the FFN ratio) and the hidden
  size left alone (the layers writing the residual stream and the pooler are ignored). The
  ratio is bisected until the MACs land on the target. Torch-Pruning *selects*; the units are
  removed by archlearn's shrinking (:func:`archlearn.models.bert.keeping`), which slices the
  same rows and columns and leaves a model ``al.save``/``al.load`` handle like the others.
  Importance by gradients (Taylor) is no use here: the student starts as an exact copy of the
  teacher, where the distillation loss and its gradient are zero.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch

from archlearn.errors import ArchlearnError

Selection = tuple[list[list[int]], list[list[int]]]  # kept heads, kept FFN neurons per layer


def _select(model: Any, example: torch.Tensor, ratio: float) -> Selection:
    """Torch-Pruning's choice at ``ratio`` (nothing is pruned: the interactive groups are read)."""
    import torch_pruning as tp

    work: Any = copy.deepcopy(model).eval()
    layers = list(work.encoder.layer)
    num_heads = {}
    for layer in layers:
        attention = layer.attention.self
        for proj in (attention.query, attention.key, attention.value):
            num_heads[proj] = attention.num_attention_heads
    ignored = [layer.attention.output.dense for layer in layers]
    ignored += [layer.output.dense for layer in layers]
    if getattr(work, "pooler", None) is not None:
        ignored.append(work.pooler.dense)
    where = {}
    for i, layer in enumerate(layers):
        where[id(layer.attention.self.query)] = ("heads", i)
        where[id(layer.intermediate.dense)] = ("ffn", i)
    heads = [set(range(layer.attention.self.num_attention_heads)) for layer in layers]
    ffn = [set(range(layer.intermediate.dense.out_features)) for layer in layers]
    with torch.enable_grad():
        importance = tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean")
        pruner = tp.pruner.BasePruner(
            work, cast(Any, {"input_ids": example}), importance=importance,
            global_pruning=False, pruning_ratio=ratio, num_heads=num_heads,
            prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=ratio,
            ignored_layers=ignored, output_transform=lambda out: out.last_hidden_state.sum())
        for group in pruner.step(interactive=True) or ():
            for item in group:
                key = where.get(id(item.dep.target.module))
                if key is None or not pruner.DG.is_out_channel_pruning_fn(item.dep.handler):
                    continue
                kind, i = key
                if kind == "heads":
                    size = layers[i].attention.self.attention_head_size
                    heads[i] -= {int(c) // size for c in item.idxs}
                else:
                    ffn[i] -= {int(c) for c in item.idxs}
    return [sorted(h) for h in heads], [sorted(f) for f in ffn]


def macs_counter(model: Any, example: torch.Tensor) -> Callable[[Selection], float]:
    """``macs_of(selection)``: the MACs of ``model`` keeping a selection of heads and FFN
    neurons, from archlearn's exact cost polynomial (no model is built per call)."""
    import archlearn as al
    from archlearn.structure.cost import build_cost

    probe = al.attach(copy.deepcopy(model), example, method="tsrelu", freeze=None)
    with probe.hooks.suspended():
        cost = build_cost(probe.model, probe.groups, (example,), "macs")
    index = {g.name: i for i, g in enumerate(probe.groups)}
    sizes = [g.size for g in probe.groups]
    layers = len(list(model.encoder.layer))

    def macs_of(selection: Selection) -> float:
        alive = [torch.ones(n, dtype=torch.float64) for n in sizes]
        for i in range(layers):
            for name, kept in ((f"encoder.layer.{i}.attention.self", selection[0][i]),
                               (f"encoder.layer.{i}.intermediate.dense", selection[1][i])):
                a = torch.zeros(sizes[index[name]], dtype=torch.float64)
                a[torch.as_tensor(kept, dtype=torch.long)] = 1.0
                alive[index[name]] = a
        return float(cost.total(alive))

    return macs_of


def torch_pruning_selection(model: Any, example: torch.Tensor, target_macs: float,
                            macs_of: Callable[[Selection], float],
                            iterations: int = 8) -> tuple[Selection, float]:
    """Torch-Pruning's heads and FFN neurons whose MACs are closest to ``target_macs``.

    ``macs_of(selection)`` counts a selection's MACs. Returns the selection and its ratio.
    """
    lo, hi = 0.0, 0.95
    best: tuple[float, Selection, float] | None = None
    for _ in range(iterations):
        ratio = (lo + hi) / 2
        selection = _select(model, example, ratio)
        macs = macs_of(selection)
        gap = abs(macs - target_macs)
        if best is None or gap < best[0]:
            best = (gap, selection, ratio)
        if macs > target_macs:
            lo = ratio
        else:
            hi = ratio
    if best is None:
        raise ArchlearnError("Torch-Pruning selected nothing")
    return best[1], best[2]
