"""The main job: learn LeNet-5's architecture on MNIST and compare with the baseline.

For each seed: train the 20-50-500-10 baseline; attach the method (default: the tri-state ReLU
with its default options), train, shrink; the same with a budget (default a quarter of the
MACs: ``cost`` and ``budget`` of that kind, see ``archlearn/budget.py``); train the unweighted
learned architecture again from scratch (the paper's "NN" column). Nothing is selected, so each
row is scored once, on the test split. Model weights are drawn under the seed (``seeded``: the
caller's RNG is left alone). The rows' latencies are timed together, interleaved
(``compare_latency``: a batch of 256, 1 thread, median and IQR), and the speed-up is over the
baseline of the same timing. Writes ``results.json``, a PNG of widths against iterations (the
paper's figure 3.2a) and returns a printable table.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from archlearn import data, models
from archlearn.io import write_json
from archlearn.plots import widths_plot
from archlearn.provenance import provenance
from archlearn.runs import reinitialised, train_learned, train_plain
from archlearn.seeding import seeded
from archlearn.structure.measure import compare_latency
from archlearn.train import TrainConfig

ROWS = ("baseline", "learned", "budgeted", "from_scratch")
BUDGET = (("macs", 0.25),)  # the budgeted row's default: a quarter of the baseline's MACs


def run(
    out: Path,
    *,
    seeds: int = 1,
    epochs: int = 20,
    dataset: str = "mnist5k",
    path: str | None = None,
    progress: bool = True,
    options: dict[str, Any] | None = None,
    method: str = "tsrelu",
    budget: dict[str, float] | None = dict(BUDGET),  # noqa: B006 (read, never mutated)
    command: str = "archlearn run lenet-mnist",
) -> dict[str, Any]:
    """Run the demo and write its files under ``out``; returns the results dictionary.

    ``budget`` (default ``{"macs": 0.25}``) adds the budgeted row; ``None`` leaves it out.
    """
    splits = data.load(dataset, path=path)
    options = options or {}
    runs = []
    for seed in range(seeds):
        config = TrainConfig(epochs=epochs, seed=seed, progress=progress)
        with seeded(seed):
            base = train_plain(models.lenet5(), splits, config)
        with seeded(seed):
            learned = train_learned(models.lenet5(), splits, config, method=method, **options)
        run = {"seed": seed, "baseline": base, "learned": learned}
        if budget is not None:
            (kind, _), = budget.items()
            with seeded(seed):
                run["budgeted"] = train_learned(models.lenet5(), splits, config, method=method,
                                                cost=kind, budget=budget, **options)
        with seeded(seed + 1000):
            run["from_scratch"] = train_plain(reinitialised(learned["model"]), splits, config)
        _time_together(run, splits)
        runs.append(run)
    rows = [row for row in ROWS if row in runs[0]]
    results = {
        "provenance": provenance(command, splits, seeds=seeds, epochs=epochs,
                                 method=method, options=options, budget=budget),
        "runs": [{k: _jsonable(v) for k, v in r.items()} for r in runs],
        "mean": {row: _mean(runs, row) for row in rows},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    learned = runs[0]["learned"]
    results["plot"] = widths_plot(learned["architecture_log"], learned["layer_names"],
                                  out / "widths.png",
                                  title=f"Architecture against iterations ({method})")
    return results


def _jsonable(result: Any) -> Any:
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if k != "model"}
    return result


def _time_together(run: dict[str, Any], splits) -> None:
    """Every row's model timed in one interleaved measurement (the speed-up's denominator is
    the baseline of the same measurement)."""
    nets = {row: run[row]["model"] for row in ROWS if row in run}
    timing = compare_latency(nets, splits.test.tensors[0][:256])
    for row in nets:
        run[row].update(latency_ms=timing[row]["median_ms"],
                        latency_iqr_ms=timing[row]["iqr_ms"],
                        speedup=timing["baseline"]["median_ms"] / timing[row]["median_ms"])


def _mean(runs: list[dict], row: str) -> dict[str, float]:
    keys = ("params", "macs", "latency_ms", "latency_iqr_ms", "speedup", "accuracy")
    return {k: statistics.fmean(r[row][k] for r in runs) for k in keys}


def table(results: dict[str, Any]) -> str:
    """A fixed-width table of the mean figures, with the architecture of the first seed."""
    first = results["runs"][0]
    seeds = results["provenance"]["seeds"]
    head = (f"{'model':<14}{'architecture':<16}{'params':>9}{'MACs':>10}{'acc %':>8}"
            f"{'ms (IQR)':>15}{'speed-up':>10}")
    name = results["provenance"]["data"]["name"]
    method = results["provenance"]["method"]
    lines = [f"LeNet-5 on {name}, method {method} (mean of {seeds} seed(s))",
             head, "-" * len(head)]
    for row, m in results["mean"].items():
        ms = f"{m['latency_ms']:.2f} ({m['latency_iqr_ms']:.2f})"
        lines.append(
            f"{row:<14}{first[row]['architecture']:<16}{m['params']:>9.0f}{m['macs']:>10.0f}"
            f"{100 * m['accuracy']:>8.2f}{ms:>15}{m['speedup']:>9.2f}x"
        )
    mean = results["mean"]
    for row in ("learned", "budgeted"):
        if row not in mean:
            continue
        change = 100 * (mean[row]["accuracy"] - mean["baseline"]["accuracy"])
        ratio = mean["baseline"]["macs"] / mean[row]["macs"]
        note = ""
        if row == "budgeted":
            b = first[row]["learned"]["budget"]
            note = (f"; budget {100 * b['budget']:.3g}% of the {b['kind']} "
                    f"({b['target']:,.0f}), reached {100 * b['reached']:.1f}% "
                    f"({b['reached_count']:,.0f}; seed 0)")
        lines.append(f"{row}: {ratio:.1f}x fewer MACs, accuracy {change:+.2f} points against "
                     f"the baseline{note}")
    lines.append("latency: a batch of 256 on the CPU, 1 thread, every row timed together "
                 "(interleaved rounds), median (IQR); on a busy machine compare rows, not runs")
    return "\n".join(lines)
