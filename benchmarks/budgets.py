"""Matched MACs budgets: archlearn's budgeted methods against MorphNet, Torch-Pruning and Optuna.

Models, on mnist5k (real MNIST digits, 28x28; 3,500 train / 500 validation carved from the
4,000 training images, stratified, seed 0 / 1,000 test): LeNet-5 20-50-500-10, and a residual
CNN with BatchNorm (``models.tiny_resnet(in_channels=1, width=16)``, 24K params: a stem, two
identity blocks, one downsampling block; width 8, 6K params, lost 11-22 points at 25%/10%
whatever the method, too small to compare methods on). Budgets: 50%, 25% and 10% of the
original's MACs. Every row trains ``E`` epochs in total (Adam 1e-3, batch 64, the user's own
loop), per seed ``s`` the weights are drawn under ``seeded(s)`` and the batches follow a
generator seeded with ``s``:

* ``baseline``: the dense model. Its state after ``E // 2`` epochs is the dense half-run that
  Torch-Pruning starts from.
* ``tsrelu``, ``l0``: ``al.attach(..., cost="macs", budget={"macs": b})`` with the methods'
  defaults, trained ``E`` epochs, shrunk. ``morphnet``: ``budget={"macs": b}`` (its cost is MACs).
* ``tp-l1``, ``tp-taylor``: Torch-Pruning global pruning (L1 magnitude, first-order Taylor on
  1,024 training images) of the dense half-run, the global ratio bisected to the MACs closest to
  the budget, fine-tuned ``E - E // 2`` epochs with a fresh Adam.
* ``optuna``: TPE over the widths under the budget: each trial samples a relative width per
  group in [0.05, 1], scaled by one factor so that the MACs are at most the budget (every trial
  is feasible), trains ``max(E // 4, 2)`` epochs and is scored on the validation split; the best
  of ``--trials`` (6) is trained again from scratch for ``E`` epochs.

The test split is read once per row, after training; the only choices (Optuna's trials) are
made on the validation split. Wall time is the whole run of a row (Optuna: all trials and the
final training; Torch-Pruning: the dense half-run, the bisection and the fine-tuning).

Three steps, so the timing can be rerun alone on a quiet machine:

    python -m benchmarks.budgets train --seeds 3 --epochs 20   # -> results/budgets.json
    python -m benchmarks.budgets latency                         # -> results/budgets_latency.json
    python -m benchmarks.budgets sweep --seeds 3                 # -> results/budgets_sweep.json

``train`` and ``sweep`` append rows as they finish and skip the rows that a run of today's code
already made (rerun them to resume): each row names its run (``run``, the run id of its
provenance part), and a row whose run's source files have changed since, or that comes from a
run with no source record, is made again and replaced. Until then it stays in the file with its
run's provenance, so the report marks the file stale; the file keeps exactly the provenance parts
of the runs its rows come from.
``latency`` rebuilds every row's architecture from its recorded widths (the latency of a dense
model does not depend on its weights) and times each seed's models together with
``archlearn.structure.measure.compare_latency`` (1 thread, 30 interleaved rounds, median and
IQR) at batch 1 and 256; the speed-up is the baseline's median over the row's, in the same run.
``sweep`` checks that budgets are hit whatever the number of epochs: ``tsrelu`` at 10 and 30
epochs for every MACs budget and a params budget of 25% (and LeNet at 40,000 params).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.io import write_json
from archlearn.provenance import (
    LOADED,
    add_allow_dirty,
    changed_sources,
    merged,
    provenance,
    source_record,
)
from archlearn.seeding import seeded
from archlearn.structure.cost import build_cost
from archlearn.structure.measure import compare_latency, count_macs, count_params
from archlearn.structure.shrink import Decision, shrink
from benchmarks.peers import prune_to, taylor_grads

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
TRAIN_JSON, LATENCY_JSON, SWEEP_JSON = "budgets.json", "budgets_latency.json", "budgets_sweep.json"
BUDGETS = (0.5, 0.25, 0.1)
ARCHLEARN = ("tsrelu", "l0", "morphnet")
PEERS = ("tp-l1", "tp-taylor", "optuna")
MODELS = {
    "lenet5": ("LeNet-5 20-50-500-10", models.lenet5),
    "resnet": ("residual CNN with BatchNorm (tiny_resnet, width 16)",
               lambda: models.tiny_resnet(in_channels=1, width=16)),
}
# the model of a row written before rows named it: a row of another model is dropped
_LEGACY_ARCH = {"lenet5": "LeNet-5 20-50-500-10",
                "resnet": "residual CNN with BatchNorm (tiny_resnet, width 8)"}
EXAMPLE = torch.zeros(1, 1, 28, 28)


def splits():
    return data.load("mnist5k", valid=500)


# --- training -----------------------------------------------------------------------------

def loader(s, seed: int, dataset=None):
    return torch.utils.data.DataLoader(dataset or s.train, batch_size=64, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


def fit(model: nn.Module, batches, epochs: int, learner: al.Learner | None = None,
        on_epoch=None) -> None:
    """The user's own loop: Adam, cross-entropy (+ the learner's penalty), learner.step()."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        model.train()
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y)
            if learner is not None:
                loss = loss + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if learner is not None:
                learner.step()


