"""A per-layer latency table, measured once on this machine: the cost model of ``cost="latency"``.

How it is measured (``latency_cost``):

1. The model at full width and a copy shrunk to half of every group (the first ``ceil(n/2)``
   units of each) run once on the example inputs; every layer's call arguments are recorded.
2. Each layer's forward is timed alone on its recorded arguments, at both widths, with the
   interleaved protocol of ``measure.time_interleaved`` (one thread, eval mode, inference
   mode). An attention module's own time (its ``q k^T`` and ``p v``) is its time minus its
   children's. The whole model is timed too, and the layers' times are scaled to add up to it
   (timed alone they miss what runs between them: element-wise functions, reshapes, Python).
3. Each layer's time is fitted as ``a + b * f``, ``f`` the product of its alive fractions (as in
   ``cost.py``; activations and pooling follow the channels of the layer that feeds them):
   ``b`` from the drop between full and half width, ``a`` the rest (per-call overhead, which
   removing units does not save). So a batch-1 LeNet, whose layers are mostly overhead, gets
   small weights, and a batch-256 one large weights on its convolutions.

The table is cached as JSON under ``$XDG_CACHE_HOME/archlearn/latency`` (``~/.cache``), keyed
by the layers' types and shapes, the inputs' shapes, the groups, the thread count, the torch
version and the processor: it is measured once per model, batch and machine. Latency is timed
at the batch of the example inputs given to ``attach``: pass a batch of the size you deploy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlearn.structure.cost import CostModel, Side, Term, _layer_sides, _sides
from archlearn.structure.graph import preserved_mode, run_model, trace_calls
from archlearn.structure.groups import UnitGroup
from archlearn.structure.measure import fixed_threads, summary, time_interleaved
from archlearn.structure.shrink import Decision, shrink

THREADS = 1
ROUNDS = 15


def latency_cost(model: nn.Module, groups: Sequence[UnitGroup],
                 inputs: tuple[torch.Tensor, ...], *, cache: bool = True) -> CostModel:
    """The latency cost model of ``model`` at the example inputs' batch (see the module doc)."""
    sides = _sides(model, groups, inputs)
    heads = {g.heads.module: i for i, g in enumerate(groups) if g.heads is not None}
    blocks = {g.blocks.conv: i for i, g in enumerate(groups) if g.blocks is not None}
    layer_sides = _timed_layers(model, inputs, sides, heads, blocks)
    table = _load_or_measure(model, groups, inputs, list(layer_sides), cache)
    half = [_half(g.size) for g in groups]
    terms, constant = [], 0.0
    # layers timed alone add up to less than the model (data in cache, no Python between
    # them): scale them so that they add up to the whole model's time
    alone = sum(t[0] for t in table["layers"].values())
    factor = table["whole"][0] / alone if alone > 0 else 1.0
    for name, these in layer_sides.items():
        full_t, half_t = (factor * t for t in table["layers"][name])
        f_half = math.prod(float(s.fraction(half)) for s in these) if these else 1.0
        if not these or f_half >= 1.0:
            constant += full_t
            continue
        scaled = min(max((full_t - half_t) / (1.0 - f_half), 0.0), full_t)
        constant += full_t - scaled
        terms.append(Term(name, scaled, these))
    return CostModel("latency", terms, constant, [g.size for g in groups])


