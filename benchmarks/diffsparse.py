"""Paper 4 (differentiable sparsification): single weights of LeNet-300-100, and a DAG cell.

Two experiments, each against class-blind magnitude pruning at the sparsity it reaches:

* ``lenet300``: ``diffsparse`` with ``mode="weights"`` (a softmax-normalised, thresholded scale
  per weight, one group per output unit) on LeNet-300-100, mnist5k (4,000 train / 1,000 test).
* ``cell``: ``mode="cell"`` on the node inputs of a DAG cell (``archlearn.graphs.DagCell`` on
  the complete DAG of ``--nodes`` nodes: every node may read every earlier node; ``Conv1d(k=5)
  -> BN -> ReLU`` nodes of 16 channels, the sink flattened into a Linear) on MNIST-1D (4,000 /
  1,000 signals of length 40). The learned connectivity is read off the exact zeros
  (``DagCell.learned_graph()``); the learned cell is also retrained from scratch as a fixed
  architecture, and shown beside the full cell.

Protocol. The weights train with Adam (lr 1e-3, batch 64) for ``--epochs``; beta with the
method's Adam (lr 1e-2). ``lam`` is chosen on a validation split (1,000 of the 4,000 training
examples, stratified, fixed): the largest weight sparsity whose validation accuracy is within
1 point of the dense net's, among ``--lams`` (``--cell-lams`` for the cell; seed 0). The chosen
``lam`` then trains on all 4,000 examples for each seed; the test split is read once per
trained model. Magnitude pruning at equal sparsity: the dense run's state after half the
epochs, pruned class-blind to the learned row's number of non-zero Linear/Conv weights, trained
for the other half (fresh Adam) with the zeros kept (``benchmarks/sparse_common.py``).

    python -m benchmarks.diffsparse --seeds 3 --epochs 30
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import networkx as nx
import torch
from torch.utils.data import TensorDataset

import archlearn as al
from archlearn import data, models
from archlearn.graphs import cell_net, complete_dag
from archlearn.io import write_json
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from benchmarks import sparse_common as common

RESULTS = Path(__file__).parent / "results"
SCHEDULE = common.Schedule("adam", 1e-3)
CHANNELS = 16


def _lenet300(splits) -> torch.nn.Module:
    return models.lenet300()


def _cell(nodes: int):
    def make(splits) -> torch.nn.Module:
        return cell_net(complete_dag(nodes), length=splits.input_shape[-1],
                        num_classes=splits.num_classes, channels=CHANNELS)
    return make


def run_learned(make, splits, train_set: TensorDataset, test_set: TensorDataset, seed: int,
                epochs: int, mode: str, lam: float) -> dict:
    torch.manual_seed(seed)
    model = make(splits)
    learner = al.attach(model, train_set.tensors[0][:1], method="diffsparse", mode=mode, lam=lam)
    start = time.perf_counter()
    common.train(model, train_set, epochs, seed, SCHEDULE, learner=learner)
    seconds = time.perf_counter() - start
    model.eval()
    small = learner.shrink().eval()
    x = test_set.tensors[0][:256]
    with torch.no_grad():
        gap = float((small(x) - model(x)).abs().max())
    kept, total = common.weight_count(small)
    out = {"lam": lam, "accuracy": accuracy(small, test_set), "nonzero_weights": kept,
           "weight_sparsity": 1 - kept / total,
           "nonzero_params": al.measure(small, x[:2], repeats=1)["nonzero_params"],
           "params": sum(p.numel() for p in small.parameters()),
           "max_output_difference": gap, "train_seconds": seconds}
    if mode == "cell":
        graph = small[0].learned_graph()
        out["edges"] = sorted([list(e) for e in graph.edges])
        out["candidate_edges"] = small[0].graph.number_of_edges()
    return out


def run_dense(make, splits, train_set, test_set, seed: int, epochs: int,
              graph: nx.DiGraph | None = None) -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(seed)
    model = make(splits) if graph is None else cell_net(
        graph, length=splits.input_shape[-1], num_classes=splits.num_classes, channels=CHANNELS)
    half: dict[str, torch.nn.Module] = {}

    def snapshot(epoch: int) -> None:
        if epoch == epochs // 2:
            half["model"] = copy.deepcopy(model)

    common.train(model, train_set, epochs, seed, SCHEDULE, at_epoch=snapshot)
    kept, total = common.weight_count(model)
    return ({"accuracy": accuracy(model, test_set), "nonzero_weights": kept,
             "params": sum(p.numel() for p in model.parameters())}, half["model"])


def select_lam(make, splits, mode: str, lams: list[float], epochs: int) -> dict:
    """The largest validation sparsity within 1 point of the dense validation accuracy."""
    held = data.with_validation(splits, 1000)  # fixed, stratified (archlearn.data)
    fit, valid = held.train, held.valid
    dense, _ = run_dense(make, splits, fit, valid, 0, epochs)
    trials = []
    for lam in lams:
        print(f"  validation: lam {lam}", file=sys.stderr, flush=True)
        r = run_learned(make, splits, fit, valid, 0, epochs, mode, lam)
        trials.append({"lam": lam, "valid_accuracy": r["accuracy"],
                       "weight_sparsity": r["weight_sparsity"]})
    ok = [t for t in trials if t["valid_accuracy"] >= dense["accuracy"] - 0.01]
    best = max(ok or trials, key=lambda t: t["weight_sparsity"] if ok else t["valid_accuracy"])
    return {"dense_valid_accuracy": dense["accuracy"], "trials": trials, "chosen": best["lam"],
            "split": held.record()}


def experiment(name: str, make, splits, mode: str, args, lams: list[float]) -> dict:
    selection = select_lam(make, splits, mode, lams, args.epochs)
    lam = selection["chosen"]
    runs = []
    for seed in range(args.seeds):
        print(f"{name} seed {seed} (lam {lam})", file=sys.stderr, flush=True)
        dense, half = run_dense(make, splits, splits.train, splits.test, seed, args.epochs)
        learned = run_learned(make, splits, splits.train, splits.test, seed, args.epochs, mode,
                              lam)
        run = {"dense": dense, "diffsparse": learned,
               "magnitude": common.magnitude_at(half, splits.train, splits.test,
                                         learned["nonzero_weights"], args.epochs - args.epochs // 2,
                                         args.epochs // 2, seed, SCHEDULE)}
        if mode == "cell":  # the learned connectivity as a fixed architecture, from scratch
            graph = nx.DiGraph(learned["edges"])
            graph.add_nodes_from(range(args.nodes))
            run["learned cell from scratch"], _ = run_dense(make, splits, splits.train,
                                                            splits.test, seed, args.epochs, graph)
        runs.append(run)
    summary = common.summarise(runs, {"diffsparse": "magnitude"})
    return {"mode": mode, "selection": selection, "lam": lam, "runs": runs, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lams", type=float, nargs="+", default=[2.0, 5.0, 10.0, 20.0],
                        help="lam grid of the LeNet-300-100 experiment")
    parser.add_argument("--cell-lams", type=float, nargs="+", default=[0.5, 1.0, 2.0, 5.0],
                        help="lam grid of the cell (a few edges per node: less pressure)")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--experiments", nargs="+", default=["lenet300", "cell"],
                        choices=["lenet300", "cell"])
    parser.add_argument("--out", type=Path, default=RESULTS / "diffsparse.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # 2 shared cores
    line = common.command("benchmarks.diffsparse", argv)
    result: dict = {"experiments": {}}
    for name in args.experiments:
        if name == "lenet300":
            splits = data.load("mnist5k", flatten=True)
            result["experiments"][name] = experiment(name, _lenet300, splits, "weights", args,
                                                     args.lams)
        else:
            splits = data.load("mnist1d")
            result["experiments"][name] = experiment(name, _cell(args.nodes), splits, "cell",
                                                     args, args.cell_lams)
        result["experiments"][name]["provenance"] = provenance(
            line.strip(), splits, epochs=args.epochs, seeds=args.seeds,
            lams=args.lams if name == "lenet300" else args.cell_lams,
            schedule=vars(SCHEDULE), nodes=args.nodes, channels=CHANNELS)
        write_json(args.out, result)  # after every experiment: a long run keeps what finished
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
