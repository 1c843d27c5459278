"""One comparison: every archlearn method against the pruning peers, same data, epochs and seeds.

Tasks: LeNet-5 (20-50-500-10) and the MLP 784-300-100-10 (LeNet-300-100), both on mnist5k
(4,000 train / 1,000 test real MNIST digits). Every row gets the same epoch budget ``E`` and
Adam (lr 1e-3, batch 64, archlearn's ``Trainer``); per seed the weights are initialised from
``torch.manual_seed(seed)`` and the data order follows the same seed.

* ``dense baseline``: the unpruned net, ``E`` epochs. Its state after ``E // 2`` epochs (the same
  run, snapshot at that epoch) is the dense half-run every peer starts from.
* archlearn rows: every registered method with its default options (``train_learned``: attach,
  train ``E`` epochs, shrink, measure the shrunk model; the run supplies ``total_steps`` and
  ``steps_per_epoch``), plus ``tsrelu depth=all`` (depth gates on every layer that may become
  linear). A method that cannot gate the task's model (``slimming`` needs BatchNorm: LeNet-5 and
  LeNet-300-100 have none) runs only on the MLP task, on
  ``models.mlp(784, [300, 100], 10, batchnorm=True)`` (marked "(BN)").
* peers, from the dense half-run, pruned once, then fine-tuned ``E - E // 2`` epochs with a fresh
  Adam: Torch-Pruning structured pruning (``BasePruner``, uniform ratio per layer, no global
  pruning, final Linear ignored; as in ``benchmarks/peer_torch_pruning.py``) with L1 magnitude
  (``MagnitudeImportance(p=1)``), first-order Taylor (``TaylorImportance``, gradients of the loss
  on 1,024 training images taken just before the step) and, on the BatchNorm MLP only, BN scale
  (``BNScaleImportance``, from a dense BN half-run, without slimming's L1 sparsity training). Each
  runs at two sizes: the ratio is bisected so the pruned net lands closest to the mean parameter
  count of archlearn's ``tsrelu`` row, then of its ``tsrelu depth=all`` row, on that task (a fixed
  ratio 0.7 for a row that removed less than 10%; a size within 10% of the first is skipped). Last,
  ``torch.nn.utils.prune.global_unstructured`` L1 at 80% of all Linear/Conv weights, fine-tuned
  with the masks in place: its params are the non-zero parameters, its MACs and latency those of
  the dense model (the tensors are not physically smaller).

Latency: ``archlearn.measure`` on a batch of 256 test images, CPU, 1 thread, median of 30 runs,
on a shared, loaded machine (compare rows of one file only).

    python -m benchmarks.compare_methods --seeds 3 --epochs 10
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune as torch_prune

import archlearn as al
from archlearn import ArchlearnError, data, models
from archlearn.io import write_json
from archlearn.methods import names
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.runs import summarise, train_learned
from archlearn.structure.measure import count_params
from archlearn.train import Callback, TrainConfig, Trainer
from benchmarks.peers import prune_to, taylor_grads, tp_pruned
from benchmarks.plotting import figure, save

RESULTS = Path(__file__).parent / "results"
UNSTRUCTURED = "torch global_unstructured L1 80% + fine-tune"
TP_L1 = "torch-pruning L1 + fine-tune"
TP_TAYLOR = "torch-pruning Taylor + fine-tune"
TP_BN = "torch-pruning BN-scale + fine-tune (BN)"
FALLBACK_RATIO = 0.7
TOLERANCE = 0.02  # a peer up to 2% larger counts as "equal params" in the Pareto verdict
TARGET_ROWS = ("tsrelu", "tsrelu depth=all")

TASKS: dict[str, dict[str, Any]] = {
    "lenet5": {"label": "LeNet-5 20-50-500-10 / mnist5k", "flatten": False,
               "make": models.lenet5, "make_bn": None},
    "mlp": {"label": "MLP 784-300-100-10 / mnist5k", "flatten": True,
            "make": models.lenet300,
            "make_bn": lambda: models.mlp(784, [300, 100], 10, batchnorm=True)},
}


# a second row for a method with other options than its defaults (name, method, options)
EXTRA_ROWS = [("tsrelu depth=all", "tsrelu", {"depth": "all"})]


def archlearn_rows() -> list[tuple[str, str, dict]]:
    """(row name, method, options): every registered method with its defaults, then extras."""
    return [(name, name, {}) for name in names()] + EXTRA_ROWS


def needs_batchnorm(method: str, make, example: torch.Tensor) -> bool:
    """Whether ``method`` cannot gate the plain model (slimming needs BatchNorm)."""
    try:
        al.attach(make(), example, method=method, total_steps=1, steps_per_epoch=1)
    except ArchlearnError:
        return True
    return False


def nonzero_params(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


def record(task: str, name: str, family: str, seed: int, model: nn.Module, splits,
           seconds: float, **extra) -> dict:
    figures = summarise(model, splits.test, seconds)
    figures.pop("model")
    return {"task": task, "method": name, "family": family, "seed": seed, **figures, **extra}


# --- dense runs --------------------------------------------------------------------------------
def dense_run(make, splits, seed: int, epochs: int) -> tuple[nn.Module, dict, float, float]:
    """Train ``epochs``; returns the model, its state after ``epochs // 2`` and both timings."""
    torch.manual_seed(seed)
    model = make()
    half: dict[str, Any] = {}
    start = time.perf_counter()

    def snapshot(trainer: Trainer, rec: dict) -> None:
        if rec["epoch"] == epochs // 2:
            half["state"] = copy.deepcopy(model.state_dict())
            half["seconds"] = time.perf_counter() - start

    Trainer(model, splits.train, None, TrainConfig(epochs=epochs, seed=seed, progress=False),
            callbacks=[Callback(on_epoch=snapshot)]).fit()
    return model, half["state"], half["seconds"], time.perf_counter() - start