def _half(n: int) -> torch.Tensor:
    alive = torch.zeros(n, dtype=torch.float64)
    alive[: (n + 1) // 2] = 1.0
    return alive


def _timed_layers(model, inputs, sides, heads, blocks) -> dict[str, tuple[Side, ...]]:
    """Leaf modules and attention modules, with the sides their time scales with.

    A leaf without its own side (an activation, a pooling) takes the side of the module whose
    output it reads, through a chain of such modules."""
    trace = trace_calls(model, inputs)
    out: dict[str, tuple[Side, ...]] = {}
    modules = dict(model.named_modules())
    order = [n for n, _ in model.named_modules()]
    for name in order:
        module = modules[name]
        if not name or (list(module.children()) and name not in heads):
            continue
        if name not in trace.calls and name not in heads:
            continue
        these = _layer_sides(name, module, sides, heads, blocks)
        if not these:
            these = _inherited(name, trace, out)
        out[name] = these
    return out


def _inherited(name, trace, known) -> tuple[Side, ...]:
    for tid in trace.inputs_of.get(name, []):
        source = trace.produced_by.get(tid)
        if source in known:
            found = known[source]
            return found[-1:] if found else ()
    return ()


def _key(model, groups, inputs) -> str:
    parts = [torch.__version__, platform.processor() or platform.machine(), str(os.cpu_count()),
             str(THREADS), str(ROUNDS)]
    parts += [f"{t.shape}:{t.dtype}" for t in inputs]
    parts += [f"{g.name}:{g.size}:{g.kind}" for g in groups]
    parts += [f"{n}:{type(m).__name__}:{[tuple(p.shape) for p in m.parameters(recurse=False)]}"
              for n, m in model.named_modules()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def cache_dir() -> Path:
    """Where latency tables are kept (``$XDG_CACHE_HOME/archlearn/latency``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archlearn" / "latency"


def _load_or_measure(model, groups, inputs, names, cache: bool) -> dict[str, Any]:
    path = cache_dir() / f"{_key(model, groups, inputs)}.json"
    if cache and path.is_file():
        table = json.loads(path.read_text())
        if set(table.get("layers", {})) == set(names):
            return table
    table = measure_table(model, groups, inputs, names)
    if cache:
        from archlearn.io import write_json

        write_json(path, table)
    return table


def measure_table(model: nn.Module, groups: Sequence[UnitGroup],
                  inputs: tuple[torch.Tensor, ...], names: list[str]) -> dict[str, Any]:
    """``{"layers": {name: [ms at full width, ms at half width]}, "whole": [ms, iqr]}``."""
    decisions = [Decision(_half(g.size).to(torch.float32)) for g in groups]
    small, _ = shrink(model, groups, decisions, inputs)
    calls: dict[str, Any] = {}
    children: dict[str, list[str]] = {}
    for tag, net in (("full", model), ("half", small)):
        recorded = _record(net, inputs, names)
        for name in names:
            module = net.get_submodule(name)
            for i, (args, kwargs) in enumerate(recorded.get(name, [])):
                calls[f"{tag}|{name}|{i}"] = _call(module, args, kwargs)
    for name in names:
        children[name] = [n for n in names if n.startswith(name + ".")]
    calls["whole|"] = _call(model, inputs, {})
    with fixed_threads(THREADS), torch.inference_mode(), preserved_mode(model), \
            preserved_mode(small):
        model.eval()
        small.eval()
        times = time_interleaved(calls, rounds=ROUNDS, block_ms=2.0)
    medians: dict[str, float] = {}
    for key, t in times.items():
        tag, name, _ = (key.split("|") + [""])[:3]
        medians[f"{tag}|{name}"] = medians.get(f"{tag}|{name}", 0.0) + summary(t)["median_ms"]
    layers = {}
    for name in names:
        pair = []
        for tag in ("full", "half"):
            own = medians.get(f"{tag}|{name}", 0.0)
            own -= sum(medians.get(f"{tag}|{c}", 0.0) for c in children[name])
            pair.append(max(own, 0.0))
        layers[name] = pair
    whole = summary(times["whole|"])
    return {"layers": layers, "whole": [whole["median_ms"], whole["iqr_ms"]],
            "threads": THREADS, "batch": int(inputs[0].shape[0]) if inputs[0].dim() else 1}


def _record(model: nn.Module, inputs, names: list[str]) -> dict[str, list]:
    """The arguments of every call of the named modules in one forward pass."""
    recorded: dict[str, list] = {}

    def hook(name):
        def record(module, args, kwargs):
            recorded.setdefault(name, []).append((args, dict(kwargs)))
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n), with_kwargs=True)
               for n in names]
    try:
        with preserved_mode(model), torch.inference_mode():
            model.eval()
            run_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return recorded


def _call(module: nn.Module, args, kwargs):
    return lambda: module(*args, **kwargs)


__all__ = ["cache_dir", "latency_cost", "measure_table"]
