"""Counting parameters and multiply-accumulates, and timing a forward pass on the CPU."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from archlearn.structure.graph import as_tuple, preserved_mode, run_model


def count_params(model: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def layer_macs(model: nn.Module, example_inputs) -> dict[str, int]:
    """Multiply-accumulates of one forward pass for a single example, per module name.

    Counted by PyTorch's own ``FlopCounterMode`` at the operator level (matrix products,
    convolutions, attention), so functional calls inside a layer (transformers' ``Conv1D``,
    ``scaled_dot_product_attention``) count too, which Torch-Pruning's counter misses; element-wise
    operations and bias additions are not MACs (``nn.Linear(10, 5)`` is 50). The entry ``""`` is
    the whole model.
    """
    one = tuple(t[:1] for t in as_tuple(example_inputs))
    root = type(model).__name__
    # with autograd on: nn.MultiheadAttention and TransformerEncoderLayer take a fused fast path
    # under no_grad whose products FlopCounterMode does not see
    with preserved_mode(model), torch.enable_grad(), FlopCounterMode(display=False) as counter:
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


def latency_ms(model: nn.Module, example_inputs, *, repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time of one batched forward pass in eval mode, in milliseconds."""
    inputs = as_tuple(example_inputs)
    times = []
    with preserved_mode(model), torch.inference_mode():
        model.eval()
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(*inputs)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(model: nn.Module, example_inputs, *, repeats: int = 30) -> dict:
    """``{"params", "macs", "latency_ms"}`` of a model on a batch of example inputs.

    ``macs`` is for one example; bias additions are not multiply-accumulates (see
    :func:`layer_macs`): ``nn.Linear(10, 5)`` is 10 * 5 = 50.

    >>> m = nn.Linear(10, 5)
    >>> r = measure(m, torch.zeros(8, 10))
    >>> r["params"], r["macs"]
    (55, 50)
    """
    return {
        "params": count_params(model),
        "macs": count_macs(model, example_inputs),
        "latency_ms": latency_ms(model, example_inputs, repeats=repeats),
    }