# --- Torch-Pruning peers -----------------------------------------------------------------------
def tp_prune_to(dense, example, target: int | None, importance: str, grad_batch,
                iterations: int = 20) -> tuple[nn.Module, float]:
    """Bisect the uniform ratio for ``target`` params, or use the fixed ratio when None."""
    grads = taylor_grads(dense, grad_batch) if importance == "taylor" else None
    if target is None:
        return tp_pruned(dense, example, FALLBACK_RATIO, importance, grads), FALLBACK_RATIO
    return prune_to(dense, example, target, importance, grads, iterations)


def unstructured(dense: nn.Module, splits, seed: int, epochs: int) -> tuple[nn.Module, float]:
    """Global L1 unstructured pruning of 80% of the Linear/Conv weights, then fine-tuning."""
    model = copy.deepcopy(dense)
    targets = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured,
                                    amount=0.8)
    pruned_accuracy = accuracy(model, splits.test)
    Trainer(model, splits.train, None,
            TrainConfig(epochs=epochs, seed=seed, progress=False)).fit()
    for module, name in targets:
        torch_prune.remove(module, name)
    return model, pruned_accuracy


def peer_targets(rows: list[dict], dense_params: int) -> list[dict]:
    """Parameter targets of the structured peers: the mean size of each row in TARGET_ROWS.

    A target within 10% of an earlier one is dropped; a row that removed less than 10% of the
    dense net gives the fixed ratio instead (``params`` None)."""
    targets: list[dict] = []
    for name in TARGET_ROWS:
        sizes = [r["params"] for r in rows if r["method"] == name]
        if not sizes:
            continue
        mean = statistics.fmean(sizes)
        if mean >= 0.9 * dense_params:
            t = {"of": name, "params": None, "label": f"ratio {FALLBACK_RATIO}",
                 "rule": f"fixed ratio {FALLBACK_RATIO} ({name} removed < 10%)"}
        else:
            t = {"of": name, "params": round(mean), "label": f"{mean / 1000:.3g}k",
                 "rule": f"bisected to the mean params of {name}"}
        close = any((t["params"] is None and u["params"] is None)
                    or (t["params"] is not None and u["params"] is not None
                        and abs(t["params"] - u["params"]) < 0.1 * u["params"])
                    for u in targets)
        if not close:
            targets.append(t)
    return targets


