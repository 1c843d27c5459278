"""The main job: learn LeNet-5's architecture on MNIST and compare with the baseline.

For each seed: train the 20-50-500-10 baseline; attach the method (default: the tri-state ReLU
with its default options), train, shrink; train the learned architecture again from scratch
(the paper's "NN" column). Nothing is selected, so each row is scored once, on the test split.
Model weights are drawn under the seed (``seeded``: the caller's RNG is left alone). Writes
``results.json``, a PNG of widths against iterations (the paper's figure 3.2a) and returns a
printable table.
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
from archlearn.train import TrainConfig

ROWS = ("baseline", "learned", "from_scratch")


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
    command: str = "archlearn run lenet-mnist",
) -> dict[str, Any]:
    """Run the demo and write its files under ``out``; returns the results dictionary."""
    splits = data.load(dataset, path=path)
    options = options or {}
    runs = []
    for seed in range(seeds):
        config = TrainConfig(epochs=epochs, seed=seed, progress=progress)
        with seeded(seed):
            base = train_plain(models.lenet5(), splits, config)
        with seeded(seed):
            learned = train_learned(models.lenet5(), splits, config, method=method, **options)
        with seeded(seed + 1000):
            scratch = train_plain(reinitialised(learned["model"]), splits, config)
        runs.append({"seed": seed, "baseline": base, "learned": learned, "from_scratch": scratch})
    results = {
        "provenance": provenance(command, splits, seeds=seeds, epochs=epochs,
                                 method=method, options=options),
        "runs": [{k: _jsonable(v) for k, v in r.items()} for r in runs],
        "mean": {row: _mean(runs, row) for row in ROWS},
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


def _mean(runs: list[dict], row: str) -> dict[str, float]:
    keys = ("params", "macs", "latency_ms", "accuracy")
    return {k: statistics.fmean(r[row][k] for r in runs) for k in keys}


def table(results: dict[str, Any]) -> str:
    """A fixed-width table of the mean figures, with the architecture of the first seed."""
    first = results["runs"][0]
    seeds = results["provenance"]["seeds"]
    head = f"{'model':<14}{'architecture':<22}{'params':>9}{'MACs':>11}{'acc %':>8}{'ms':>8}"
    name = results["provenance"]["data"]["name"]
    method = results["provenance"]["method"]
    lines = [f"LeNet-5 on {name}, method {method} (mean of {seeds} seed(s))",
             head, "-" * len(head)]
    for row in ROWS:
        m = results["mean"][row]
        lines.append(
            f"{row:<14}{first[row]['architecture']:<22}{m['params']:>9.0f}{m['macs']:>11.0f}"
            f"{100 * m['accuracy']:>8.2f}{m['latency_ms']:>8.2f}"
        )
    drop = 100 * (results["mean"]["baseline"]["accuracy"] - results["mean"]["learned"]["accuracy"])
    ratio = results["mean"]["baseline"]["params"] / results["mean"]["learned"]["params"]
    lines.append(f"learned: {ratio:.1f}x fewer parameters, {drop:+.2f} points below baseline "
                 f"(latency: batch of 256 on the CPU, median)")
    return "\n".join(lines)
