"""Paper 1's experiments, one command each; JSON + PNG into benchmarks/results/paper/.

    python -m benchmarks.paper_experiments table31 --seeds 3
    python -m benchmarks.paper_experiments all
    python -m benchmarks.paper_experiments table31 --data ~/mnist   # the full MNIST IDX files
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from archlearn import ArchlearnError, data
from archlearn.io import write_json
from archlearn.provenance import add_allow_dirty
from benchmarks import paper

OUT = Path(__file__).parent / "results" / "paper"


NAMES = ["table31", "svd", "hyper", "classes", "depth", "bayesopt", "pretrained"]


def run(name: str, seeds: int, epochs: int, short: int, out: Path = OUT,
        source: dict | None = None, trials: int = 20) -> None:
    """Run experiment ``name``; ``source`` = ``{"dataset": ..., "path": ...}`` (default mnist5k)."""
    # the command as run, flags included (threads, data, epochs), for the provenance
    command = "python -m benchmarks.paper_experiments " + " ".join(
        [name, *(a for a in sys.argv[1:] if a not in NAMES + ["all"])])
    src = {**(source or {}), "command": command}
    if name == "table31":
        result = paper.table31(seeds=seeds, epochs=epochs, **src)
    elif name == "svd":
        table = out / "table31.json"
        result = paper.svd_comparison(
            epochs=epochs, table=json.loads(table.read_text()) if table.exists() else None, **src)
    elif name == "hyper":
        result = paper.hyperparameters(out, epochs=short, **src)
    elif name == "classes":
        result = paper.classes(out, epochs=short, counts=(2, 4, 6, 8, 10), **src)
    elif name == "depth":
        result = paper.depth_selection(epochs=short, **src)
    elif name == "bayesopt":
        result = paper.bayesopt(epochs=epochs, trials=trials, seeds=seeds,
                                storage=f"sqlite:///{out}/optuna.db", out=out, **src)
    elif name == "pretrained":
        result = paper.pretrained(epochs=short, finetune=max(short // 2, 1), **src)
    else:
        raise SystemExit(f"unknown experiment {name!r}")
    write_json(out / f"{name}.json", result)
    print(f"wrote {out / f'{name}.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("experiment", nargs="+", choices=NAMES + ["all"])
    parser.add_argument("--seeds", type=int, default=3, help="table 3.1 and bayesopt")
    parser.add_argument("--epochs", type=int, default=20, help="table 3.1, SVD and bayesopt")
    parser.add_argument("--short-epochs", type=int, default=10, help="the other experiments")
    parser.add_argument("--trials", type=int, default=20, help="Optuna trials per search")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="folder of the full MNIST IDX files instead of the bundled mnist5k; "
                             f"results then go to {OUT.name}-mnist/ (docs/RESULTS.md stays "
                             "mnist5k)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {OUT.name}/, or {OUT.name}-mnist/ with "
                             "--data)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or (OUT if args.data is None else OUT.with_name(OUT.name + "-mnist"))
    source = None if args.data is None else {"dataset": "mnist-idx", "path": args.data}
    if source:  # fail now, not after an hour: the files must be there and readable
        try:
            data.load(source["dataset"], path=source["path"])
        except (ArchlearnError, OSError) as error:
            raise SystemExit(f"error: --data {args.data}: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    for name in NAMES if "all" in args.experiment else args.experiment:
        if name == "bayesopt":
            (out / "optuna.db").unlink(missing_ok=True)  # a fresh study each run
        run(name, args.seeds, args.epochs, args.short_epochs, out, source, args.trials)


if __name__ == "__main__":
    main()
