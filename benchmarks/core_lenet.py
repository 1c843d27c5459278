"""Core acceptance figures for the tri-state ReLU on LeNet-5 / mnist5k.

* ``demo``: the demo job (`archlearn run lenet-mnist`) with default options over several seeds.
* ``user_loop``: the same defaults through a user's own plain training loop (attach, add
  ``penalty()``, call ``step()`` after the unchanged optimizer step).
* ``overhead``: seconds per training epoch with gates against without, epochs of the two
  interleaved so that load on the machine hits both alike (median of epochs).

    python -m benchmarks.core_lenet --seeds 3 --epochs 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.io import write_json
from archlearn.jobs import lenet_mnist
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.structure.measure import count_params

RESULTS = Path(__file__).parent / "results"


def user_loop(splits, seed: int, epochs: int, gated: bool, batch: int = 64) -> dict:
    """A plain loop written the way a user would, optionally with archlearn's three lines."""
    torch.manual_seed(seed)
    model = models.lenet5()
    loader = torch.utils.data.DataLoader(splits.train, batch_size=batch, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    learner = (al.attach(model, splits.train.tensors[0][:1], total_steps=epochs * len(loader))
               if gated else None)
    epoch_seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            if learner:
                loss = loss + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if learner:
                learner.step()
        epoch_seconds.append(time.perf_counter() - start)
    small = learner.shrink() if learner else model
    return {"seed": seed, "params": count_params(small),
            "accuracy": accuracy(small, splits.test),
            "epoch_seconds": statistics.median(epoch_seconds)}


def overhead(splits, epochs: int = 6, batch: int = 64) -> dict:
    """Median epoch time of the same loop with and without gates, epochs interleaved."""
    loops = {}
    for gated in (False, True):
        torch.manual_seed(0)
        model = models.lenet5()
        loader = torch.utils.data.DataLoader(splits.train, batch_size=batch, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        learner = (al.attach(model, splits.train.tensors[0][:1],
                             total_steps=10 * epochs * len(loader)) if gated else None)
        loops[gated] = (model, loader, torch.optim.Adam(model.parameters(), lr=1e-3), learner)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(epochs):
        for gated, (model, loader, optimizer, learner) in loops.items():
            start = time.perf_counter()
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                if learner:
                    loss = loss + learner.penalty()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if learner:
                    learner.step()
            times[gated].append(time.perf_counter() - start)
    plain, gated = statistics.median(times[False]), statistics.median(times[True])
    return {"plain_seconds": plain, "gated_seconds": gated, "ratio": gated / plain,
            "epochs": epochs, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--overhead-only", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = data.load("mnist5k")
    cost = overhead(splits)
    command = (f"python -m benchmarks.core_lenet --overhead-only --threads {args.threads}"
               if args.overhead_only else "python -m benchmarks.core_lenet")
    cost["command"] = command
    cost["provenance"] = provenance(command, splits, threads=args.threads)
    write_json(RESULTS / "core_overhead.json", cost)
    print(cost)
    if args.overhead_only:
        return
    if not args.skip_demo:
        results = lenet_mnist.run(RESULTS / "demo", seeds=args.seeds, epochs=args.epochs,
                                 progress=False, budget={"macs": 0.25},
                                 command=f"archlearn run lenet-mnist --seeds {args.seeds}")
        write_json(RESULTS / "core_demo.json", results)
        print(lenet_mnist.table(results))
    plain = [user_loop(splits, s, args.epochs, gated=False) for s in range(args.seeds)]
    gated = [user_loop(splits, s, args.epochs, gated=True) for s in range(args.seeds)]
    payload = {
        "provenance": provenance(
            f"python -m benchmarks.core_lenet --seeds {args.seeds} --epochs {args.epochs}",
            splits, seeds=args.seeds, epochs=args.epochs),
        "plain": plain,
        "gated": gated,
        "mean": {
            "plain_accuracy": statistics.fmean(r["accuracy"] for r in plain),
            "gated_accuracy": statistics.fmean(r["accuracy"] for r in gated),
            "gated_params": statistics.fmean(r["params"] for r in gated),
        },
    }
    write_json(RESULTS / "core_user_loop.json", payload)
    print(payload["mean"])


if __name__ == "__main__":
    main()
