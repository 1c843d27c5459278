"""Each method's defaults selected on a validation split (3 seeds); the test split is never read.

Every option a method's docstring discusses gets a small grid around its current default; each
variant trains on the train part of a stratified split and is scored on its validation part
only (``data.load(..., valid=...)``: fixed rows carved out of the training split, seed 0).
The loop is the user's own (Adam 1e-3, batch 64, the learner's penalty, ``learner.step()``),
per seed ``s`` the weights drawn under ``torch.manual_seed(s)`` and the batches from a
generator seeded with ``s``.

* ``l0``, ``diffsparse``, ``slimming``, ``l1``, ``morphnet``, ``switcher`` (no budget): the
  MLP 64-128-64-10 (with BatchNorm for slimming and morphnet, whose scales are BatchNorm's) on
  scikit-learn's digits, 1,010 train / 337 validation rows out of the 1,347 training images,
  30 epochs. Criterion: among the variants whose mean validation accuracy is within 1 point of
  the best variant's, the one with the fewest parameters after shrinking (mean over seeds;
  ties: the more accurate). These methods trade accuracy for size with no budget to land on,
  so the most accurate variant would be the one that prunes least.
* ``tsrelu`` (takes a budget, and lands on it): ``init_width`` and ``freeze`` on LeNet-5
  20-50-500-10 with ``budget={"macs": 0.25}`` (the demo's) on mnist5k, 3,500 train / 500
  validation rows out of its 4,000 training images (the budgets' split), 10 epochs.
  Criterion: the best mean validation accuracy, kept as the default only where it beats the
  current default by more than the seed spread (the larger standard deviation of the two);
  otherwise the current default is confirmed.

    python -m benchmarks.select_defaults --seeds 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

import archlearn as al
from archlearn import data, models
from archlearn.io import write_json
from archlearn.methods.base import REGISTRY
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.structure.measure import count_macs

OUT = Path(__file__).parent / "results" / "select_defaults.json"
CMD = "python -m benchmarks.select_defaults"
TOLERANCE = 0.01  # accuracy a smaller model may give up against the best variant (1 point)
DIGITS_VALID = 0.25  # of digits' 1,347 training rows
MNIST_VALID = 500  # of mnist5k's 4,000 training rows, as benchmarks/budgets.py
LENET_EXAMPLE = torch.zeros(1, 1, 28, 28)
#: per method, option -> values around the current default (which every grid contains)
GRIDS: dict[str, dict[str, list[Any]]] = {
    "l0": {"lam": [5e-3, 1e-2, 2e-2], "lr": [1e-2, 2e-2, 5e-2], "droprate_init": [0.1, 0.3]},
    "diffsparse": {"lam": [1.0, 2.0, 5.0, 10.0, 20.0]},
    "slimming": {"lam": [1e-5, 1e-4, 1e-3], "scope": ["global", "layer"]},
    "l1": {"lam": [2e-3, 5e-3, 1e-2, 2e-2]},
    "morphnet": {"lam": [1e-3, 2e-3, 3e-3, 5e-3, 1e-2]},
    "switcher": {"warmup": [0.0, 0.05, 0.15]},
    "tsrelu": {"init_width": [0.55, 0.6, 0.65], "freeze": [0.5, 0.65, 0.8]},
}
BATCHNORM = {"slimming", "morphnet"}
BUDGETED = {"tsrelu": {"macs": 0.25}}


# --- selection (pure functions of the per-variant summaries) --------------------------------

def select_smallest(variants: dict[str, dict], tolerance: float = TOLERANCE) -> str:
    """The variant with the fewest mean params among those whose mean accuracy is within
    ``tolerance`` of the best mean (ties: the more accurate).

    >>> select_smallest({"a": {"accuracy_mean": 0.97, "params_mean": 9e3},
    ...                  "b": {"accuracy_mean": 0.965, "params_mean": 5e3},
    ...                  "c": {"accuracy_mean": 0.90, "params_mean": 1e3}})
    'b'
    """
    best = max(v["accuracy_mean"] for v in variants.values())
    near = [k for k, v in variants.items() if v["accuracy_mean"] >= best - tolerance - 1e-12]
    return min(near, key=lambda k: (variants[k]["params_mean"], -variants[k]["accuracy_mean"]))


def select_accurate(variants: dict[str, dict], default: str) -> str:
    """The most accurate variant where it beats ``default`` by more than the seed spread (the
    larger standard deviation of the two), else ``default``.

    >>> v = {"d": {"accuracy_mean": 0.95, "accuracy_std": 0.01},
    ...      "x": {"accuracy_mean": 0.955, "accuracy_std": 0.004}}
    >>> select_accurate(v, "d")
    'd'
    """
    best = max(variants, key=lambda k: variants[k]["accuracy_mean"])
    spread = max(variants[best]["accuracy_std"], variants[default]["accuracy_std"])
    gain = variants[best]["accuracy_mean"] - variants[default]["accuracy_mean"]
    return best if gain > spread else default


# --- the grid -------------------------------------------------------------------------------

def label(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in options.items())


def defaults(method: str) -> dict[str, Any]:
    """The current defaults of the options in ``method``'s grid."""
    fields = REGISTRY[method].Options.model_fields
    return {key: fields[key].default for key in GRIDS[method]}


