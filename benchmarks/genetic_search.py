"""Genetic architecture search with a performance predictor against plain GA and random search.

For each data set and seed, three searches over layered DAGs (at most ``--max-nodes`` hidden
units) train the same number of networks (``--budget``):

* ``ga+predictor``: the GA whose offspring are screened by a RandomForest on the 23 structural
  features (refitted on every network trained so far; from generation ``--warmup + 1`` on, only
  the top ``--offspring`` of ``--offspring * --screen`` candidates are trained);
* ``ga``: the same GA training every offspring it makes;
* ``random``: fresh random-prior graphs (the GA's initial distribution).

Fitness is validation accuracy (``--valid`` training examples, stratified, held out of training)
after ``--epochs`` of Adam; the best genome of each search is then retrained ``--test-repeats``
times on the full training split and its mean test accuracy reported. Writes
``benchmarks/results/genetic_search.json`` and one PNG per data set (best fitness against
networks trained); ``--quick`` writes under ``runs/quick/``. Search states are resumable JSON
files in ``--state-dir`` (``--resume`` continues them).

    python -m benchmarks.genetic_search                # the real budget
    python -m benchmarks.genetic_search --quick        # a tiny smoke run
    python -m benchmarks.genetic_search --datasets cifar10 --cifar-path ~/cifar-10-batches-py
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from archlearn import data
from archlearn.io import write_json
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.search.genetic import Genome, ffn_fitness, search
from archlearn.search.training import Fit, train_ffn
from benchmarks.parallel import completed, cpu_seconds
from benchmarks.plotting import figure, save

RESULTS = Path(__file__).parent / "results"
#: Short-training settings per data set (``--epochs`` / ``--lr`` override them): mnist1d nets have
#: 40 inputs, so more epochs cost little, and they learn too slowly at 3e-3 to rank structures.
DATASET_DEFAULTS = {
    "mnist5k": {"epochs": 2, "lr": 3e-3},
    "mnist1d": {"epochs": 5, "lr": 1e-2},
}
STRATEGIES = {  # name -> search() arguments
    "ga+predictor": {"strategy": "ga", "use_predictor": True},
    "ga": {"strategy": "ga", "use_predictor": False},
    "random": {"strategy": "random", "use_predictor": False},
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(p)
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke test")
    p.add_argument("--datasets", default="mnist5k,mnist1d",
                   help="comma list of mnist5k, mnist1d, digits, cifar10 (needs --cifar-path)")
    p.add_argument("--cifar-path", default=None, help="folder of CIFAR-10 python batches")
    p.add_argument("--seeds", type=int, default=3,
                   help="searches per strategy; one search's best is a noisy max: use more")
    p.add_argument("--budget", type=int, default=40, help="networks trained per search")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--offspring", type=int, default=4, help="networks trained per generation")
    p.add_argument("--screen", type=int, default=4, help="candidates per trained offspring")
    p.add_argument("--warmup", type=int, default=1, help="generations before screening starts")
    p.add_argument("--nodes", type=int, nargs=2, default=(5, 30), help="initial graph sizes")
    p.add_argument("--max-nodes", type=int, default=30, help="largest genome the GA may grow")
    p.add_argument("--epochs", type=int, default=None, help="default: per data set, else 2")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--anneal", action=argparse.BooleanOptionalAction, default=False,
                   help="one-cycle learning rate in every training")
    p.add_argument("--jobs", type=int, default=2, help="data sets searched in parallel")
    p.add_argument("--lr", type=float, default=None, help="default: per data set, else 3e-3")
    p.add_argument("--test-repeats", type=int, default=3,
                   help="retrainings of each search's best genome averaged for its test score")
    p.add_argument("--valid", type=int, default=1000, help="training examples held out")
    p.add_argument("--state-dir", default="runs/genetic_search")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "genetic_search.json"))
    p.add_argument("--progress", action="store_true", help="tqdm bars (off by default in logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.budget = "mnist1d", 2, 12
        args.population, args.offspring, args.epochs, args.valid = 4, 2, 1, 500
        args.test_repeats = 1
        args.out = "runs/quick/genetic_search.json"  # a smoke run: not a result to commit
        args.state_dir = "runs/genetic_search_quick"
    return args


def predictor_quality(evaluated: list[dict[str, Any]]) -> float | None:
    """Spearman correlation of the predictor's forecast and the fitness of screened genomes."""
    pairs = [(e["predicted"], e["fitness"]) for e in evaluated if e["predicted"] is not None]
    if len(pairs) < 3:
        return None
    rho = spearmanr(*zip(*pairs)).statistic
    return None if np.isnan(rho) else float(rho)


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def sem(xs: list[float]) -> float:
    """Standard error of the mean (nan below two values)."""
    return statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan")


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    splits = data.load(name, flatten=True, path=args.cifar_path if name == "cifar10" else None)
    full_train = splits.train  # the winner is retrained on all of it before the test
    splits = data.with_validation(splits, args.valid)  # fixed, stratified (numpy, seed 0)
    fit_train, valid = splits.train, splits.valid
    assert valid is not None
    defaults = DATASET_DEFAULTS.get(name, {"epochs": 2, "lr": 3e-3})
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    lr = args.lr if args.lr is not None else defaults["lr"]
    fitness = ffn_fitness(fit_train, valid, splits.num_classes, epochs=epochs, anneal=args.anneal,
                          batch_size=args.batch_size, lr=lr)
    out: dict[str, Any] = {"data": {**splits.record(), "fit_train": len(fit_train)},
                           "training": {"epochs": epochs, "lr": lr, "anneal": args.anneal,
                                        "batch_size": args.batch_size},
                           "runs": {}}
    curves: dict[str, list] = {}
    for strategy, kwargs in STRATEGIES.items():
        runs = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            state = search(
                fitness, budget=args.budget, population=args.population,
                offspring=args.offspring, screen=args.screen, warmup=args.warmup,
                nodes=tuple(args.nodes), max_nodes=args.max_nodes, seed=seed,
                state_path=Path(args.state_dir) / f"{name}-{strategy}-{seed}.json",
                resume=args.resume, progress=args.progress, **kwargs)
            seconds = time.perf_counter() - start
            best = state["best"]
            graph = Genome.from_json(best["genome"]).graph()
            # Retrain the winner on all training data (fresh seeds) and score it on test: its
            # validation fitness is the max of noisy runs, so it is optimistic by construction.
            test_acc = mean([train_ffn(graph, full_train, splits.test, splits.num_classes,
                                       Fit(epochs, args.batch_size, lr, anneal=args.anneal,
                                           seed=10_000 + 100 * seed + r))
                             for r in range(args.test_repeats)])
            runs.append({
                "seed": seed, "best_fitness": best["fitness"], "best_test_accuracy": test_acc,
                "best_nodes": graph.number_of_nodes(), "best_edges": graph.number_of_edges(),
                "best_genome": best["genome"], "trainings": state["trainings"],
                "generations": state["generation"] + 1, "screened": state["screened"],
                "history": state["history"], "seconds": seconds,
                "mean_fitness_trained": mean([e["fitness"] for e in state["evaluated"]]),
                "predictor_spearman": predictor_quality(state["evaluated"]),
            })
            print(f"{name} {strategy:13s} seed {seed}: best valid {best['fitness']:.4f} "
                  f"test {test_acc:.4f} ({graph.number_of_nodes()} nodes, "
                  f"{state['trainings']} trainings, {seconds:.0f}s)", flush=True)
        out["runs"][strategy] = runs
        curves[strategy] = [r["history"] for r in runs]
    out["summary"] = {
        s: {"best_fitness_mean": mean([r["best_fitness"] for r in runs]),
            "best_fitness_sem": sem([r["best_fitness"] for r in runs]),
            "best_test_accuracy_mean": mean([r["best_test_accuracy"] for r in runs]),
            "best_test_accuracy_sem": sem([r["best_test_accuracy"] for r in runs]),
            "mean_fitness_trained": mean([r["mean_fitness_trained"] for r in runs]),
            "seconds_mean": mean([r["seconds"] for r in runs])}
        for s, runs in out["runs"].items()
    }
    summ = out["summary"]
    out["acceptance"] = {
        "criterion": "ga+predictor best fitness (mean of seeds) > random search's, same budget",
        "ga+predictor": summ["ga+predictor"]["best_fitness_mean"],
        "random": summ["random"]["best_fitness_mean"],
        "passed": summ["ga+predictor"]["best_fitness_mean"] > summ["random"]["best_fitness_mean"],
        # Paired by seed (both searches of a seed start from the same random population).
        "seeds_won_valid": sum(a["best_fitness"] > b["best_fitness"] for a, b in
                               zip(out["runs"]["ga+predictor"], out["runs"]["random"])),
        "seeds_won_test": sum(a["best_test_accuracy"] > b["best_test_accuracy"] for a, b in
                              zip(out["runs"]["ga+predictor"], out["runs"]["random"])),
        "test_passed": (summ["ga+predictor"]["best_test_accuracy_mean"]
                        > summ["random"]["best_test_accuracy_mean"]),
    }
    plot = Path(args.out).with_name(f"{Path(args.out).stem}_{name}.png")
    plot_searches(curves, plot, title=f"{name}: {args.budget} trainings, {args.seeds} seeds")
    out["plot"] = str(plot)
    return out


