"""Counting parameters (all, and non-zero) and multiply-accumulates; timing a CPU forward pass."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from archlearn.structure.graph import as_tuple, preserved_mode, run_model


def count_params(model: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    """Parameters that are not exactly zero (a parametrized weight counts as it is computed).

    >>> layer = nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = layer.weight.zero_()
    >>> count_nonzero(layer) == int(layer.bias.ne(0).sum())
    True
    """
    total = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, parametrize.ParametrizationList):
                continue  # counted through the module it parametrizes
            tensors = [p for _, p in module.named_parameters(recurse=False)]
            if parametrize.is_parametrized(module):
                names = list(cast(nn.ModuleDict, module.parametrizations))
                tensors += [getattr(module, n) for n in names]
            total += sum(int(t.ne(0).sum()) for t in tensors)
    return total


def attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs (2 per MAC) of an attention kernel's ``q k^T`` and ``p v`` given their shapes
    ``(batch, heads, tokens, dim)``: the two batched matrix products the eager path runs. Query
    heads that share key/value heads (grouped-query attention) each run their own products; the
    softmax, its scaling and a mask are element-wise, not MACs.

    >>> attention_flops((1, 4, 8, 16), (1, 4, 6, 16), (1, 4, 6, 12))  # 2 * 4*8*6 * (16 + 12)
    10752
    """
    b, h, s_q, d = query
    s_k, d_v = key[-2], value[-1]
    return 2 * b * h * s_q * s_k * (d + d_v)


# Fused scaled_dot_product_attention kernels FlopCounterMode has no formula for (the CUDA flash,
# efficient and cuDNN ones it has): without one, PyTorch's default CPU path
# (``_scaled_dot_product_flash_attention_for_cpu``, what transformers' "sdpa" and
# nn.MultiheadAttention(need_weights=False) run) counted no attention at all. The math fallback
# decomposes into bmm and is counted already. Forward kernels only: layer_macs runs no backward.
_ATTENTION_FORMULAS = {
    op: attention_flops
    for op in (getattr(torch.ops.aten, name, None) for name in (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_fused_attention_overrideable",
        "_scaled_dot_product_attention_math_for_mps",
    ))
    if op is not None and op not in flop_registry
}


def layer_macs(model: nn.Module, example_inputs) -> dict[str, int]:
    """Multiply-accumulates of one forward pass for a single example, per module name.

    Counted by PyTorch's own ``FlopCounterMode`` at the operator level (matrix products,
    convolutions, attention), so functional calls inside a layer (transformers' ``Conv1D``,
    ``scaled_dot_product_attention``) count too, which Torch-Pruning's counter misses; element-wise
    operations and bias additions are not MACs (``nn.Linear(10, 5)`` is 50). The entry ``""`` is
    the whole model. Fused attention kernels count their two products (:func:`attention_flops`),
    exactly what the eager ``q k^T`` and ``p v`` matrix products count, so a model's count does
    not depend on its attention implementation.
    """
    one = tuple(t[:1] for t in as_tuple(example_inputs))
    root = type(model).__name__
    # with autograd on: nn.MultiheadAttention and TransformerEncoderLayer take a fused fast path
    # under no_grad whose products FlopCounterMode does not see
    with preserved_mode(model), torch.enable_grad(), FlopCounterMode(
            display=False, custom_mapping=_ATTENTION_FORMULAS) as counter:
        model.eval()
        run_model(model, one)
    out = {}
    for key, ops in counter.get_flop_counts().items():
        if key == "Global":
            continue
        name = "" if key == root else key.removeprefix(root + ".")
        out[name] = sum(ops.values()) // 2
    out[""] = counter.get_total_flops() // 2
    return out


def count_macs(model: nn.Module, example_inputs) -> int:
    """Multiply-accumulates of one forward pass for a single example (see :func:`layer_macs`).

    >>> count_macs(nn.Linear(10, 5), torch.zeros(1, 10))
    50
    """
    return layer_macs(model, example_inputs)[""]


