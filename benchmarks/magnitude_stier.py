"""Stier et al.'s magnitude-pruning experiment: one-shot 80% in three classes, and iterative.

Setup, after the authors' code (``innvariant/sparsity-experiments-2021``, ``pruning-ffns``): the
784-100-10 MLP (``models.mlp(784, [100], 10)``), plain SGD (lr 0.01, momentum 0, batch 64,
cross-entropy), here on mnist5k (4,000 train / 1,000 test real MNIST digits) instead of full
MNIST (50,000 train), and for a fixed ``--epochs`` instead of their train-until-plateau with lr
decay. Per seed, one dense net is trained; from it, for each class (``blind``: one global |w|
threshold; ``uniform``: the same fraction in every layer; ``distributed``: |w| / std of the layer,
one global threshold), ``archlearn.prune.one_shot`` prunes 80% of the Linear weights (biases
kept) and retrains for each of ``--retrain`` epochs (fresh SGD, lr 0.01, the masks kept by
``MaskKeeper`` after every step; 2 is the paper's fixed retraining, the longer one stands in for
its variable retraining of up to 25 epochs). ``archlearn.prune.iterative`` reaches the same 80% in
4 steps of 1 - 0.2 ** (1/4) = 33.1% of the remaining weights, retraining after each step.
Accuracies: the dense net, right after pruning (before retraining), after retraining. Control:
the dense net trained on, unpruned, for as many extra epochs as the retraining took (once the
retraining epochs for one-shot, 4 times for iterative), since a gain "over unpruned" may be just
the extra SGD epochs.

    python -m benchmarks.magnitude_stier --seeds 3 --epochs 100
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

import archlearn.prune as P
from archlearn import data, models
from archlearn.io import write_json
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.structure.measure import count_params

RESULTS = Path(__file__).parent / "results"
AMOUNT = 0.8
STEPS = 4
LR = 0.01
BATCH = 64
PAPER = {"source": "Stier et al., arXiv 2107.12917, abstract",
         "claim": "97.5% accuracy on MNIST at 80% compression, 0.5 points above the unpruned "
                  "784-100-10 network; class-uniform magnitude pruning worse than class-blind",
         "accuracy_at_80": 0.975, "gain_over_unpruned_pp": 0.5, "data": "full MNIST"}


def sgd_train(model: nn.Module, splits, epochs: int, seed: int,
              keeper: P.MaskKeeper | None = None) -> float:
    """Plain SGD for ``epochs`` epochs (masks re-applied after each step); returns accuracy."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.0)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for x, y in DataLoader(splits.train, batch_size=BATCH, shuffle=True,
                               generator=generator):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()
            if keeper is not None:
                keeper.step()
    return accuracy(model, splits.test)


def prune_run(dense: nn.Module, splits, seed: int, scope: str, steps: int,
              retrain: int) -> dict:
    """Prune a copy of ``dense`` to 80% in ``steps`` steps, retraining after each one."""
    model = copy.deepcopy(dense)
    per_step = 1 - (1 - AMOUNT) ** (1 / steps)
    before: list[float] = []

    def train_fn(m: nn.Module, epochs: int, keeper: P.MaskKeeper) -> dict:
        before.append(accuracy(m, splits.test))
        return {"pruned_accuracy": before[-1],
                "retrained_accuracy": sgd_train(m, splits, epochs, seed + 1000 * len(before),
                                                keeper)}

    masks, history = P.iterative(model, train_fn, amount_per_step=per_step, steps=steps,
                                 scope=scope, retrain_epochs=retrain)
    alive = sum(int(m.sum()) for m in masks.values())
    return {
        "scope": scope, "steps": steps, "retrain_epochs": retrain, "seed": seed,
        "amount_per_step": per_step,
        "sparsity": history[-1]["total"],
        "layer_sparsity": history[-1]["layers"],
        "weights_left": alive,
        "pruned_accuracy": before[-1],  # right after the last pruning step
        "pruned_accuracy_first_step": before[0],
        "accuracy": accuracy(model, splits.test),
        "steps_history": [{"step": h["step"], "total": h["total"], **h["train"]}
                          for h in history],
    }


def summary(runs: list[dict], dense: list[float]) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in runs:
        kind = "one-shot" if r["steps"] == 1 else f"iterative {r['steps']} steps"
        groups.setdefault(f"{kind} / {r['scope']} / retrain {r['retrain_epochs']}", []).append(r)
    dense_mean = statistics.fmean(dense)
    out = {}
    for key, g in groups.items():
        acc = [r["accuracy"] for r in g]
        out[key] = {
            "scope": g[0]["scope"], "steps": g[0]["steps"],
            "retrain_epochs": g[0]["retrain_epochs"],
            "sparsity": statistics.fmean(r["sparsity"] for r in g),
            "pruned_accuracy": statistics.fmean(r["pruned_accuracy"] for r in g),
            "accuracy": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "vs_unpruned_pp": 100 * (statistics.fmean(acc) - dense_mean),
            "layer_sparsity": {
                name: statistics.fmean(r["layer_sparsity"][name] for r in g)
                for name in g[0]["layer_sparsity"]},
            "seeds": len(g),
        }
    return out