def grid(method: str) -> list[dict[str, Any]]:
    keys = list(GRIDS[method])
    out = [dict(zip(keys, values)) for values in itertools.product(*GRIDS[method].values())]
    assert defaults(method) in out, f"{method}: the grid must contain the current defaults"
    return out


# --- training -------------------------------------------------------------------------------

def train(model: nn.Module, learner: al.Learner, batches: DataLoader, epochs: int) -> None:
    """The user's own loop: Adam, cross-entropy + the learner's penalty, learner.step()."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()


def run(method: str, options: dict, task: dict, seed: int) -> dict[str, Any]:
    """One seed of one variant: train on ``task["train"]``, score on ``task["valid"]``."""
    torch.manual_seed(seed)
    model = task["model"]()
    batches = DataLoader(task["train"], batch_size=64, shuffle=True,
                         generator=torch.Generator().manual_seed(seed))
    example = task["example"]
    budget = BUDGETED.get(method)
    extra = {"cost": "macs", "budget": budget} if budget else {}
    full_macs = count_macs(model, example)  # before the gates; draws no random numbers
    learner = al.attach(model, example, method=method, total_steps=task["epochs"] * len(batches),
                        steps_per_epoch=len(batches), **extra, **options)
    train(model, learner, batches, task["epochs"])
    small = learner.shrink()
    arch = learner.architecture()
    return {"seed": seed, "widths": [layer["width"] for layer in arch["layers"]],
            "params": arch["params"], "macs_fraction": count_macs(small, example) / full_macs,
            "accuracy": accuracy(small, task["valid"])}


def summary(options: dict, runs: list[dict]) -> dict[str, Any]:
    acc = [r["accuracy"] for r in runs]
    return {"options": options, "runs": runs, "accuracy_mean": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "params_mean": statistics.fmean(r["params"] for r in runs),
            "macs_fraction_mean": statistics.fmean(r["macs_fraction"] for r in runs),
            "widths": ["-".join(map(str, r["widths"])) for r in runs]}


def select(method: str, task: dict, seeds: int) -> dict[str, Any]:
    variants = {}
    for options in grid(method):
        name = label(options)
        v = variants[name] = summary(options, [run(method, options, task, s)
                                               for s in range(seeds)])
        print(f"{method:10s} {name:40s} {' '.join(v['widths'])} "
              f"{100 * v['accuracy_mean']:.1f}% params {v['params_mean']:.0f}", flush=True)
    default = label(defaults(method))
    chosen = (select_accurate(variants, default) if method in BUDGETED
              else select_smallest(variants))
    return {"task": task["name"], "budget": BUDGETED.get(method), "grid": GRIDS[method],
            "criterion": "accuracy beyond the seed spread" if method in BUDGETED
            else f"fewest params within {100 * TOLERANCE:g} point(s) of the best accuracy",
            "variants": variants, "default": defaults(method), "default_variant": default,
            "selected": chosen, "selected_options": variants[chosen]["options"],
            "best_accuracy": max(variants, key=lambda k: variants[k]["accuracy_mean"]),
            "agrees": chosen == default}


# --- tasks (train and validation parts only: nothing here reads a test split) ---------------

def tasks() -> tuple[dict, dict, dict]:
    digits = data.load("digits", flatten=True, valid=DIGITS_VALID)
    mnist = data.load("mnist5k", valid=MNIST_VALID)
    assert digits.valid is not None and mnist.valid is not None

    def mlp(bn: bool) -> dict:
        return {"name": f"digits, MLP 64-128-64-10{' with BatchNorm' if bn else ''}, 30 epochs",
                "model": lambda: models.mlp(64, [128, 64], 10, batchnorm=bn),
                "example": digits.train.tensors[0][:1], "train": digits.train,
                "valid": digits.valid, "epochs": 30}

    lenet = {"name": "mnist5k, LeNet-5 20-50-500-10, 10 epochs", "model": models.lenet5,
             "example": LENET_EXAMPLE, "train": mnist.train, "valid": mnist.valid, "epochs": 10}
    return {"mlp": mlp(False), "bn": mlp(True), "lenet": lenet}, digits.record(), mnist.record()


def task_of(method: str, all_tasks: dict) -> dict:
    if method in BUDGETED:
        return all_tasks["lenet"]
    return all_tasks["bn" if method in BATCHNORM else "mlp"]


def protocol() -> str:
    """The docstring's protocol (its second and third paragraphs) on one line."""
    return " ".join(" ".join((__doc__ or "").split("\n\n")[1:3]).split())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=sorted(GRIDS), default=list(GRIDS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    all_tasks, digits, mnist = tasks()
    methods = {m: select(m, task_of(m, all_tasks), args.seeds) for m in args.methods}
    for m, r in methods.items():
        print(f"{m}: selected {r['selected']} (default {r['default_variant']}, "
              f"{'agrees' if r['agrees'] else 'differs'})")
    write_json(args.out, {
        "provenance": provenance(" ".join([CMD, *sys.argv[1:]]), seeds=args.seeds,
                                 data={"digits": digits, "mnist5k": mnist},
                                 epochs={"digits": all_tasks["mlp"]["epochs"],
                                         "mnist5k": all_tasks["lenet"]["epochs"]},
                                 tolerance=TOLERANCE,
                                 protocol=protocol()),
        "methods": methods, "seconds": time.perf_counter() - start})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
