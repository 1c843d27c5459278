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


def run(name: str, seeds: int, epochs: int, short: int) -> None:
    if name == "table31":
        result = paper.table31(seeds=seeds, epochs=epochs)
    elif name == "svd":
        table = OUT / "table31.json"
        result = paper.svd_comparison(
            epochs=epochs, table=json.loads(table.read_text()) if table.exists() else None)
    elif name == "hyper":
        result = paper.hyperparameters(OUT, epochs=short)
    elif name == "classes":
        result = paper.classes(OUT, epochs=short, counts=(2, 4, 6, 8, 10))
    elif name == "depth":
        result = paper.depth_selection(epochs=short)
    elif name == "bayesopt":
        result = paper.bayesopt(epochs=epochs, trials=20,
                                storage=f"sqlite:///{OUT}/optuna.db", out=OUT)
    elif name == "pretrained":
        result = paper.pretrained(epochs=short, finetune=max(short // 2, 1))
    else:
        raise SystemExit(f"unknown experiment {name!r}")
    write_json(OUT / f"{name}.json", result)
    print(f"wrote {OUT / f'{name}.json'}")


def main() -> None:
    names = ["table31", "svd", "hyper", "classes", "depth", "bayesopt", "pretrained"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="+", choices=names + ["all"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20, help="table 3.1 and SVD")
    parser.add_argument("--short-epochs", type=int, default=10, help="the other experiments")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names if "all" in args.experiment else args.experiment:
        if name == "bayesopt":
            (OUT / "optuna.db").unlink(missing_ok=True)  # a fresh study each run
        run(name, args.seeds, args.epochs, args.short_epochs)


if __name__ == "__main__":
    main()