def accuracy(model: nn.Module, dataset) -> float:
    x, y = dataset.tensors
    model.eval()
    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean())


def groups_of(name: str) -> list:
    """The unit groups of a fresh model (names and sizes, forward order)."""
    return al.attach(MODELS[name][1](), EXAMPLE, total_steps=1).groups


def build(name: str, widths: list[int]) -> nn.Module:
    """A freshly initialised model whose groups have these widths (the first units kept)."""
    model = MODELS[name][1]()
    learner = al.attach(model, EXAMPLE, total_steps=1)
    decisions = [Decision(torch.cat([torch.ones(w), torch.zeros(g.size - w)]))
                 for w, g in zip(widths, learner.groups)]
    with learner.hooks.suspended():
        small, _ = shrink(model, learner.groups, decisions, learner.inputs)
    for m in small.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
    return small


def widths_of(name: str, model: nn.Module) -> list[int]:
    """Per-group widths of a pruned model (its groups' producing layers' output channels)."""
    out = []
    for g in groups_of(name):
        layer = model.get_submodule(g.producers[0])
        out.append(int(layer.weight.shape[0]))
    return out


def row(name, method, budget, seed, model, s, seconds, **extra) -> dict[str, Any]:
    full = count_macs(MODELS[name][1](), EXAMPLE)
    macs = count_macs(model, EXAMPLE)
    return {"model": name, "method": method, "budget": budget, "seed": seed,
            "widths": widths_of(name, model), "params": count_params(model), "macs": macs,
            "macs_fraction": macs / full, "accuracy": accuracy(model, s.test),
            "seconds": seconds, **extra}


def run_archlearn(name, method, budget, seed, s, epochs) -> dict:
    with seeded(seed):
        model = MODELS[name][1]()
    batches = loader(s, seed)
    start = time.perf_counter()
    options = {"cost": "macs"} if method != "morphnet" else {}
    learner = al.attach(model, EXAMPLE, method=method, budget={"macs": budget},
                        total_steps=epochs * len(batches), steps_per_epoch=len(batches),
                        **options)
    fit(model, batches, epochs, learner)
    small = learner.shrink()
    seconds = time.perf_counter() - start
    report = learner.architecture()["budget"]
    return row(name, method, budget, seed, small, s, seconds, controller=report["controller"])


