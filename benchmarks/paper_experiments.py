"""Paper 1's experiments, one command each; JSON + PNG into benchmarks/results/paper/.

    python -m benchmarks.paper_experiments table31 --seeds 3
    python -m benchmarks.paper_experiments all
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from archlearn.experiments import paper
from archlearn.experiments.common import write_json

OUT = Path(__file__).parent / "results" / "paper"


def run(name: str, seeds: int, epochs: int) -> None:
    if name == "table31":
        result = paper.table31(seeds=seeds, epochs=epochs)
    elif name == "svd":
        table = OUT / "table31.json"
        result = paper.svd_comparison(
            epochs=epochs, table=json.loads(table.read_text()) if table.exists() else None)
    elif name == "hyper":
        result = paper.hyperparameters(OUT, epochs=epochs)
    elif name == "classes":
        result = paper.classes(OUT, epochs=epochs)
    elif name == "depth":
        result = paper.depth_selection(epochs=epochs)
    elif name == "bayesopt":
        result = paper.bayesopt(epochs=min(epochs, 8), storage=f"sqlite:///{OUT}/optuna.db",
                                out=OUT)
    elif name == "pretrained":
        result = paper.pretrained(epochs=epochs)
    else:
        raise SystemExit(f"unknown experiment {name!r}")
    write_json(OUT / f"{name}.json", result)
    print(f"wrote {OUT / f'{name}.json'}")


def main() -> None:
    names = ["table31", "svd", "hyper", "classes", "depth", "bayesopt", "pretrained"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=names + ["all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names if args.experiment == "all" else [args.experiment]:
        if name == "bayesopt":
            (OUT / "optuna.db").unlink(missing_ok=True)  # a fresh study each run
        run(name, args.seeds, args.epochs)


if __name__ == "__main__":
    main()
