"""Each method's defaults, and the variants its docstring speaks of, on digits (3 seeds).

The numbers behind the design decisions in ``archlearn/methods/*.py``: every registered method
with its default options, plus the variants named in ``VARIANTS``, trained in the user's own
loop (Adam 1e-3, batch 64, ``--epochs`` epochs) on scikit-learn's digits (1,347 train / 450
test) with the MLP 64-128-64-10 (the BatchNorm MLP for a method that needs BatchNorm). Widths
are the learned hidden widths; accuracy is the shrunk model's, on the test split (nothing is
selected here). A new method file is picked up with its defaults.

    python -m benchmarks.method_settings --seeds 3 --epochs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

import archlearn as al
from archlearn import ArchlearnError, data, models
from archlearn.io import write_json
from archlearn.methods import names
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from benchmarks.select_defaults import train  # the same user loop as the selection

OUT = Path(__file__).parent / "results" / "method_settings.json"
CMD = "python -m benchmarks.method_settings"
#: variants the methods' docstrings discuss (label -> options); ``warmup`` is a fraction of the run
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "l0": {"lam=1e-2, lr=2e-2": {"lam": 1e-2, "lr": 2e-2},
           "droprate_init=0.3": {"droprate_init": 0.3}},
    "diffsparse": {"lam=0": {"lam": 0.0}, "lam=1": {"lam": 1.0}, "lam=5": {"lam": 5.0},
                   "lam=10": {"lam": 10.0}, "renorm=sum, lam=0": {"renorm": "sum", "lam": 0.0}},
    "slimming": {"scope=layer": {"scope": "layer"}, "freeze=None (no fine-tuning)":
                 {"freeze": None}},
    "switcher": {"warm-up 1 epoch": {"warmup": "1 epoch"}, "warm-up 4 epochs":
                 {"warmup": "4 epochs"}},
    "l1": {"lam=1e-2": {"lam": 1e-2}},
}


def run(method: str, options: dict, splits, seed: int, epochs: int, bn: bool) -> dict:
    torch.manual_seed(seed)
    model = models.mlp(64, [128, 64], 10, batchnorm=bn)
    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    options = dict(options)
    if isinstance(options.get("warmup"), str):  # "N epoch(s)" -> a fraction of the run
        options["warmup"] = int(options["warmup"].split()[0]) / epochs
    learner = al.attach(model, splits.train.tensors[0][:1], method=method,
                        total_steps=epochs * len(loader), steps_per_epoch=len(loader), **options)
    train(model, learner, loader, epochs)
    small = learner.shrink()
    return {"seed": seed, "widths": [layer["width"] for layer in learner.architecture()["layers"]],
            "params": learner.architecture()["params"], "accuracy": accuracy(small, splits.test)}


def needs_batchnorm(method: str) -> bool:
    try:
        al.attach(models.mlp(64, [8], 10), torch.zeros(1, 64), method=method, total_steps=1,
                  steps_per_epoch=1)
    except ArchlearnError:
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    splits = data.load("digits", flatten=True)
    rows: dict[str, dict] = {}
    dense = []
    for bn in (False, True):
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = models.mlp(64, [128, 64], 10, batchnorm=bn)
            from archlearn.train import TrainConfig, Trainer

            Trainer(model, splits.train, None, TrainConfig(epochs=args.epochs, seed=seed,
                                                           progress=False)).fit()
            dense.append({"batchnorm": bn, "seed": seed, "accuracy": accuracy(model, splits.test)})
    for method in names():
        bn = needs_batchnorm(method)
        for label, options in {"defaults": {}, **VARIANTS.get(method, {})}.items():
            runs = [run(method, options, splits, seed, args.epochs, bn)
                    for seed in range(args.seeds)]
            acc = [r["accuracy"] for r in runs]
            rows[f"{method}: {label}"] = {
                "method": method, "variant": label, "options": options, "batchnorm": bn,
                "runs": runs, "accuracy_mean": statistics.fmean(acc),
                "accuracy_min": min(acc), "accuracy_max": max(acc),
                "widths": ["-".join(map(str, r["widths"])) for r in runs]}
            print(f"{method:10s} {label:28s} {rows[f'{method}: {label}']['widths']} "
                  f"{100 * statistics.fmean(acc):.1f}%", flush=True)
    write_json(args.out, {
        "provenance": provenance(" ".join([CMD, *sys.argv[1:]]), splits, seeds=args.seeds,
                                 epochs=args.epochs,
                                 protocol=" ".join(__doc__.split("\n\n")[1].split())),
        "dense": dense, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