@contextmanager
def fixed_threads(n: int | None):
    """Run with ``n`` intra-op threads (``None``: as they are), restored afterwards."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_interleaved(calls: Mapping[str, Callable[[], Any]], *, rounds: int = 30,
                     warmup: int = 3, block_ms: float = 10.0) -> dict[str, list[float]]:
    """Per-call wall times (ms) of several callables, measured in interleaved rounds.

    Each callable is warmed up, then calibrated to a block of ``number`` calls lasting about
    ``block_ms`` (timer resolution); each of ``rounds`` rounds times one block of every callable,
    in an order rotated by one every round, so load that comes and goes on a shared machine
    falls on all candidates alike instead of on whichever was timed during it. The blocks are
    timed by ``torch.utils.benchmark.Timer`` (its clock and bookkeeping).
    """
    from torch.utils.benchmark import Timer

    timers, numbers = {}, {}
    for name, fn in calls.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        single = max(time.perf_counter() - start, 1e-7)
        numbers[name] = max(1, int(block_ms / 1e3 / single))
        timers[name] = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            measurement = timers[name].timeit(numbers[name])
            times[name].append(measurement.mean * 1e3)
    return times


def summary(times: list[float]) -> dict[str, float]:
    """Median and quartiles (ms) of repeated timings.

    >>> summary([1.0, 2.0, 3.0, 4.0, 100.0])["median_ms"]
    3.0
    """
    if len(times) < 2:
        q1 = median = q3 = times[0]
    else:
        q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1,
            "rounds": len(times)}


def compare_latency(models: Mapping[str, nn.Module], example_inputs, *, threads: int = 1,
                    rounds: int = 30, warmup: int = 3, block_ms: float = 10.0) -> dict[str, dict]:
    """Latency of several models on the same inputs, timed together: median and spread.

    The protocol (one for every latency archlearn reports): eval mode, ``inference_mode``, a
    fixed number of threads (``threads``, default 1), the models' forward passes interleaved
    over ``rounds`` rounds (:func:`time_interleaved`). Returns, per model, ``median_ms``,
    ``q1_ms``, ``q3_ms``, ``iqr_ms`` (per forward pass), the batch size and the threads.

    >>> r = compare_latency({"a": nn.Linear(8, 4), "b": nn.Linear(8, 2)}, torch.zeros(16, 8),
    ...                     rounds=5, block_ms=1)
    >>> sorted(r), r["a"]["batch"], r["a"]["threads"]
    (['a', 'b'], 16, 1)
    """
    inputs = as_tuple(example_inputs)
    with fixed_threads(threads), torch.inference_mode(), ExitStack() as stack:
        for model in models.values():
            stack.enter_context(preserved_mode(model))
            model.eval()
        calls = {name: _forward(model, inputs) for name, model in models.items()}
        times = time_interleaved(calls, rounds=rounds, warmup=warmup, block_ms=block_ms)
    batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    return {name: {**summary(t), "batch": batch, "threads": threads}
            for name, t in times.items()}


def _forward(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Callable[[], Any]:
    return lambda: model(*inputs)


def latency_ms(model: nn.Module, example_inputs, *, repeats: int = 30,
               threads: int = 1) -> float:
    """Median wall time (ms) of a batched forward pass (the protocol of :func:`compare_latency`)."""
    return compare_latency({"model": model}, example_inputs, threads=threads,
                           rounds=repeats)["model"]["median_ms"]


def measure(model: nn.Module, example_inputs, *, repeats: int = 30, threads: int = 1) -> dict:
    """``{"params", "nonzero_params", "macs", "latency_ms", "latency_iqr_ms"}`` on a batch.

    ``macs`` is for one example; bias additions are not multiply-accumulates (see
    :func:`layer_macs`): ``nn.Linear(10, 5)`` is 10 * 5 = 50. They are the dense computation's:
    a sparse layer's zeros count too (``nonzero_params`` says how sparse the model is). The
    latency is the median (and interquartile range) over ``repeats`` rounds with ``threads`` threads
    (:func:`compare_latency`); to compare models, time them together with
    :func:`compare_latency`, on a quiet machine.

    >>> m = nn.Linear(10, 5)
    >>> r = measure(m, torch.zeros(8, 10))
    >>> r["params"], r["nonzero_params"], r["macs"]
    (55, 55, 50)
    """
    return {
        "params": count_params(model),
        "nonzero_params": count_nonzero(model),
        "macs": count_macs(model, example_inputs),
        **_latency_fields(compare_latency({"model": model}, example_inputs, threads=threads,
                                          rounds=repeats)["model"]),
    }


def _latency_fields(timing: dict) -> dict[str, float]:
    return {"latency_ms": timing["median_ms"], "latency_iqr_ms": timing["iqr_ms"]}
