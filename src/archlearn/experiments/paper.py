"""The experiments of Srinivas & Babu's chapter 3, scaled to the bundled mnist5k.

Every function takes ``dataset`` and ``path`` for :func:`archlearn.data.load`: the defaults are
the bundled mnist5k; ``dataset="mnist-idx", path=FOLDER`` runs on the full MNIST IDX files.

Each function runs one table or figure, returns a JSON-ready dictionary (with provenance) and
writes its plot, if any, next to the JSON. ``benchmarks/paper_experiments.py`` calls them and
``benchmarks/report.py`` renders docs/RESULTS.md. Names of LeNet-5's gated layers: ``0`` (conv1),
``3`` (conv2), ``7`` (fc, 500 units); only the fc layer can learn depth (pooling follows the
convolutions).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from scipy.stats import spearmanr
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.experiments.common import (
    architecture_string,
    provenance,
    reinitialised,
    train_learned,
    train_plain,
)
from archlearn.prune import svd_compress
from archlearn.train import TrainConfig, Trainer, evaluate, steps_per_epoch

# The paper's table 3.1: lambda3 = k lambda1, and whether the fc layer learns depth.
AL_SETTINGS = {
    "AL1": {"k": 0.4, "depth": "all"},
    "AL2": {"k": 0.4, "depth": "none"},
    "AL3": {"k": 0.2, "depth": "all"},
    "AL4": {"k": 0.2, "depth": "none"},
}
PAPER_TABLE_31 = {
    "baseline": ("20-50-500-10", 99.3, None),
    "AL1": ("16-26-10", 99.07, 99.08),
    "AL2": ("20-50-20-10", 99.07, 99.14),
    "AL3": ("16-40-10", 99.22, 99.25),
    "AL4": ("20-50-70-10", 99.19, 99.21),
}


def _strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("model", "architecture_log")}


def table31(seeds: int = 3, epochs: int = 20, dataset: str = "mnist5k",
            path: str | None = None) -> dict[str, Any]:
    """AL1-AL4: learned architecture, accuracy, and the same net trained from scratch."""
    splits = data.load(dataset, path=path)
    rows: dict[str, list] = {"baseline": [], **{name: [] for name in AL_SETTINGS}}
    for seed in range(seeds):
        config = TrainConfig(epochs=epochs, seed=seed, progress=False)
        torch.manual_seed(seed)
        rows["baseline"].append(_strip(train_plain(models.lenet5(), splits, config)))
        for name, options in AL_SETTINGS.items():
            torch.manual_seed(seed)
            learned = train_learned(models.lenet5(), splits, config, **options)
            torch.manual_seed(seed + 1000)
            scratch = train_plain(reinitialised(learned["model"]), splits, config)
            rows[name].append({**_strip(learned), "scratch_accuracy": scratch["accuracy"]})
    return {
        "provenance": provenance("python -m benchmarks.paper_experiments table31", splits,
                                 seeds=seeds, epochs=epochs, settings=AL_SETTINGS),
        "rows": rows,
        "mean": {name: _mean(r) for name, r in rows.items()},
        "paper": PAPER_TABLE_31,
    }


def _mean(rows: list[dict]) -> dict[str, float]:
    keys = [k for k in ("params", "macs", "accuracy", "scratch_accuracy") if k in rows[0]]
    return {k: statistics.fmean(r[k] for r in rows) for k in keys}


def svd_comparison(epochs: int = 20, seed: int = 0, table: dict | None = None,
                   dataset: str = "mnist5k", path: str | None = None) -> dict[str, Any]:
    """Rank-10 and rank-40 SVD of the 800x500 layer against AL at similar parameter counts."""
    splits = data.load(dataset, path=path)
    torch.manual_seed(seed)
    base = train_plain(models.lenet5(), splits, TrainConfig(epochs=epochs, seed=seed,
                                                            progress=False))
    rows = [{"model": "baseline", "params": base["params"], "accuracy": base["accuracy"]}]
    for rank in (10, 40):
        small = svd_compress(base["model"], {"7": rank})
        rows.append({"model": f"SVD rank-{rank}", "params": sum(p.numel() for p in
                                                                small.parameters()),
                     "accuracy": evaluate(small, splits.test)})
    if table:
        for name in ("AL2", "AL4"):
            m = table["mean"][name]
            rows.append({"model": name, "params": m["params"], "accuracy": m["accuracy"]})
    return {"provenance": provenance("python -m benchmarks.paper_experiments svd", splits,
                                     seed=seed, epochs=epochs),
            "rows": rows,
            "paper": [["Baseline", "431K", 99.3], ["SVD rank-10", "43.6K", 98.47],
                      ["AL2", "40.9K", 99.07], ["SVD rank-40", "83.1K", 99.06],
                      ["AL4", "82.3K", 99.19]]}


def hyperparameters(out: Path, epochs: int = 15, seed: int = 0,
                    dataset: str = "mnist5k", path: str | None = None) -> dict[str, Any]:
    """Figure 3.2a: fc width against iterations for several lambda1 and k = lambda3/lambda1."""
    splits = data.load(dataset, path=path)
    settings = {f"lambda1={v:g}": {"lambda1": v} for v in (2e-3, 5e-3, 1e-2)}
    settings.update({f"k={v:g}": {"k": v} for v in (0.2, 0.6)})
    runs = {}
    for label, options in settings.items():
        torch.manual_seed(seed)
        r = train_learned(models.lenet5(), splits, TrainConfig(epochs=epochs, seed=seed,
                                                               progress=False), **options)
        runs[label] = {"options": options, "log": r["architecture_log"],
                       "params": r["params"], "accuracy": r["accuracy"],
                       "architecture": r["architecture"]}
    _plot_runs(runs, out / "hyperparameters.png")
    return {"provenance": provenance("python -m benchmarks.paper_experiments hyper", splits,
                                     seed=seed, epochs=epochs),
            "runs": runs}


def _plot_runs(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for label, run in runs.items():
        ax = axes[0] if label.startswith("lambda1") else axes[1]
        steps = [r["step"] for r in run["log"]]
        ax.plot(steps, [r["widths"][-1] for r in run["log"]], label=label)
    axes[0].set_title("lambda1 sets how fast the architecture settles (k = 0.4)")
    axes[1].set_title("k = lambda3/lambda1 sets how much is pruned")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.legend()
    axes[0].set_ylabel("fc units kept")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def classes(out: Path, epochs: int = 15, seed: int = 0,
            counts: tuple[int, ...] = tuple(range(2, 11)),
            dataset: str = "mnist5k", path: str | None = None) -> dict[str, Any]:
    """Figure 3.2b: learned neurons and error as the number of classes grows."""
    rows = []
    for n in counts:
        splits = data.load(dataset, path=path, classes=list(range(n)))
        torch.manual_seed(seed)
        r = train_learned(models.lenet5(num_classes=n), splits,
                          TrainConfig(epochs=epochs, seed=seed, progress=False))
        widths = [layer["width"] for layer in r["learned"]["layers"]]
        rows.append({"classes": n, "widths": widths, "neurons": sum(widths),
                     "fc_neurons": widths[-1], "error": 1 - r["accuracy"],
                     "params": r["params"]})
    rho_neurons = spearmanr([r["classes"] for r in rows], [r["fc_neurons"] for r in rows])[0]
    rho_error = spearmanr([r["classes"] for r in rows], [r["error"] for r in rows])[0]
    _plot_classes(rows, out / "classes.png")
    return {"provenance": {"command": "python -m benchmarks.paper_experiments classes",
                           "epochs": epochs, "seed": seed, "data": f"{dataset}, classes 0..n-1"},
            "rows": rows, "spearman_fc_neurons": rho_neurons, "spearman_error": rho_error}


def _plot_classes(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    n = [r["classes"] for r in rows]
    ax.plot(n, [r["fc_neurons"] for r in rows], "o-", label="fc units learned")
    ax.set_xlabel("number of classes")
    ax.set_ylabel("fc units")
    ax2 = ax.twinx()
    ax2.plot(n, [100 * r["error"] for r in rows], "s--", color="tab:red", label="error %")
    ax2.set_ylabel("test error %")
    fig.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


DEPTH_OPTIONS = {"k": 0.4, "lambda1": 5e-3}  # the tsrelu defaults, spelt out for lambda4


def depth_selection(epochs: int = 15, seed: int = 0,
                    depths: tuple[int, ...] = (6, 8, 10, 12, 15),
                    dataset: str = "mnist5k", path: str | None = None) -> dict[str, Any]:
    """Table 3.2: start from 20-50-(75 x n)-10, learn widths and depth, shrink for real.

    Here the depth gates start as ReLUs (``init_depth`` = 0.4) with ``lambda4 = lambda3``: a
    deep stack started linear (the default 0.9) trains as one deep linear map and keeps every
    layer linear, and with the paper's ``lambda4 = lambda3 / 10`` nothing pulls a ReLU toward
    the identity (both measured; see the module docstring of ``methods/tsrelu.py``).
    """
    splits = data.load(dataset, path=path)
    lambda3 = DEPTH_OPTIONS["k"] * DEPTH_OPTIONS["lambda1"]
    rows = []
    for depth in depths:
        torch.manual_seed(seed)
        r = train_learned(models.lenet5_deep(depth), splits,
                          TrainConfig(epochs=epochs, seed=seed, progress=False), depth="all",
                          init_depth=0.4, lambda4=lambda3)
        rows.append({"initial_depth": depth,
                     "learned_depth": len(r["architecture"].split("-")),
                     "architecture": r["architecture"], "params": r["params"],
                     "error": 1 - r["accuracy"], "max_output_difference":
                     r["max_output_difference"]})
    return {"provenance": {"command": "python -m benchmarks.paper_experiments depth",
                           "epochs": epochs, "seed": seed, "data": dataset},
            "options": {"depth": "all", "init_depth": 0.4, "lambda4": lambda3},
            "rows": rows,
            "paper": [[6, 5, "18-31-32-24-10", 1.02], [8, 6, "17-37-39-29-21-10", 0.99],
                      [10, 6, "17-34-32-21-21-10", 0.97], [12, 6, "18-34-30-21-17-10", 1.04],
                      [15, 8, "16-37-35-25-20-22-10", 0.93]]}


def pretrained(epochs: int = 15, finetune: int = 10, seed: int = 0,
               dataset: str = "mnist5k", path: str | None = None) -> dict[str, Any]:
    """The CaffeNet case study scaled down: learn conv, fc or both from a trained LeNet-5."""
    splits = data.load(dataset, path=path)
    torch.manual_seed(seed)
    base = train_plain(models.lenet5(), splits, TrainConfig(epochs=epochs, seed=seed,
                                                            progress=False))
    rows = [{"variant": "pretrained", "architecture": base["architecture"],
             "params": base["params"], "accuracy": base["accuracy"], "compression": 0.0}]
    for variant, width in {"AL-conv": ["0", "3"], "AL-fc": ["7"],
                           "AL-conv-fc": ["0", "3", "7"]}.items():
        model = _copy_trained(base["model"])
        config = TrainConfig(epochs=finetune, seed=seed, progress=False, lr=5e-4)
        r = train_learned(model, splits, config, width=width)
        rows.append({"variant": variant, "architecture": r["architecture"],
                     "params": r["params"], "accuracy": r["accuracy"],
                     "compression": 1 - r["params"] / base["params"]})
    return {"provenance": {"command": "python -m benchmarks.paper_experiments pretrained",
                           "epochs": epochs, "finetune_epochs": finetune, "seed": seed,
                           "data": dataset},
            "rows": rows}


def _copy_trained(model: nn.Module) -> nn.Module:
    fresh = models.lenet5()
    fresh.load_state_dict(model.state_dict())
    return fresh


# --- architecture learning against Bayesian optimisation (Optuna TPE) -----------------------


def cost(model: nn.Module, splits, price: float) -> float:
    """The paper's objective: test cross-entropy + price * hidden neurons of ``model``."""
    x, y = splits.test.tensors
    model.eval()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x), y).item()
    neurons = sum(int(w) for w in architecture_string(model).split("-")[:-1])
    return loss + price * neurons


