"""``al.compress``: a trained model shrunk to a budget in minutes, without training.

What people bring is a trained model and a budget. Learning gates from an all-on start gets no
signal where the task loss is already minimal; the field's post-training recipe does better in
minutes (Kwon et al., 2022; K-prune, Park et al., 2024), and this is it, on archlearn's own
structure (any model its gate groups cover: channels, heads, FFN neurons, grouped-conv blocks):

1. **score** every unit on a few hundred unlabelled examples (``scores.py``): its activation
   energy times the norm of the weights that read it, or a Taylor score when a loss is given;
   each group's scores are divided by the group's total (a layer's units compete for that
   layer's output, and the layers for the budget), except in a post-LayerNorm transformer,
   where heads and FFN units are fractions of one residual stream's energy (``_share``);
2. **allocate** the budget exactly (``structure/allocate.py``): score per unit of marginal
   cost over the exact cost model (params, MACs with the attention products, or a latency
   table), within 2% under the budget wherever the units allow; a wide transformer FFN then
   keeps a multiple of :data:`WIDTH_MULTIPLE` units (faster on CPU at the same fidelity);
3. **shrink** a copy (``structure/shrink.py``, exact, with the recipe for ``al.save``);
4. **re-fit** each layer that read removed units by ridge least squares, bottom-up
   (``refit.py``), so that the compressed model's layer outputs match the original's again.

>>> import torch, archlearn as al
>>> from torch import nn
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<...>
>>> net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
...                     nn.Linear(64, 2))
>>> small = al.compress(net, torch.randn(256, 8), budget={"params": 0.5}, progress=False)
>>> report = small.archlearn_report
>>> report["budget"]["reached"] <= 0.5, report["budget"]["reached"] >= 0.49
(True, True)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from archlearn.budget import parse_budget
from archlearn.compression.calibration import Batch, Call, calls
from archlearn.compression.calibration import example_inputs as traced_inputs
from archlearn.compression.refit import RIDGE, Reader, refit_readers, residual_streams
from archlearn.compression.scores import Loss, unit_scores
from archlearn.errors import ArchlearnError
from archlearn.structure.allocate import allocate
from archlearn.structure.cost import CostModel, _items, build_cost
from archlearn.structure.gating import GateHooks
from archlearn.structure.graph import as_tuple, dependency_graph
from archlearn.structure.groups import UnitGroup
from archlearn.structure.handlers import handler_for
from archlearn.structure.measure import count_macs, count_params
from archlearn.structure.shrink import Decision, shrink
from archlearn.structure.verify import assert_same_outputs, gateable_groups

__all__ = ["HEAD_WEIGHT", "WIDTH_MULTIPLE", "compress", "decide"]

#: Heads' stream-energy scores are weighted by this against the FFN units'. The re-fit of an FFN
#: output layer recovers much of a removed neuron from the kept ones (a block's FFN activations
#: are strongly correlated), less so a removed head from the other heads' contexts, so energy
#: alone removes too many heads: the re-fit-aware OBS score ("compensated") keeps more heads too.
#: Selected on MiniLM's validation sentences (50% of the MACs, 512 calibration sentences,
#: cosine / top-10 agreement after the re-fit): 1: 0.904 / 0.596, 1.5: 0.917 / 0.648,
#: 2: 0.912 / 0.651, 2.5: 0.908 / 0.649, 3: 0.898 / 0.636, 4: 0.892 / 0.627.
HEAD_WEIGHT = 1.5

#: A transformer FFN group at least :data:`WIDE` units wide keeps a multiple of this many units
#: (CPU GEMMs run faster on aligned widths; the budget freed by rounding down goes back in blocks
#: of this many, best score per MAC first). MiniLM at 50% of the MACs, 512 calibration sentences
#: (seed 0, ``one_shot.calibration_sentences``), on the validation sentences: cosine / top-10
#: 0.9170 / 0.6475 as allocated, 0.9167 / 0.6475 at multiples of 16 (0.9167 / 0.6465 at 32);
#: speed-up at 32x128 (``compare_latency``, 2 threads, interleaved), 5 repeats: as allocated
#: 1.79 / 1.92 / 1.93 / 1.97 / 1.88, at multiples of 16 1.80 / 1.98 / 2.10 / 2.06 / 1.99.
WIDTH_MULTIPLE = 16
WIDE = 256


def compress(
    model: nn.Module,
    calibration: Iterable[Batch] | torch.Tensor,
    budget: dict[str, float],
    *,
    loss: Loss | None = None,
    targets: Sequence[Any] | None = None,
    score: str = "auto",
    refit_layers: bool = True,
    ridge: float = RIDGE,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    ignore: list[str] | None = None,
    progress: bool = True,
) -> nn.Module:
    """A new, smaller model within ``budget``, its layers re-fitted; ``model`` is left as it is.

    ``calibration``: model inputs from the training data (an iterable of tensors, tuples of
    tensors or dicts of keyword tensors; or one tensor, batched by 64), a few hundred examples.
    ``budget``: ``{"macs": 0.5}``, ``{"params": 40000}`` (above 1: absolute) or
    ``{"latency": 0.5}``. MACs and latency are counted for ``example_inputs`` (default: the
    first calibration example): pass the shape you deploy, e.g. one 128-token sentence.
    ``loss(output, target)`` switches the score to Taylor (``score="taylor"``), ``target`` being
    ``targets[i]`` for batch ``i`` (default: the batch). ``ignore`` names layers whose units
    stay. The decision, its costs and the re-fit are in ``small.archlearn_report``;
    ``al.save(small, dir)`` stores it like a shrunk learner.
    """
    t0 = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise ArchlearnError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kind, value = parse_budget(budget)
    batches = calls(calibration)
    if score == "auto":
        score = "energy" if loss is None else "taylor"
    work = copy.deepcopy(model)  # the user's model is never touched, not even by hooks
    device = next((p.device for p in work.parameters()), torch.device("cpu"))
    batches = [c.to(device) for c in batches]
    inputs = (as_tuple(example_inputs) if example_inputs is not None
              else traced_inputs(work, batches[0]))
    decision = decide(work, inputs, batches, kind, value, score=score, loss=loss,
                      targets=targets, ignore=ignore, progress=progress)
    t1 = time.perf_counter()
    small, recipe = shrink(work, decision.groups, decision.decisions, inputs)
    _check_exact(work, small, decision, inputs)
    t2 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    if refit_layers:
        readers = _readers(work, decision, inputs)
        rows = refit_readers(work, small, readers, batches, ridge=ridge, progress=progress)
    t3 = time.perf_counter()
    counted = {"params": count_params(small), "macs": count_macs(small, inputs)}
    report = decision.report(counted)
    report.update(
        score=score, calibration_examples=sum(c.size for c in batches), refit=rows,
        seconds={"decide": t1 - t0, "shrink": t2 - t1, "refit": t3 - t2,
                 "total": time.perf_counter() - t0})
    setattr(small, "archlearn_recipe", recipe)  # noqa: B010 (read by al.save)
    setattr(small, "archlearn_report", report)  # noqa: B010
    return small


class Decided:
    """What to keep: per group the alive units, with the cost model that counted them."""

    def __init__(self, groups: list[UnitGroup], skipped, alive: list[torch.Tensor],
                 cost: CostModel, target: float, scores: list[torch.Tensor]) -> None:
        self.groups, self.skipped, self.alive = groups, skipped, alive
        self.cost, self.target, self.scores = cost, target, scores

    @property
    def decisions(self) -> list[Decision]:
        return [Decision(a.to(torch.float32)) for a in self.alive]

    def report(self, counted: dict[str, int] | None = None) -> dict[str, Any]:
        reached = float(self.cost.total(self.alive))
        kind = self.cost.kind
        budget = {"kind": kind, "target": self.target, "full": self.cost.full,
                  "budget": self.target / self.cost.full, "reached_count": reached,
                  "reached": reached / self.cost.full}
        if counted and kind in counted:  # counted on the compressed model itself
            budget["counted"] = counted[kind]
        layers = [{"name": g.name, "kind": g.kind, "width": int(a.sum()), "of": g.size}
                  for g, a in zip(self.groups, self.alive)]
        return {"budget": budget, "layers": layers, **(counted or {}),
                "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped]}


def decide(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    batches: Sequence[Call],
    kind: str,
    value: float,
    *,
    score: str = "energy",
    loss: Loss | None = None,
    targets: Sequence[Any] | None = None,
    ignore: list[str] | None = None,
    progress: bool = False,
) -> Decided:
    """Score and allocate without shrinking: the groups, and which of their units to keep."""
    # hidden dimensions (structure/stream.py) are not scored or re-fitted here yet
    groups, skipped = gateable_groups(model, inputs, set(ignore or ()), "compressed", leave={
        "hidden": "a residual stream's hidden dimensions are not compressed by al.compress yet"})
    cost = build_cost(model, groups, inputs, kind)
    target = value if value > 1 else value * cost.full
    if target >= cost.full:
        raise ArchlearnError(f"a {kind} budget of {value:g} is not below the model's "
                             f"{cost.full:,.0f} {kind}: nothing to remove")
    streams = residual_streams(model, groups, batches[0]) if score != "taylor" else {}
    raw = unit_scores(model, groups, batches, score=score, loss=loss, targets=targets,
                      streams=streams, progress=progress)
    # each group's units compete for their own layer's output: scores as shares of the group
    shares = [_share(r, g, streams) for r, g in zip(raw, groups)]
    alive = allocate(cost, shares, target, blocks=_wide_ffn(groups, streams))
    return Decided(groups, skipped, alive, cost, target, shares)


def _share(raw: torch.Tensor, group: UnitGroup, streams: dict[str, str]) -> torch.Tensor:
    """How much of the damage that counts a unit's removal does.

    Where every reading layer of the group writes into a normalised residual stream (a
    post-LayerNorm transformer's sublayers), the scores are already fractions of that stream's
    energy, shared by the heads and FFN units of every block, and stay as they are (a head's
    weighted by :data:`HEAD_WEIGHT`). Elsewhere
    (a convolution or Linear followed by its own BatchNorm or activation) each layer's output is
    normalised on its own, so what counts is a unit's share of its group.
    """
    if group.sites and all(site.module in streams for site in group.sites):
        return raw * HEAD_WEIGHT if group.heads is not None else raw
    total = float(raw.sum())
    return raw / total if total > 0 else torch.full_like(raw, 1.0 / max(len(raw), 1))


def _wide_ffn(groups: list[UnitGroup], streams: dict[str, str]) -> dict[int, int]:
    """The FFN groups of a post-LayerNorm transformer wide enough to align, and their block."""
    return {g: WIDTH_MULTIPLE for g, group in enumerate(groups)
            if group.heads is None and group.size >= WIDE and group.sites
            and all(site.module in streams for site in group.sites)}


def _check_exact(work: nn.Module, small: nn.Module, decision: Decided,
                 inputs: tuple[torch.Tensor, ...]) -> None:
    """The shrunk model, before re-fitting, must compute what the gated model computes."""
    scales = decision.decisions
    hooks = GateHooks(work, decision.groups, lambda i: scales[i].scale, lambda i: None)
    try:
        assert_same_outputs(work, small, inputs)
    finally:
        hooks.remove()


def _readers(model: nn.Module, decision: Decided,
             inputs: tuple[torch.Tensor, ...]) -> list[Reader]:
    """Layers reading removed units, with the output channels each still has."""
    names: dict[str, Reader] = {}
    for group, alive in zip(decision.groups, decision.alive):
        if bool(alive.all()):
            continue
        for site in group.sites:
            module = model.get_submodule(site.module)
            if isinstance(module, nn.MultiheadAttention):
                names.setdefault(site.module, Reader(f"{site.module}.out_proj", site.module,
                                                     transpose=not module.batch_first))
            else:
                names.setdefault(site.module, Reader(site.module, site.module))
    kept = _kept_outputs(model, decision, inputs, [r.name for r in names.values()])
    for reader in names.values():
        reader.keep_out = kept.get(reader.name)
    return list(names.values())


def _kept_outputs(model: nn.Module, decision: Decided, inputs,
                  layers: list[str]) -> dict[str, torch.Tensor]:
    """For each of ``layers`` whose output channels belong to a pruned channel group: the
    original indices of the channels it keeps (Torch-Pruning's items map channels to units)."""
    wanted = set(layers)
    out: dict[str, torch.Tensor] = {}
    dg = None
    for group, alive in zip(decision.groups, decision.alive):
        if group.kind != "channels" or bool(alive.all()):
            continue
        dg = dg or dependency_graph(model, inputs)
        for name, side, channels, units in _items(dg, model.get_submodule(group.name)):
            if side != "out" or name not in wanted:
                continue
            width = _out_width(model.get_submodule(name))
            off = {c for c, u in zip(channels, units) if alive[u] == 0}
            out[name] = torch.tensor([c for c in range(width) if c not in off], dtype=torch.long)
    return out


def _out_width(module: Any) -> int:
    handler = handler_for(module)
    assert handler is not None
    return handler.out_channels(module)
