"""Peer baseline: Torch-Pruning L1 (magnitude) structured pruning + fine-tuning on LeNet-5.

Protocol, per seed, with the same total epoch budget as archlearn's own run:

* ``baseline``: the unpruned 20-50-500-10 net trained for ``epochs`` epochs.
* ``torch-pruning L1 + fine-tune``: train the dense net for ``epochs // 2`` epochs, prune it once
  (``benchmarks/peers.py``: L1 magnitude importance, uniform ratio, no global pruning, final
  Linear ignored) at the ``pruning_ratio`` found by bisection whose parameter count lands closest
  to the target (~40,000 and ~16,000), then fine-tune for the remaining epochs with a fresh
  optimizer. Both targets are pruned from the same dense half-run.

    python -m benchmarks.peer_torch_pruning --seeds 3 --epochs 20 \
        --out benchmarks/results/peer_torch_pruning.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from archlearn import data, models
from archlearn.io import write_json
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.runs import summarise
from archlearn.train import TrainConfig, Trainer
from benchmarks.peers import prune_to

RESULTS = Path(__file__).parent / "results"
METHOD = "torch-pruning L1 + fine-tune"
TARGETS = (40_000, 16_000)


def row(method: str, target: int | None, seed: int, model: nn.Module, splits,
        seconds: float, **extra) -> dict:
    figures = summarise(model, splits.test, seconds)
    figures.pop("model")
    return {"method": method, "target": target, "seed": seed, **figures, **extra}


def run_seed(splits, seed: int, epochs: int) -> list[dict]:
    example = splits.train.tensors[0][:1]
    first = epochs // 2
    rows = []
    torch.manual_seed(seed)
    start = time.perf_counter()
    baseline = models.lenet5()
    Trainer(baseline, splits.train, None,
            TrainConfig(epochs=epochs, seed=seed, progress=False)).fit()
    rows.append(row("baseline", None, seed, baseline, splits, time.perf_counter() - start))

    torch.manual_seed(seed)
    start = time.perf_counter()
    dense = models.lenet5()
    Trainer(dense, splits.train, None,
            TrainConfig(epochs=first, seed=seed, progress=False)).fit()
    dense_seconds = time.perf_counter() - start
    dense_accuracy = accuracy(dense, splits.test)
    for target in TARGETS:
        start = time.perf_counter()
        model, ratio = prune_to(dense, example, target, iterations=24)
        pruned_accuracy = accuracy(model, splits.test)
        Trainer(model, splits.train, None,
                TrainConfig(epochs=epochs - first, seed=seed, progress=False)).fit()
        seconds = dense_seconds + time.perf_counter() - start
        rows.append(row(METHOD, target, seed, model, splits, seconds, pruning_ratio=ratio,
                        dense_accuracy=dense_accuracy, pruned_accuracy=pruned_accuracy))
        print(f"seed {seed} target {target}: {rows[-1]['architecture']} "
              f"{rows[-1]['params']} params, accuracy {rows[-1]['accuracy']:.4f}", flush=True)
    print(f"seed {seed} baseline: accuracy {rows[0]['accuracy']:.4f}", flush=True)
    return rows


def means(rows: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["method"] if r["target"] is None else f"{r['method']} @ {r['target']}"
        groups.setdefault(key, []).append(r)
    return {
        key: {
            "params": statistics.fmean(r["params"] for r in group),
            "macs": statistics.fmean(r["macs"] for r in group),
            "accuracy": statistics.fmean(r["accuracy"] for r in group),
            "accuracy_std": statistics.stdev([r["accuracy"] for r in group])
            if len(group) > 1 else 0.0,
            "seeds": len(group),
        }
        for key, group in groups.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs")
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON (default benchmarks/results/peer_torch_pruning.json)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs = 1, 2
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (half dense training, half fine-tuning)")
    out = args.out or RESULTS / ("peer_torch_pruning_quick.json" if args.quick
                                 else "peer_torch_pruning.json")
    torch.set_num_threads(1)
    splits = data.load("mnist5k")
    rows = [r for seed in range(args.seeds) for r in run_seed(splits, seed, args.epochs)]
    payload = {
        "provenance": provenance(
            " ".join(["python -m benchmarks.peer_torch_pruning", *sys.argv[1:]]), splits,
            torch_pruning=tp.__version__, seeds=args.seeds, epochs=args.epochs,
            protocol=" ".join(" ".join(__doc__.split("\n\n")[1:3]).split())),
        "rows": rows,
        "mean": means(rows),
    }
    write_json(out, payload)
    for key, figures in payload["mean"].items():
        print(f"{key}: {figures['params']:.0f} params, accuracy {figures['accuracy']:.4f}")


if __name__ == "__main__":
    main()