def _al_cost_curve(splits, config: TrainConfig, price: float, **options) -> dict[str, Any]:
    """One AL run; after each epoch the shrunk model's cost, against training time alone.

    The time spent shrinking and scoring for the curve is left out of the clock: a user of the
    run only pays for it once, at the end.
    """
    model = models.lenet5()
    total = config.epochs * steps_per_epoch(splits.train, config.batch_size)
    learner = al.attach(model, splits.test.tensors[0][:1], total_steps=total, **options)
    curve: list[tuple[float, float]] = []
    archs: list[str] = []
    excluded = 0.0
    start = time.perf_counter()

    def score(_record: dict) -> None:
        nonlocal excluded
        begin = time.perf_counter()
        small = learner.shrink()
        value = cost(small, splits, price)
        best = min([value] + [c for _, c in curve])
        curve.append((begin - start - excluded, best))
        archs.append(architecture_string(small))
        excluded += time.perf_counter() - begin

    torch.manual_seed(config.seed)
    Trainer(model, splits.train, None, config, learner=learner, on_epoch=score).fit()
    return {"options": options, "curve": curve, "cost": curve[-1][1],
            "seconds": curve[-1][0], "architecture": archs[-1], "architectures": archs}


def _first_time(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, c in curve if c <= target + 1e-12), None)