# --- one task ----------------------------------------------------------------------------------
def run_task(task: str, seeds: int, epochs: int) -> tuple[list[dict], dict]:
    spec = TASKS[task]
    splits = data.load("mnist5k", flatten=spec["flatten"])
    example = splits.train.tensors[0][:1]
    grad_batch = (splits.train.tensors[0][:1024], splits.train.tensors[1][:1024])
    first, rest = epochs // 2, epochs - epochs // 2
    rows: list[dict] = []
    halves: dict[tuple[int, bool], tuple[dict, float]] = {}
    makers = {False: spec["make"], True: spec["make_bn"]}

    def log(r: dict) -> None:
        print(f"[{task}] seed {r['seed']} {r['method']}: {r['architecture']} {r['params']} "
              f"params, {100 * r['accuracy']:.2f}%, {r['train_seconds']:.0f}s", flush=True)

    for seed in range(seeds):
        for bn in (False, True):
            if makers[bn] is None:
                continue
            model, state, half_s, seconds = dense_run(makers[bn], splits, seed, epochs)
            halves[(seed, bn)] = (state, half_s)
            name = "dense baseline (BN)" if bn else "dense baseline"
            rows.append(record(task, name, "baseline", seed, model, splits, seconds))
            log(rows[-1])
        for name, method, options in archlearn_rows():
            bn = needs_batchnorm(method, spec["make"], example)
            if makers[bn] is None:
                continue
            name = f"{name} (BN)" if bn else name
            torch.manual_seed(seed)
            model = makers[bn]()
            r = train_learned(model, splits, TrainConfig(epochs=epochs, seed=seed,
                                                         progress=False),
                              method=method, **options)
            r.pop("architecture_log")
            r.pop("model")
            rows.append({"task": task, "method": name, "family": "archlearn", "seed": seed,
                         "options": options, **r})
            log(rows[-1])

    dense_params = count_params(spec["make"]())
    targets = peer_targets(rows, dense_params)
    peer_setup = {"dense_params": dense_params, "targets": targets}

    peers = [(TP_L1, "l1", False), (TP_TAYLOR, "taylor", False), (TP_BN, "bn", True)]
    for seed in range(seeds):
        for base, importance, bn in peers:
            if makers[bn] is None:
                continue
            state, half_s = halves[(seed, bn)]
            dense = makers[bn]()
            dense.load_state_dict(state)
            dense_accuracy = accuracy(dense, splits.test)
            for t in targets:
                start = time.perf_counter()
                model, ratio = tp_prune_to(dense, example, t["params"], importance, grad_batch)
                pruned_accuracy = accuracy(model, splits.test)
                Trainer(model, splits.train, None,
                        TrainConfig(epochs=rest, seed=seed, progress=False)).fit()
                rows.append(record(task, f"{base} @ {t['label']}", "peer", seed, model, splits,
                                   half_s + time.perf_counter() - start, pruning_ratio=ratio,
                                   target=t, dense_accuracy=dense_accuracy,
                                   pruned_accuracy=pruned_accuracy))
                log(rows[-1])
        state, half_s = halves[(seed, False)]
        dense = spec["make"]()
        dense.load_state_dict(state)
        start = time.perf_counter()
        model, pruned_accuracy = unstructured(dense, splits, seed, rest)
        r = record(task, UNSTRUCTURED, "peer", seed, model, splits,
                   half_s + time.perf_counter() - start, pruned_accuracy=pruned_accuracy,
                   unstructured=True, dense_params=count_params(model))
        r["params"] = nonzero_params(model)
        r["architecture"] += " (80% of weights zero)"
        rows.append(r)
        log(rows[-1])
    peer_setup["first_epochs"], peer_setup["fine_tune_epochs"] = first, rest
    return rows, peer_setup


