"""One measured training run, with or without gates: what the CLI's jobs and the benchmarks share.

:func:`train_plain` trains a model as it is; :func:`train_learned` attaches a method, trains,
shrinks, and checks the shrunk model against the gated one. Both score the model on the data
given as ``eval_data`` (validation during a selection, test for a reported figure: the
default) and return its size, accuracy and latency; the history records validation accuracy
after every epoch when the splits have a validation part. The caller builds the model, under
its own seed.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

import archlearn as al
from archlearn.data import Splits
from archlearn.metrics import accuracy
from archlearn.train import Callback, TrainConfig, Trainer, steps_per_epoch


def reinitialised(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh (same architecture)."""
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return fresh


def architecture_string(model: nn.Module) -> str:
    """Widths of the weight layers in forward order, e.g. ``20-50-500-10``.

    >>> architecture_string(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    '3-2'
    """
    widths = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            widths.append(m.out_features)
        elif isinstance(m, nn.modules.conv._ConvNd):
            widths.append(m.out_channels)
    return "-".join(map(str, widths))


class WidthLog(Callback):
    """Kept units of every gated group, every ``every`` steps (the paper's figure 3.2a)."""

    def __init__(self, learner: al.Learner, every: int = 10) -> None:
        super().__init__()
        self.learner, self.every = learner, every
        self.log: list[dict[str, Any]] = []

    def on_step(self, trainer: Trainer) -> None:
        if trainer.step % self.every == 0:
            widths = [int(d.kept.numel()) for d in self.learner.decisions()]
            self.log.append({"step": trainer.step, "widths": widths})


def train_plain(model: nn.Module, splits: Splits, config: TrainConfig,
                eval_data: TensorDataset | None = None) -> dict[str, Any]:
    """Train without gates; the model's size and its accuracy on ``eval_data`` (default test)."""
    eval_data = splits.test if eval_data is None else eval_data
    start = time.perf_counter()
    Trainer(model, splits.train, splits.valid, config).fit()
    return summarise(model, eval_data, time.perf_counter() - start)


def train_learned(model: nn.Module, splits: Splits, config: TrainConfig, method: str = "tsrelu",
                  log_every: int = 10, eval_data: TensorDataset | None = None,
                  **options: Any) -> dict[str, Any]:
    """Attach ``method``, train, shrink: the shrunk model's figures and the width log.

    The run supplies the schedule lengths (``total_steps``, ``steps_per_epoch``).
    """
    eval_data = splits.test if eval_data is None else eval_data
    per_epoch = steps_per_epoch(splits.train, config.batch_size)
    options = {"total_steps": config.epochs * per_epoch, "steps_per_epoch": per_epoch, **options}
    learner = al.attach(model, splits.train.tensors[0][:1], method=method, **options)
    widths = WidthLog(learner, every=log_every)
    start = time.perf_counter()
    Trainer(model, splits.train, splits.valid, config, learner=learner, callbacks=[widths]).fit()
    seconds = time.perf_counter() - start
    gated_accuracy = accuracy(model, eval_data)
    small = learner.shrink()
    out = summarise(small, eval_data, seconds)
    x = eval_data.tensors[0][:256]
    model.eval()
    small.eval()
    with torch.no_grad():
        out["max_output_difference"] = float((small(x) - model(x)).abs().max())
    out.update(gated_accuracy=gated_accuracy, architecture_log=widths.log,
               learned=learner.architecture(), layer_names=[g.name for g in learner.groups])
    return out


def summarise(model: nn.Module, eval_data: TensorDataset, seconds: float) -> dict[str, Any]:
    """Architecture, params, MACs, latency (batch of 256) and accuracy of a trained model."""
    size = al.measure(model, eval_data.tensors[0][:256])
    return {
        "model": model,
        "architecture": architecture_string(model),
        "params": size["params"],
        "macs": size["macs"],
        "latency_ms": size["latency_ms"],
        "accuracy": accuracy(model, eval_data),
        "train_seconds": seconds,
    }