def plot_searches(curves: dict[str, list[list[list[float]]]], path: Path, title: str = "") -> None:
    """Best fitness against trainings: one line per search run, the mean over runs in bold.

    ``curves[name]`` is a list of runs, each the ``history`` of :func:`search`.
    """
    fig, ax = figure(6, 4)
    for k, (name, runs) in enumerate(curves.items()):
        color = f"C{k}"
        length = min(len(r) for r in runs)
        for run in runs:
            ax.plot([t for t, _ in run], [b for _, b in run], color=color, alpha=0.25, lw=0.8)
        best = np.mean([[b for _, b in run[:length]] for run in runs], axis=0)
        ax.plot([t for t, _ in runs[0][:length]], best, color=color, lw=2,
                label=f"{name} (mean of {len(runs)})")
    ax.set_xlabel("networks trained")
    ax.set_ylabel("best fitness so far")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, path)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(1)  # 2 shared cores; the nets are far too small to use more
    command = "python -m benchmarks.genetic_search " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    payload: dict[str, Any] = {
        "provenance": provenance(
            command.strip(),
            seeds=list(range(args.seeds)),
            budget={k: v for k, v in vars(args).items()
                    if k not in ("out", "state_dir", "resume", "progress")},
            fitness="validation accuracy (--valid training examples, stratified) after a short "
                    "Adam training on the rest; test accuracy: the best genome retrained "
                    "--test-repeats times on the full training split, mean test accuracy",
        ),
        "datasets": {},
    }
    start, cpu_start = time.perf_counter(), time.process_time()
    names = args.datasets.split(",")
    for name, result in completed(run_dataset, names, args.jobs, args):
        payload["datasets"][name] = result
        payload["seconds"] = time.perf_counter() - start
        write_json(Path(args.out), payload)  # after each data set: partial results survive
    payload["datasets"] = {n: payload["datasets"][n] for n in names}
    payload["cpu_seconds"] = cpu_seconds(cpu_start)
    write_json(Path(args.out), payload)
    for name, res in payload["datasets"].items():
        print(f"\n{name} (mean of {args.seeds} seeds, {args.budget} trainings each)")
        print(f"{'search':14s} {'best valid':>10s} {'test of best':>12s} {'mean trained':>12s}")
        for s, v in res["summary"].items():
            print(f"{s:14s} {v['best_fitness_mean']:10.4f} {v['best_test_accuracy_mean']:12.4f} "
                  f"{v['mean_fitness_trained']:12.4f}")
        print("acceptance (ga+predictor > random):", res["acceptance"]["passed"])
    print(f"wrote {args.out} in {payload['seconds']:.0f}s")


if __name__ == "__main__":
    main()