# --- summaries ---------------------------------------------------------------------------------
def means(rows: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    for (task, method), group in groups.items():
        acc = [r["accuracy"] for r in group]
        out.setdefault(task, {})[method] = {
            "family": group[0]["family"],
            "params": statistics.fmean(r["params"] for r in group),
            "macs": statistics.fmean(r["macs"] for r in group),
            "latency_ms": statistics.fmean(r["latency_ms"] for r in group),
            "accuracy": statistics.fmean(acc),
            "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "train_seconds": statistics.fmean(r["train_seconds"] for r in group),
            "architecture_seed0": group[0]["architecture"],
            "unstructured": bool(group[0].get("unstructured", False)),
            "batchnorm": "(BN)" in method,
            "seeds": len(group),
        }
    return out


def pareto(task_means: dict[str, dict], structured_only: bool, x: str = "params",
           same_model: bool = False) -> dict:
    """Each archlearn row against the best peer with equal-or-fewer ``x`` (mean figures).

    "Equal" allows a peer ``TOLERANCE`` (2%) larger: bisection lands a peer near, not exactly
    at, the archlearn row's size.

    ``structured_only`` leaves out the unstructured peer; ``same_model`` compares a row only with
    peers on the same model (with or without BatchNorm)."""
    all_peers = {k: v for k, v in task_means.items() if v["family"] == "peer"
                 and not (structured_only and v["unstructured"])}
    peers = all_peers
    front = []  # peers not dominated by another peer, by x
    for name, p in sorted(peers.items(), key=lambda kv: kv[1][x]):
        if not front or p["accuracy"] > peers[front[-1]]["accuracy"]:
            front.append(name)
    verdict: dict[str, dict] = {}
    for name, a in task_means.items():
        if a["family"] != "archlearn":
            continue
        if same_model:
            peers = {k: v for k, v in all_peers.items() if v["batchnorm"] == a["batchnorm"]}
        below = {k: p for k, p in peers.items() if p[x] <= a[x] * (1 + TOLERANCE)}
        entry: dict[str, Any] = {x: a[x], "accuracy": a["accuracy"],
                                 "accuracy_std": a["accuracy_std"]}
        if below:
            best = max(below, key=lambda k: below[k]["accuracy"])
            margin = a["accuracy"] - below[best]["accuracy"]
            entry.update({"compared_with": best, f"peer_{x}": below[best][x],
                          "peer_accuracy": below[best]["accuracy"],
                          "peer_accuracy_std": below[best]["accuracy_std"],
                          "margin_pp": 100 * margin, "on_or_above_front": margin >= 0})
        elif not peers:
            entry.update({"compared_with": None, "on_or_above_front": True,
                          "note": "no peer on this model"})
        else:
            smallest = min(peers, key=lambda k: peers[k][x])
            entry.update({"compared_with": None, "on_or_above_front": True,
                          "note": f"fewer {x} than every peer (smallest: {smallest})",
                          "margin_vs_smallest_peer_pp":
                              100 * (a["accuracy"] - peers[smallest]["accuracy"]),
                          f"smallest_peer_{x}": peers[smallest][x]})
        larger = {k: p for k, p in peers.items() if p[x] > a[x] * (1 + TOLERANCE)}
        if larger:  # context: the best of the next peers up in size
            nearest = min(p[x] for p in larger.values())
            near = {k: p for k, p in larger.items() if p[x] <= nearest * (1 + TOLERANCE)}
            up = max(near, key=lambda k: near[k]["accuracy"])
            entry.update({"next_larger_peer": up, f"next_larger_peer_{x}": near[up][x],
                          "next_larger_margin_pp": 100 * (a["accuracy"]
                                                          - near[up]["accuracy"])})
        entry["dominated_by"] = sorted(
            k for k, p in peers.items()
            if p[x] <= a[x] * (1 + TOLERANCE) and p["accuracy"] >= a["accuracy"]
            and (p[x] < a[x] or p["accuracy"] > a["accuracy"]))
        verdict[name] = entry
    winners = sorted(k for k, v in verdict.items() if v["on_or_above_front"])
    return {"x": x, "tolerance": TOLERANCE, "structured_only": structured_only,
            "same_model": same_model, "peer_front": front, "methods": verdict,
            "on_or_above_front": winners}


def verdicts(all_means: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """The Pareto verdicts of every task: by params against all peers (the headline), then
    against structured peers only, on the same model only, and by MACs and latency."""
    return {task: {"all_peers": pareto(m, structured_only=False),
                   "structured_peers": pareto(m, structured_only=True),
                   "structured_same_model": pareto(m, True, same_model=True),
                   "structured_same_model_by_macs": pareto(m, True, "macs", True),
                   "structured_same_model_by_latency": pareto(m, True, "latency_ms", True)}
            for task, m in all_means.items()}


def plot(all_means: dict[str, dict[str, dict]], path: Path) -> None:
    """Accuracy against params (log), one panel per task; the peers' front as a step line."""
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    fig, axes = figure(7 * len(all_means), 5.5, cols=len(all_means))
    axes = axes if isinstance(axes, list) else [axes]
    style = {"archlearn": dict(marker="o", color="tab:blue"),
             "peer": dict(marker="s", color="tab:red", mfc="none"),
             "unstructured": dict(marker="D", color="tab:orange", mfc="none"),
             "baseline": dict(marker="*", color="black", markersize=12)}
    for ax, (task, task_means) in zip(axes, all_means.items()):
        accs = [100 * m["accuracy"] for m in task_means.values()]
        own = [100 * m["accuracy"] for m in task_means.values() if m["family"] != "peer"]
        # peers far below every archlearn row are drawn on the floor, marked off the axis
        floor = min(max(min(accs), max(accs) - 6), min(own)) - 0.5
        off = 0
        for name, m in task_means.items():
            st = dict(style["unstructured" if m["unstructured"] else m["family"]])
            acc, label = 100 * m["accuracy"], name.replace(" + fine-tune", "")
            lift = 3
            if acc < floor:
                lift, off = -10 - 9 * off, off + 1
                st["marker"] = "v"
                acc, label = floor, f"{label} ({100 * m['accuracy']:.1f}%, off the axis)"
                ax.plot(m["params"], acc, linestyle="none", **st)
            else:
                ax.errorbar(m["params"], acc, yerr=100 * m["accuracy_std"], linestyle="none",
                            capsize=2, **st)
            ax.annotate(label, (m["params"], acc), fontsize=6.5, xytext=(4, lift),
                        textcoords="offset points", color=st["color"])
        front, best = [], -1.0
        for params, acc in sorted((m["params"], 100 * m["accuracy"])
                                  for m in task_means.values() if m["family"] == "peer"):
            if acc > best:
                front.append((params, max(acc, floor)))
                best = acc
        if front:
            xs = [x for x, _ in front] + [max(m["params"] for m in task_means.values()) * 1.3]
            ys = [y for _, y in front] + [front[-1][1]]
            ax.step(xs, ys, where="post", color="tab:red", alpha=0.35, label="peers' front")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v / 1000:g}k"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(floor - (0.25 + 0.3 * off), max(accs) + 0.4)
        ax.set_xlabel("parameters (log; unstructured peer: non-zero)")
        ax.set_ylabel("test accuracy % (mean of seeds, bar: std)")
        ax.set_title(TASKS[task]["label"])
        ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], linestyle="none", **style["archlearn"], label="archlearn"),
               Line2D([], [], linestyle="none", **style["peer"], label="peer, structured"),
               Line2D([], [], linestyle="none", **style["unstructured"],
                          label="peer, unstructured (dense tensors)"),
               Line2D([], [], linestyle="none", **style["baseline"], label="dense baseline"),
               Line2D([], [], color="tab:red", alpha=0.35, label="peers' Pareto front")]
    axes[0].legend(handles=handles, fontsize=8, loc="lower right")
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_allow_dirty(parser)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, 2 epochs")
    parser.add_argument("--out", type=Path, default=None,
                        help="result JSON (default benchmarks/results/compare_methods.json)")
    parser.add_argument("--note", default="", help="free text stored in the provenance")
    parser.add_argument("--redraw", type=Path, default=None, metavar="JSON",
                        help="only recompute the Pareto verdict and plot of an existing result "
                             "file from its means (no training)")
    args = parser.parse_args()
    if args.redraw is not None:
        payload = json.loads(args.redraw.read_text())
        payload["pareto"] = verdicts(payload["mean"])
        payload["provenance"]["verdict_recomputed_by"] = " ".join(
            ["python -m benchmarks.compare_methods", *sys.argv[1:]])
        plot(payload["mean"], args.redraw.with_name(payload["plot"]))
        write_json(args.redraw, payload)
        return
    if args.quick:
        args.seeds, args.epochs = 1, 2
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (half dense training, half fine-tuning)")
    suffix = "_quick" if args.quick else ""
    out = args.out or RESULTS / f"compare_methods{suffix}.json"
    png = out.with_name(f"compare_pareto{suffix}.png")
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows: list[dict] = []
    setups = {}
    for task in args.tasks:
        task_rows, setups[task] = run_task(task, args.seeds, args.epochs)
        rows += task_rows
    all_means = means(rows)
    verdict = verdicts(all_means)
    payload = {
        "provenance": provenance(
            " ".join(["python -m benchmarks.compare_methods", *sys.argv[1:]]),
            data.load("mnist5k"), torch_pruning=tp.__version__, seeds=args.seeds,
            epochs=args.epochs, tasks={t: TASKS[t]["label"] for t in args.tasks},
            protocol=" ".join(__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0].split()),
            note=args.note, wall_seconds=time.perf_counter() - start),
        "peer_setup": setups,
        "rows": rows,
        "mean": all_means,
        "pareto": verdict,
        "plot": png.name,
    }
    plot(all_means, png)
    write_json(out, payload)
    for task, m in all_means.items():
        print(f"\n{TASKS[task]['label']}")
        for name, f in sorted(m.items(), key=lambda kv: kv[1]["params"]):
            print(f"  {name:45s} {f['params']:9.0f} params {f['macs']:10.0f} MACs "
                  f"{100 * f['accuracy']:6.2f}% +- {100 * f['accuracy_std']:.2f} "
                  f"{f['latency_ms']:6.2f} ms")
        print(f"  on or above the peer front: {verdict[task]['all_peers']['on_or_above_front']}")


if __name__ == "__main__":
    main()
