"""Counting parameters and multiply-accumulates, and timing a forward pass on the CPU."""

from __future__ import annotations

import statistics
import time

import torch
import torch_pruning as tp
from torch import nn

from archlearn.structure.graph import as_tuple, preserved_mode


def count_params(model: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_inputs) -> int:
    """Multiply-accumulates of one forward pass for a single example (Torch-Pruning's counter).

    The counter adds one operation per bias element: ``nn.Linear(10, 5)`` counts 10 * 5 = 50
    multiply-accumulates plus 5 bias additions, 55. A bias add is strictly not a MAC; we keep
    the counter's convention (Torch-Pruning 1.6.0 and 1.6.1 give the same counts) so that every
    MAC figure in docs/RESULTS.md and every Torch-Pruning peer row are counted alike. Layers
    without a bias count their multiply-accumulates alone.

    >>> count_macs(nn.Linear(10, 5), torch.zeros(8, 10)), count_macs(
    ...     nn.Linear(10, 5, bias=False), torch.zeros(8, 10))
    (55, 50)
    """
    one = tuple(t[:1] for t in as_tuple(example_inputs))
    with preserved_mode(model), torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(model, one)
    return int(macs)


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

    ``macs`` is for one example and counts bias additions (see :func:`count_macs`): 50
    multiply-accumulates and 5 bias adds for ``nn.Linear(10, 5)``.

    >>> m = nn.Linear(10, 5)
    >>> r = measure(m, torch.zeros(8, 10))
    >>> r["params"], r["macs"]
    (55, 55)
    """
    return {
        "params": count_params(model),
        "macs": count_macs(model, example_inputs),
        "latency_ms": latency_ms(model, example_inputs, repeats=repeats),
    }