def bayesopt(epochs: int = 20, trials: int = 20, seed: int = 0, storage: str | None = None,
             out: Path | None = None, dataset: str = "mnist5k", path: str | None = None
             ) -> dict[str, Any]:
    """Best cost against wall time: Optuna TPE over widths (fc only, then all three) vs one AL run.

    Every Optuna trial trains LeNet-5 at its widths for as many epochs as the AL run, and both
    are scored by the same ``test loss + price * hidden neurons`` of the model they deliver (for
    AL: the shrunk model after each epoch). The price is the AL run's own lambda3 (k * lambda1).
    AL runs twice: AL1 (widths and depth, the full method) and AL2 (widths only, the same search
    space as Optuna's). ``speedup`` = time Optuna needed to reach its best cost / time AL needed
    to reach that cost.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = data.load(dataset, path=path)
    config = TrainConfig(epochs=epochs, seed=seed, progress=False)
    total = epochs * steps_per_epoch(splits.train, config.batch_size)
    price = al.attach(models.lenet5(), splits.test.tensors[0][:1], total_steps=total
                      ).method.lambda3
    runs = {name: _al_cost_curve(splits, config, price, **AL_SETTINGS[name])
            for name in ("AL1", "AL2")}
    searches = {}
    for space in ("fc", "all"):
        curve: list[tuple[float, float]] = []
        begin = time.perf_counter()

        def objective(trial, space=space, curve=curve, begin=begin):
            fc = trial.suggest_int("fc", 5, 500, log=True)
            convs = ((trial.suggest_int("conv1", 2, 20), trial.suggest_int("conv2", 2, 50))
                     if space == "all" else (20, 50))
            torch.manual_seed(seed)
            model = models.lenet5(widths=(*convs, fc))
            Trainer(model, splits.train, None, config).fit()
            value = cost(model, splits, price)
            best = min([value] + [c for _, c in curve])
            curve.append((time.perf_counter() - begin, best))
            return value

        study = optuna.create_study(
            study_name=f"lenet-{space}", storage=storage, load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=trials)
        best = min(c for _, c in curve)
        optuna_at_best = _first_time(curve, best)
        versus = {}
        for name, run in runs.items():
            al_at_best = _first_time(run["curve"], best)
            reached_al = _first_time(curve, run["cost"])
            versus[name] = {
                "al_seconds_to_optuna_best": al_at_best,
                "speedup": optuna_at_best / al_at_best if al_at_best else None,
                "optuna_seconds_to_al_cost": reached_al,
                "optuna_reached_al_cost": reached_al is not None,
            }
        searches[space] = {"curve": curve, "best_cost": best, "best_params": study.best_params,
                           "seconds_to_best": optuna_at_best, "versus": versus}
    result = {"provenance": {"command": "python -m benchmarks.paper_experiments bayesopt",
                             "epochs": epochs, "trials": trials, "seed": seed,
                             "threads": torch.get_num_threads(),
                             "price_per_neuron": price, "data": dataset},
              "al": runs, "optuna": searches}
    if out is not None:
        _plot_bayesopt(result, out / "bayesopt.png")
    return result


def _plot_bayesopt(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for space, s in result["optuna"].items():
        t, c = zip(*s["curve"])
        ax.step(t, c, where="post", label=f"Optuna TPE ({space} widths)")
    for (name, run), colour in zip(result["al"].items(), ("red", "purple")):
        t, c = zip(*run["curve"])
        ax.step(t, c, where="post", color=colour, lw=2, label=f"one {name} run (per epoch)")
        ax.plot([t[-1]], [c[-1]], "*", color=colour, ms=14)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("best cost: loss + lambda * neurons")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
