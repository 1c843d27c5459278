"""Paper 2 (the switcher network): neurons against connections, beside magnitude pruning.

Tasks: LeNet-300-100 (784-300-100-10) and LeNet-5 (20-50-500-10) on mnist5k (4,000 train /
1,000 test real MNIST digits). The schedule is the official code's
(``hanmengqiaoyx/Mining_Knowledge_of_Weights``): the task weights train with plain SGD at lr 0.1
(batch 64, no weight decay), the switchers with their own SGD at lr 0.1, both decayed x0.1 at
50% and 75% of the epochs (the code: 50 and 75 of 100); epochs alternate between the two, from
the first epoch for the MLP (weights first), after 4 plain epochs for LeNet (switchers first).
``--epochs`` replaces the code's 100 (CPU budget): one number for every task, or one per task
in ``--tasks`` order; each task's JSON records its epochs. One addition, for every row: the task
weights' gradient norm is clipped at 5. Without it the connections variant diverged (NaN weights
in epoch 14 of 30, LeNet-300-100, seed 0): its gates grow to about 20, and an SGD step on ``W``
moves ``W * G`` by ``G**2`` times the step; with the clip the same run stays finite (gates up
to 14). The dense and magnitude rows get the same clip.

Rows, per seed (the same initial weights for every row of a seed):

* ``dense``: no gates, the same SGD schedule.
* ``switcher neurons``: the U-Net switcher gating units (a smaller dense model).
* ``switcher connections``: the U-Net switcher gating single weights (``W * G``; the shrunk model
  keeps the shapes, with exact zeros).
* ``switcher neurons, simplified``: the per-unit MLP switcher (``meta="mlp"``) this package had
  before, to say whether the U-Net is worth its cost.
* ``magnitude @ <row>``: class-blind magnitude pruning at the weight sparsity the row reached
  (same seed): the dense run's state after half the epochs, pruned to the row's number of
  non-zero Linear/Conv weights, trained for the other half with the dense run's schedule and
  the zeros kept (``benchmarks/sparse_common.py``).

Nothing is selected: every setting is the code's, so no validation split is needed; the test
split is read once per trained model.

    python -m benchmarks.switcher --seeds 3 --epochs 30
    python -m benchmarks.switcher --seeds 3 --epochs 4 6 --jobs 2   # the committed run (CPU)
    python -m benchmarks.switcher --profile-epochs 3 --tasks lenet5   # seconds per epoch only
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import archlearn as al
from archlearn import data, models
from archlearn.io import write_json
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.runs import architecture_string
from benchmarks import sparse_common as common

RESULTS = Path(__file__).parent / "results"
SCHEDULE = common.Schedule("sgd", 0.1, (0.5, 0.75), clip=5.0)
TASKS = {
    "lenet300": {"label": "LeNet-300-100 / mnist5k", "make": models.lenet300, "flatten": True,
                 "warmup_epochs": 0, "start": "weights"},
    "lenet5": {"label": "LeNet-5 20-50-500-10 / mnist5k", "make": models.lenet5,
               "flatten": False, "warmup_epochs": 4, "start": "switcher"},
}
ROWS = {
    "switcher neurons": {"variant": "neurons"},
    "switcher connections": {"variant": "connections"},
    "switcher neurons, simplified": {"variant": "neurons", "meta": "mlp"},
}


def run_switcher(task: dict, options: dict, splits, seed: int, epochs: int) -> dict:
    torch.manual_seed(seed)
    model = task["make"]()
    steps = len(splits.train) // 64 + bool(len(splits.train) % 64)
    learner = al.attach(model, splits.train.tensors[0][:1], method="switcher",
                        steps_per_epoch=steps, total_steps=epochs * steps,
                        milestones=SCHEDULE.milestones, start=task["start"],
                        warmup=task["warmup_epochs"] / epochs, **options)
    start = time.perf_counter()
    common.train(model, splits.train, epochs, seed, SCHEDULE, learner=learner)
    seconds = time.perf_counter() - start
    model.eval()
    small = learner.shrink().eval()
    x = splits.test.tensors[0][:256]
    with torch.no_grad():
        gap = float((small(x) - model(x)).abs().max())
    kept, total = common.weight_count(small)
    _, dense_total = common.weight_count(model)
    size = al.measure(small, x[:2], repeats=1)
    return {"accuracy": accuracy(small, splits.test), "params": size["params"],
            "nonzero_params": size["nonzero_params"], "nonzero_weights": kept,
            "weight_sparsity": 1 - kept / dense_total, "architecture": architecture_string(small),
            "max_output_difference": gap, "train_seconds": seconds}


def run_seed(task: dict, splits, seed: int, epochs: int, rows: list[str]) -> dict:
    out: dict[str, dict] = {}
    torch.manual_seed(seed)
    dense = task["make"]()
    half: dict[str, torch.nn.Module] = {}

    def snapshot(epoch: int) -> None:
        if epoch == epochs // 2:
            half["model"] = copy.deepcopy(dense)

    start = time.perf_counter()
    common.train(dense, splits.train, epochs, seed, SCHEDULE, at_epoch=snapshot)
    kept, total = common.weight_count(dense)
    out["dense"] = {"accuracy": accuracy(dense, splits.test),
                    "params": sum(p.numel() for p in dense.parameters()),
                    "nonzero_weights": kept, "weight_sparsity": 1 - kept / total,
                    "architecture": architecture_string(dense),
                    "train_seconds": time.perf_counter() - start}
    for row in rows:
        print(f"  seed {seed}: {row}", file=sys.stderr, flush=True)
        out[row] = run_switcher(task, ROWS[row], splits, seed, epochs)
        out[f"magnitude @ {row}"] = common.magnitude_at(
            half["model"], splits.train, splits.test, out[row]["nonzero_weights"],
            epochs - epochs // 2, epochs // 2, seed, SCHEDULE)
    return out


def run_task(name: str, seeds: int, epochs: int, rows: list[str]) -> dict:
    """Every seed of one task (a worker of ``--jobs``, or the main process)."""
    torch.set_num_threads(1)  # 2 shared cores
    task = TASKS[name]
    splits = data.load("mnist5k", flatten=task["flatten"])
    runs = []
    for seed in range(seeds):
        print(f"{name} seed {seed}", file=sys.stderr, flush=True)
        runs.append(run_seed(task, splits, seed, epochs, rows))
    return {"label": task["label"], "start": task["start"], "epochs": epochs,
            "warmup_epochs": task["warmup_epochs"], "runs": runs,
            "summary": common.summarise(runs, {row: f"magnitude @ {row}" for row in rows})}


PROFILED = ("dense", "switcher", "channels-last")


def profile_epochs(name: str, row: str, repeats: int, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of ``repeats`` epochs each of: the dense net (the same loop, no learner: what a
    switcher epoch cannot go below), a switcher epoch of ``row``, and the same with
    ``channels_last=True`` (faster, but its sums run in another order: not the same outputs,
    so it is not the default). Interleaved epoch by epoch, so a busy machine slows all
    three alike; the switchers train from the first step (no warm-up), one long switcher epoch
    timed a data epoch at a time."""
    task = TASKS[name]
    splits = data.load("mnist5k", flatten=task["flatten"])
    steps = len(splits.train) // 64 + bool(len(splits.train) % 64)
    nets, learners = {}, {}
    for kind in PROFILED:  # the same initial weights and switchers for each
        torch.manual_seed(seed)
        nets[kind] = task["make"]()
        if kind != "dense":
            learners[kind] = al.attach(
                nets[kind], splits.train.tensors[0][:1], method="switcher",
                steps_per_epoch=steps * (repeats + 1), start="switcher",
                channels_last=kind == "channels-last", **ROWS[row])
    seconds: dict[str, list[float]] = {kind: [] for kind in PROFILED}
    for epoch in range(repeats):
        for kind in PROFILED:
            start = time.perf_counter()
            common.train(nets[kind], splits.train, 1, seed + epoch, SCHEDULE,
                         learner=learners.get(kind))
            seconds[kind].append(time.perf_counter() - start)
    assert all(m.method.switching for m in learners.values())  # every timed step trained them
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs="+", default=[30],
                        help="one for every task, or one per task in --tasks order")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--jobs", type=int, default=1,
                        help="tasks run in this many processes at once (one thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "switcher.json")
    parser.add_argument("--profile-epochs", type=int, default=0, metavar="N",
                        help="only time N switcher epochs per task and row (beside a dense "
                        "epoch and channels-last U-Nets, interleaved) and print the medians")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # 2 shared cores
    if args.profile_epochs:
        for name in args.tasks:
            for row in args.rows:
                seconds = profile_epochs(name, row, args.profile_epochs)
                medians = ", ".join(f"{kind} {statistics.median(s):.2f}"
                                    for kind, s in seconds.items())
                print(f"{name} / {row}: seconds per epoch, median of {args.profile_epochs}: "
                      f"{medians}", flush=True)
        return
    line = common.command("benchmarks.switcher", argv)
    if len(args.epochs) not in (1, len(args.tasks)):
        parser.error("--epochs takes one number, or one per task")
    epochs = dict(zip(args.tasks, args.epochs * len(args.tasks) if len(args.epochs) == 1
                      else args.epochs))
    result: dict = {"tasks": {}, "provenance": provenance(
        line.strip(), data.load("mnist5k"), epochs=epochs, seeds=args.seeds,
        schedule=vars(SCHEDULE))}
    if args.jobs > 1:
        # concurrent.futures runs the tasks in separate processes; the file is written in
        # the --tasks order once all are done
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {name: pool.submit(run_task, name, args.seeds, epochs[name],
                                         args.rows) for name in args.tasks}
            result["tasks"] = {name: f.result() for name, f in futures.items()}
        write_json(args.out, result)
    for name in [] if args.jobs > 1 else args.tasks:
        result["tasks"][name] = run_task(name, args.seeds, epochs[name], args.rows)
        write_json(args.out, result)  # after every task: a long run leaves what it finished
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