def run_tp(name, method, budget, seed, s, dense_half, half_seconds, epochs) -> dict:
    start = time.perf_counter()
    full = count_macs(dense_half, EXAMPLE)
    grads = None
    if method == "tp-taylor":
        x, y = s.train.tensors
        pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:1024]
        grads = taylor_grads(dense_half, (x[pick], y[pick]))
    model, ratio = prune_to(dense_half, EXAMPLE, budget * full,
                            "taylor" if grads is not None else "l1", grads,
                            global_pruning=True, size=lambda m: count_macs(m, EXAMPLE))
    pruned_accuracy = accuracy(model, s.valid)
    fit(model, loader(s, seed + 1), epochs - epochs // 2)
    seconds = half_seconds + time.perf_counter() - start
    return row(name, method, budget, seed, model, s, seconds, pruning_ratio=ratio,
               valid_accuracy_before_fine_tuning=pruned_accuracy)


def scaled_widths(cost, sizes: list[int], shape: list[float], budget: float) -> list[int]:
    """Widths ``ceil(k * shape_i * size_i)`` with the largest ``k`` whose MACs fit the budget."""
    def widths(k):
        return [max(1, min(n, math.ceil(k * r * n))) for r, n in zip(shape, sizes)]

    def macs(k):
        alive = [torch.cat([torch.ones(w), torch.zeros(n - w)]) for w, n in
                 zip(widths(k), sizes)]
        return cost.of(alive)

    lo, hi = 0.0, 1.0 / min(shape)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if macs(mid) <= budget * cost.full else (lo, mid)
    return widths(lo)


def run_optuna(name, budget, seed, s, epochs, trials) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    fresh = MODELS[name][1]()
    learner = al.attach(fresh, EXAMPLE, total_steps=1)
    with learner.hooks.suspended():
        cost = build_cost(fresh, learner.groups, learner.inputs, "macs")
    sizes = [g.size for g in learner.groups]
    trial_epochs = max(epochs // 4, 2)
    scores: dict[tuple, float] = {}

    def objective(trial) -> float:
        shape = [trial.suggest_float(f"g{i}", 0.05, 1.0) for i in range(len(sizes))]
        widths = tuple(scaled_widths(cost, sizes, shape, budget))
        if widths not in scores:
            with seeded(seed):
                model = build(name, list(widths))
            fit(model, loader(s, seed), trial_epochs)
            scores[widths] = accuracy(model, s.valid)
        return scores[widths]

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = max(scores, key=scores.get)
    with seeded(seed):
        model = build(name, list(best))
    fit(model, loader(s, seed), epochs)
    seconds = time.perf_counter() - start
    return row(name, "optuna", budget, seed, model, s, seconds, trials=trials,
               trial_epochs=trial_epochs, valid_accuracy=scores[best])


def run_current(part: dict | None) -> bool:
    """Whether a provenance part still stands for today's code: it recorded its source files,
    none has changed since, and it was not written from a dirty tree without ``--allow-dirty``."""
    if not part:
        return False
    sources, git = part.get("sources") or {}, part.get("git") or {}
    if not sources.get("files") or (git.get("dirty") and not part.get("allow_dirty")):
        return False
    return not changed_sources(sources["files"], ROOT, whole_package=sources.get("scope") != LOADED)


class Rows:
    """The rows of a resumable results file, each tied to the run (provenance part) that made it.

    ``current`` holds the keys of rows that today's code already made; any other row is kept
    (stale) until this run makes it again, then replaced. ``provenance(block)`` joins the parts of
    the runs whose rows remain with this run's ``block``, so no part outlives its rows.

    >>> rows = Rows({}, lambda r: r["k"])
    >>> rows.add({"k": 1, "model": "lenet5", "v": 0}); rows.add({"k": 1, "model": "lenet5", "v": 2})
    >>> [r["v"] for r in rows.rows], 1 in rows.current
    ([2], True)
    """

    def __init__(self, done: dict, key) -> None:
        self.key, self.run = key, source_record()["run"]
        block = done.get("provenance") or {}
        parts = block.get("parts") or ([block] if block else [])
        self.parts = {(p.get("sources") or {}).get("run"): p for p in parts}
        self.legacy = [p for p in parts if not (p.get("sources") or {}).get("run")]
        self.rows = [r for r in done.get("rows", [])
                     if r.get("arch", _LEGACY_ARCH.get(r["model"])) == MODELS[r["model"]][0]]
        self.current = {key(r) for r in self.rows if run_current(self.parts.get(r.get("run")))}

    def add(self, r: dict) -> None:
        r = {**r, "arch": MODELS[r["model"]][0], "run": self.run}
        self.rows = [x for x in self.rows if self.key(x) != self.key(r)] + [r]
        self.current.add(self.key(r))

    def provenance(self, block: dict) -> dict:
        runs = {r.get("run") for r in self.rows}
        kept = [p for run, p in self.parts.items() if run in runs and run != self.run]
        legacy = self.legacy if None in runs else []
        return merged(*legacy, *kept, block)

    def commands(self, block: dict) -> list[str]:
        parts = self.provenance(block)["parts"]
        return list(dict.fromkeys(p["command"] for p in parts if p.get("command")))


def key(r: dict) -> tuple:
    return (r["model"], r["method"], r["budget"], r["seed"])


def train(seeds: int, epochs: int, trials: int, only: list[str], out: Path,
          methods: tuple[str, ...] = ("baseline", *ARCHLEARN, *PEERS),
          budgets: tuple[float, ...] = BUDGETS) -> None:
    """Train every row of ``only`` models (all when empty), ``methods`` and ``budgets`` not yet
    in the file."""
    s = splits()
    path = out / TRAIN_JSON
    done = _read(path)
    table = Rows(done if done.get("epochs") == epochs else {}, key)
    have = table.current
    command = " ".join(["python -m benchmarks.budgets", *sys.argv[1:]])

    def save():
        block = provenance(command, s, seeds=seeds, epochs=epochs, trials=trials,
                           protocol=_protocol())
        write_json(path, {"provenance": table.provenance(block), "epochs": epochs,
                          "commands": table.commands(block), "rows": table.rows})

    def add(r):
        table.add(r)
        save()
        print(f"{r['model']:7} {r['method']:10} {r['budget'] or '-':>5} seed {r['seed']}: "
              f"{r['widths']} macs {r['macs_fraction']:.3f} acc {r['accuracy']:.4f} "
              f"{r['seconds']:.0f}s", flush=True)

    for seed in range(seeds):
        for name in [n for n in MODELS if not only or n in only]:
            needs_dense = any((name, m, b, seed) not in have for m in ("tp-l1", "tp-taylor")
                              if m in methods for b in budgets) or (
                "baseline" in methods and (name, "baseline", None, seed) not in have)
            if needs_dense:
                with seeded(seed):
                    model = MODELS[name][1]()
                start = time.perf_counter()
                snapshot: dict[str, Any] = {}

                def keep_half(epoch, model=model, snapshot=snapshot, start=start):
                    if epoch == epochs // 2:  # the dense half-run Torch-Pruning starts from
                        snapshot["model"] = copy.deepcopy(model)
                        snapshot["seconds"] = time.perf_counter() - start

                fit(model, loader(s, seed), epochs, on_epoch=keep_half)
                half, half_seconds = snapshot["model"], snapshot["seconds"]
                if (name, "baseline", None, seed) not in have:
                    add(row(name, "baseline", None, seed, model, s,
                            time.perf_counter() - start))
            for budget in budgets:
                for method in [m for m in ARCHLEARN if m in methods]:
                    if (name, method, budget, seed) not in have:
                        add(run_archlearn(name, method, budget, seed, s, epochs))
                for method in [m for m in ("tp-l1", "tp-taylor") if m in methods]:
                    if (name, method, budget, seed) not in have:
                        add(run_tp(name, method, budget, seed, s, half, half_seconds, epochs))
                if "optuna" in methods and (name, "optuna", budget, seed) not in have:
                    add(run_optuna(name, budget, seed, s, epochs, trials))
    save()
    plots(out)


def merge(sources: list[Path], out: Path) -> None:
    """Join the ``train`` files of runs made in parallel (other ``--out`` folders) into ``out``:
    the union of their rows (a row already in ``out`` or an earlier source is kept), commands."""
    path = out / TRAIN_JSON
    files = [d for d in (_read(path), *(_read(src / TRAIN_JSON) for src in sources)) if d]
    epochs = {d["epochs"] for d in files}
    if len(epochs) != 1:
        raise SystemExit(f"cannot merge runs of different epochs: {sorted(epochs)}")
    rows: dict[tuple, dict] = {}
    commands: list[str] = []
    for d in files:
        for r in d["rows"]:
            rows.setdefault(key(r), r)
        commands += [c for c in d.get("commands", [d["provenance"]["command"]])
                     if c not in commands]
    # every run's provenance, as parts (the last one's fields stand for the file on the page)
    joined = merged(*(d.get("provenance") for d in files))
    write_json(path, {**files[-1], "provenance": joined, "commands": commands,
                      "rows": list(rows.values())})
    plots(out)


# --- latency ------------------------------------------------------------------------------

def latency(out: Path, rounds: int) -> None:
    trained = _read(out / TRAIN_JSON)
    if not trained:
        raise SystemExit(f"run `python -m benchmarks.budgets train` first ({out / TRAIN_JSON})")
    rows = trained["rows"]
    timed = []
    for name in MODELS:
        for seed in sorted({r["seed"] for r in rows if r["model"] == name}):
            these = [r for r in rows if r["model"] == name and r["seed"] == seed]
            nets = {_label(r): build(name, r["widths"]) for r in these}
            for batch in (1, 256):
                x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
                result = compare_latency(nets, x, rounds=rounds)
                base = result[_label({"method": "baseline", "budget": None})]["median_ms"]
                for r in these:
                    t = result[_label(r)]
                    timed.append({**{k: r[k] for k in ("model", "method", "budget", "seed")},
                                  "batch": batch, **t, "speedup": base / t["median_ms"]})
                print(f"{name} seed {seed} batch {batch}: timed {len(these)} models", flush=True)
    command = " ".join(["python -m benchmarks.budgets", *sys.argv[1:]])
    write_json(out / LATENCY_JSON, {"provenance": provenance(command, splits(), rounds=rounds,
                                                             threads=1), "rows": timed})
    plots(out)


def _label(r: dict) -> str:
    return r["method"] if r.get("budget") is None else f"{r['method']}@{r['budget']}"


# --- sweep: budgets hit whatever the number of epochs -------------------------------------

def sweep(seeds: int, epochs_list: list[int], out: Path, only: list[str]) -> None:
    s = splits()
    path = out / SWEEP_JSON
    table = Rows(_read(path), lambda r: (r["model"], r["kind"], r["budget"], r["epochs"],
                                         r["seed"]))
    have = table.current
    command = " ".join(["python -m benchmarks.budgets", *sys.argv[1:]])
    for seed in range(seeds):
        for epochs in epochs_list:
            for name in [n for n in MODELS if not only or n in only]:
                cases = [("macs", b) for b in BUDGETS] + [("params", 0.25)]
                if name == "lenet5":
                    cases.append(("params", 40_000))
                for kind, budget in cases:
                    if (name, kind, budget, epochs, seed) in have:
                        continue
                    with seeded(seed):
                        model = MODELS[name][1]()
                    batches = loader(s, seed)
                    learner = al.attach(model, EXAMPLE, budget={kind: budget}, cost=kind,
                                        total_steps=epochs * len(batches),
                                        steps_per_epoch=len(batches))
                    fit(model, batches, epochs, learner)
                    arch = learner.architecture()
                    report = arch["budget"]
                    table.add({"model": name, "kind": kind, "budget": budget,
                                 "epochs": epochs, "seed": seed,
                                 "target": report["target"], "reached": arch[kind],
                                 "ratio": arch[kind] / report["target"],
                                 "controller_ratio": report["controller"] * report["full"]
                                 / report["target"],
                                 "widths": [layer["width"] for layer in arch["layers"]],
                                 "accuracy": accuracy(learner.shrink(), s.test)})
                    block = provenance(command, s, seeds=seeds)
                    write_json(path, {"provenance": table.provenance(block),
                                      "commands": table.commands(block), "rows": table.rows})
                    print(f"{name} {kind}={budget} {epochs} epochs seed {seed}: "
                          f"{table.rows[-1]['ratio']:.3f} of the budget", flush=True)


# --- summaries and plots ------------------------------------------------------------------

def means(rows: list[dict], keys=("params", "macs", "macs_fraction", "accuracy", "seconds")):
    """Mean (and standard deviation of accuracy) per (model, method, budget)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"], r["budget"]), []).append(r)
    out = {}
    for k, g in groups.items():
        m = {f: statistics.fmean(r[f] for r in g) for f in keys}
        m["accuracy_std"] = statistics.stdev([r["accuracy"] for r in g]) if len(g) > 1 else 0.0
        m["seeds"] = len(g)
        m["widths"] = g[0].get("widths")
        out[k] = m
    return out


def plots(out: Path) -> None:
    """Pareto plots per model: accuracy against MACs and against latency (batch 256)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return
    trained = _read(out / TRAIN_JSON)
    timed = _read(out / LATENCY_JSON)
    acc = means(trained["rows"])
    lat: dict[tuple, list[float]] = {}
    for r in timed.get("rows", []):
        if r["batch"] == 256:
            lat.setdefault((r["model"], r["method"], r["budget"]), []).append(r["median_ms"])
    for name in MODELS:
        fig = Figure(figsize=(10, 4))
        axes = fig.subplots(1, 2)
        for method in ("baseline", *ARCHLEARN, *PEERS):
            pts = sorted((k[2] or 1.0, v) for k, v in acc.items()
                         if k[0] == name and k[1] == method)
            if not pts:
                continue
            xs = [v["macs"] for _, v in pts]
            ys = [100 * v["accuracy"] for _, v in pts]
            style = "o-" if method in ARCHLEARN else ("s--" if method != "baseline" else "k*")
            axes[0].plot(*zip(*sorted(zip(xs, ys))), style, label=method)
            ls = [statistics.fmean(lat[(name, method, b if b != 1.0 else None)])
                  for b, _ in pts if (name, method, b if b != 1.0 else None) in lat]
            if len(ls) == len(ys):
                axes[1].plot(*zip(*sorted(zip(ls, ys))), style, label=method)
        axes[0].set_xlabel("MACs per example")
        axes[1].set_xlabel("latency, batch 256, 1 thread (ms)")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_ylabel("test accuracy %")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{MODELS[name][0]} on mnist5k: accuracy against cost (mean of seeds)")
        fig.tight_layout()
        fig.savefig(out / f"budgets_{name}.png", dpi=110)


def _read(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.exists() else {}


def _protocol() -> str:
    return " ".join(" ".join(__doc__.split("\n\n")[1:3]).split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    t = sub.add_parser("train", help="train every row (resumable)")
    t.add_argument("--seeds", type=int, default=3)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--trials", type=int, default=6)
    t.add_argument("--models", nargs="*", default=[], choices=sorted(MODELS))
    t.add_argument("--methods", nargs="*", default=["baseline", *ARCHLEARN, *PEERS],
                   choices=["baseline", *ARCHLEARN, *PEERS])
    t.add_argument("--budgets", type=float, nargs="*", default=list(BUDGETS), choices=BUDGETS)
    lat = sub.add_parser("latency", help="time every trained architecture, interleaved")
    lat.add_argument("--rounds", type=int, default=30)
    sw = sub.add_parser("sweep", help="budgets hit at 10 and 30 epochs (tsrelu)")
    sw.add_argument("--seeds", type=int, default=3)
    sw.add_argument("--epochs", type=int, nargs="+", default=[10, 30])
    sw.add_argument("--models", nargs="*", default=[], choices=sorted(MODELS))
    mg = sub.add_parser("merge", help="join train files of parallel runs (other --out folders)")
    mg.add_argument("sources", type=Path, nargs="+")
    for p in (t, lat, sw, mg):
        p.add_argument("--out", type=Path, default=RESULTS)
        add_allow_dirty(p)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.step == "train":
        train(args.seeds, args.epochs, args.trials, args.models, args.out, tuple(args.methods),
              tuple(args.budgets))
    elif args.step == "merge":
        merge(args.sources, args.out)
    elif args.step == "latency":
        latency(args.out, args.rounds)
    else:
        sweep(args.seeds, args.epochs, args.out, args.models)


if __name__ == "__main__":
    main()