def claim(runs: list[dict]) -> dict:
    """Uniform against blind, per schedule: mean difference and how many seeds agree."""
    out = {}
    for steps, retrain in sorted({(r["steps"], r["retrain_epochs"]) for r in runs}):
        same = [r for r in runs if r["steps"] == steps and r["retrain_epochs"] == retrain]
        kind = "one-shot" if steps == 1 else f"iterative {steps} steps"
        entry: dict = {}
        for which in ("pruned_accuracy", "accuracy"):
            blind = {r["seed"]: r[which] for r in same if r["scope"] == "blind"}
            uniform = {r["seed"]: r[which] for r in same if r["scope"] == "uniform"}
            diffs = [uniform[s] - blind[s] for s in blind]
            entry[which] = {"uniform_minus_blind_pp": 100 * statistics.fmean(diffs),
                            "seeds_uniform_worse": sum(d < 0 for d in diffs),
                            "seeds": len(diffs)}
        entry["holds"] = entry["accuracy"]["uniform_minus_blind_pp"] < 0
        out[f"{kind} / retrain {retrain}"] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100, help="dense SGD training epochs")
    parser.add_argument("--retrain", type=int, nargs="+", default=[2, 10],
                        help="retraining epochs after each pruning step (one run per value)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs")
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON (default benchmarks/results/magnitude_stier.json)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.retrain = 1, 2, [1]
    if min(args.retrain) < 1:
        parser.error("--retrain values must be at least 1")
    out = args.out or RESULTS / ("magnitude_stier_quick.json" if args.quick
                                 else "magnitude_stier.json")
    torch.set_num_threads(1)
    start = time.perf_counter()
    splits = data.load("mnist5k", flatten=True)
    dense_acc: list[float] = []
    runs: list[dict] = []
    controls: list[dict] = []  # the dense net trained on for as many epochs as the retraining
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        dense = models.mlp(784, [100], 10)
        dense_acc.append(sgd_train(dense, splits, args.epochs, seed))
        print(f"seed {seed} dense: {100 * dense_acc[-1]:.2f}%", flush=True)
        for retrain in args.retrain:
            for steps in (1, STEPS):
                control = copy.deepcopy(dense)
                controls.append({"seed": seed, "steps": steps, "retrain_epochs": retrain,
                                 "extra_epochs": steps * retrain,
                                 "accuracy": sgd_train(control, splits, steps * retrain,
                                                       seed + 1000)})
                for scope in P.SCOPES:
                    runs.append(prune_run(dense, splits, seed, scope, steps, retrain))
                    r = runs[-1]
                    print(f"seed {seed} steps {steps} retrain {retrain} {scope}: "
                          f"{100 * r['sparsity']:.1f}% pruned, "
                          f"{100 * r['pruned_accuracy']:.2f}% -> {100 * r['accuracy']:.2f}%",
                          flush=True)
    payload = {
        "provenance": provenance(
            " ".join(["python -m benchmarks.magnitude_stier", *sys.argv[1:]]), splits,
            seeds=args.seeds, epochs=args.epochs, retrain=args.retrain, amount=AMOUNT,
            iterative_steps=STEPS, optimizer=f"SGD lr {LR}, momentum 0, batch {BATCH}",
            model="784-100-10 MLP, ReLU",
            protocol=" ".join(__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0].split()),
            wall_seconds=time.perf_counter() - start),
        "paper": PAPER,
        "dense": {"accuracy": statistics.fmean(dense_acc),
                  "accuracy_std": statistics.stdev(dense_acc) if len(dense_acc) > 1 else 0.0,
                  "per_seed": dense_acc,
                  "params": count_params(models.mlp(784, [100], 10))},
        "dense_same_extra_epochs": {
            f"{c['extra_epochs']} extra epochs": statistics.fmean(
                d["accuracy"] for d in controls if d["extra_epochs"] == c["extra_epochs"])
            for c in controls},
        "runs": runs,
        "controls": controls,
        "mean": summary(runs, dense_acc),
        "claim_uniform_worse_than_blind": claim(runs),
    }
    write_json(out, payload)
    print(f"dense: {100 * payload['dense']['accuracy']:.2f}%")
    for key, m in payload["mean"].items():
        print(f"{key:45s} {100 * m['pruned_accuracy']:6.2f}% -> {100 * m['accuracy']:6.2f}% "
              f"({m['vs_unpruned_pp']:+.2f} vs unpruned)")
    for key, c in payload["claim_uniform_worse_than_blind"].items():
        print(f"uniform - blind, {key}: {c['accuracy']['uniform_minus_blind_pp']:+.2f} pp "
              f"(holds: {c['holds']})")


if __name__ == "__main__":
    main()
