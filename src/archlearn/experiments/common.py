"""Pieces every experiment shares: one training run, reset-and-retrain, result metadata."""

from __future__ import annotations

import copy
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlearn as al
from archlearn.train import TrainConfig, Trainer, evaluate, steps_per_epoch


def reinitialised(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh (same architecture)."""
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh


def architecture_string(model: nn.Module) -> str:
    """Widths of the weight layers in forward order, e.g. ``20-50-500-10``."""
    widths = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            widths.append(m.out_features)
        elif isinstance(m, nn.modules.conv._ConvNd):
            widths.append(m.out_channels)
    return "-".join(map(str, widths))


def train_plain(model, splits, config: TrainConfig) -> dict[str, Any]:
    """Train without gates; returns accuracy, size and the model."""
    start = time.perf_counter()
    Trainer(model, splits.train, splits.test, config).fit()
    return summarise(model, splits, time.perf_counter() - start)


def train_learned(model, splits, config: TrainConfig, method: str = "tsrelu",
                  log_every: int = 10, **options) -> dict[str, Any]:
    """Attach ``method``, train, shrink; returns the shrunk model's figures and the width log."""
    example = splits.test.tensors[0][:1]
    per_epoch = steps_per_epoch(splits.train, config.batch_size)
    total = config.epochs * per_epoch
    options.setdefault("steps_per_epoch", per_epoch)  # the run's schedule lengths
    learner = al.attach(model, example, method=method, total_steps=total, **options)
    log: list[dict] = []

    def record(step: int) -> None:
        log.append({"step": step, "widths": [int(d.kept.numel()) for d in learner.decisions()]})

    original_step = learner.step

    def step_and_log() -> None:  # widths against iterations (the paper's figure 3.2a)
        original_step()
        if learner.method.t % log_every == 0:
            record(learner.method.t)

    learner.step = step_and_log
    start = time.perf_counter()
    Trainer(model, splits.train, splits.test, config, learner=learner).fit()
    seconds = time.perf_counter() - start
    gated_accuracy = evaluate(model, splits.test)
    small = learner.shrink()
    out = summarise(small, splits, seconds)
    x = splits.test.tensors[0][:256]
    model.eval()
    small.eval()
    with torch.no_grad():
        out["max_output_difference"] = float((small(x) - model(x)).abs().max())
    out.update(gated_accuracy=gated_accuracy, architecture_log=log,
               learned=learner.architecture(), layer_names=[g.name for g in learner.groups])
    return out


def summarise(model: nn.Module, splits, seconds: float) -> dict[str, Any]:
    batch = splits.test.tensors[0][:256]
    size = al.measure(model, batch)
    return {
        "model": model,
        "architecture": architecture_string(model),
        "params": size["params"],
        "macs": size["macs"],
        "latency_ms": size["latency_ms"],
        "accuracy": evaluate(model, splits.test),
        "train_seconds": seconds,
    }


def provenance(command: str, splits, **extra) -> dict[str, Any]:
    """What produced a result file: the command, versions, data split, machine."""
    return {
        "command": command,
        "archlearn": al.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads",
        "data": {"name": splits.name, "split": splits.description,
                 "train": len(splits.train), "test": len(splits.test)},
        **extra,
    }


def write_json(path: Path, payload: dict) -> None:
    """Write JSON atomically (no half-written result files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)
