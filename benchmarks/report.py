"""Render docs/RESULTS.md from the JSON files under benchmarks/results (no hand-typed numbers).

    python -m benchmarks.report            # write docs/RESULTS.md
    python -m benchmarks.report --status   # every section: current or stale, why, its command

A section is *stale* (marked in bold on the page) when its results file does not record the
source files it ran, when any of them differs from today's files (only the files that run
imported: an edit elsewhere leaves it current), when it was written from a tree with local
changes without ``--allow-dirty`` or its files changed while it ran, when a library it ran with
is outside its pin in pyproject.toml, or when it joins several runs but keeps one run's
provenance (a merged file is checked part by part). ``--allow-dirty`` is shown, not counted:
the hashes are of the files that run really used. ``--status`` also names the ``make bench-...``
targets that refresh each section (benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomllib  # pyright: ignore[reportMissingImports]  (3.11+: the benchmarks' venv)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from archlearn.io import atomic_write
from archlearn.provenance import LOADED, changed_sources
from benchmarks import run_all
from benchmarks.report_io import NA, load, machine, missing

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
DOC = Path(__file__).parent.parent / "docs" / "RESULTS.md"

# Every results file the page reads: (file under benchmarks/results, its section, the command
# that refreshes it). Each section marks itself stale with ``stale(payload, file)``.
SECTIONS: list[tuple[str, str, str]] = [
    ("core_demo.json", "LeNet-5 on mnist5k: the demo", "python -m benchmarks.core_lenet"),
    ("core_user_loop.json", "The same defaults in a user's own training loop",
     "python -m benchmarks.core_lenet"),
    ("core_overhead.json", "The cost of the gates",
     "python -m benchmarks.core_lenet --overhead-only"),
    ("peer_torch_pruning.json", "Torch-Pruning L1 with fine-tuning",
     "python -m benchmarks.peer_torch_pruning --seeds 3 --epochs 20 "
     "--out benchmarks/results/peer_torch_pruning.json"),
    ("budgets.json", "Matched MACs budgets",
     "python -m benchmarks.budgets train --seeds 3 --epochs 20"),
    ("budgets_latency.json", "Matched MACs budgets: latency",
     "python -m benchmarks.budgets latency"),
    ("budgets_sweep.json", "Matched MACs budgets: the sweep over epochs",
     "python -m benchmarks.budgets sweep --seeds 3"),
    ("paper/table31.json", "Paper 1, table 3.1: AL1-AL4",
     "python -m benchmarks.paper_experiments table31"),
    ("paper/svd.json", "Paper 1: SVD against AL", "python -m benchmarks.paper_experiments svd"),
    ("paper/hyper.json", "Paper 1: hyper-parameters (figure 3.2a)",
     "python -m benchmarks.paper_experiments hyper"),
    ("paper/classes.json", "Paper 1: number of classes (figure 3.2b)",
     "python -m benchmarks.paper_experiments classes"),
    ("paper/depth.json", "Paper 1: depth selection (table 3.2)",
     "python -m benchmarks.paper_experiments depth"),
    ("paper/bayesopt.json", "Paper 1: against Bayesian optimisation (Optuna TPE)",
     "python -m benchmarks.paper_experiments bayesopt"),
    ("paper/pretrained.json", "Paper 1: starting from a trained model",
     "python -m benchmarks.paper_experiments pretrained"),
    ("compare_methods.json", "One comparison: archlearn's methods against pruning peers",
     "python -m benchmarks.compare_methods --seeds 3 --epochs 10"),
    ("method_settings.json", "Each method's defaults and variants on digits",
     "python -m benchmarks.method_settings"),
    ("select_defaults.json", "Method defaults selected on validation",
     "python -m benchmarks.select_defaults"),
    ("magnitude_stier.json", "Stier et al.: magnitude pruning classes",
     "python -m benchmarks.magnitude_stier --seeds 3 --epochs 100"),
    ("structure_prediction.json", "Paper 3: predicting accuracy from structural features",
     "python -m benchmarks.structure_prediction"),
    ("genetic_search.json", "Paper 3: genetic search with a performance predictor",
     "python -m benchmarks.genetic_search"),
    ("zoo.json", "Real architectures: what is gated", "python -m benchmarks.zoo"),
    ("minilm.json", "all-MiniLM-L6-v2 shrunk and distilled",
     "python -m benchmarks.minilm fidelity --first-seed K, for K = 0, 1, 2"),
    ("minilm_latency.json", "all-MiniLM-L6-v2: CPU latency", "python -m benchmarks.minilm latency"),
    ("compress_lenet.json", "One-shot compression: trained LeNet-5",
     "python -m benchmarks.compress lenet --seeds 3"),
    ("compress_minilm.json", "One-shot compression: all-MiniLM-L6-v2",
     "python -m benchmarks.compress minilm --seeds 3"),
    ("switcher.json", "Paper 2: the switcher network",
     "python -m benchmarks.switcher --seeds 3 --epochs 4 6 --jobs 2"),
    ("diffsparse.json", "Paper 4: differentiable sparsification",
     "python -m benchmarks.diffsparse --seeds 3 --epochs 30"),
]
COMMANDS = {name: command for name, _, command in SECTIONS}
# legacy provenance keys holding a library's version (before ``versions`` was recorded)
_LEGACY_VERSIONS = {"torch": "torch", "torch_pruning": "torch-pruning",
                    "transformers": "transformers", "timm": "timm", "torchvision": "torchvision"}


def pins(root: Path = ROOT) -> dict[str, SpecifierSet]:
    """Every dependency's version specifier in ``root/pyproject.toml`` (core and extras)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = [*project.get("dependencies", []),
             *(r for extra in project.get("optional-dependencies", {}).values() for r in extra)]
    out: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name != "archlearn" and str(req.specifier):
            out[name] = out.get(name, SpecifierSet()) & req.specifier
    return out


def blocks(payload: Any) -> Iterator[dict]:
    """Every provenance block of a results file (nested ones, and each part of a merged one)."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "provenance" and isinstance(value, dict):
                yield from value.get("parts") or [value]
            else:
                yield from blocks(value)
    elif isinstance(payload, list):
        for value in payload:
            yield from blocks(value)


def _versions(p: dict) -> dict[str, str]:
    found = {lib: p[key] for key, lib in _LEGACY_VERSIONS.items() if isinstance(p.get(key), str)}
    return {**found, **(p.get("versions") or {})}


def _shown(items: list[str], most: int = 4) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most
                                      else "")


def stale_reasons(payload: dict, detail: bool = False, root: Path = ROOT) -> list[str]:
    """Why a results file no longer stands for today's code (empty: it does). ``detail`` names
    the files (for ``--status``); the page keeps a text that a later edit does not change."""
    found = list(blocks(payload))
    if not found:
        return ["no provenance recorded"]
    reasons: list[str] = []

    def add(text: str) -> None:
        if text not in reasons:
            reasons.append(text)

    spec = pins(root)
    for p in found:
        git = p.get("git") or {}
        if not git.get("commit"):
            add("no commit recorded")
        sources = p.get("sources")
        if not sources:
            add("no source hash recorded")
        # --allow-dirty: the run said so, and its source hashes (checked below) are of the files
        # it really ran, dirty or not; without it, a dirty tree means a file written before the
        # refusal existed, whose figures no commit reproduces
        if git.get("dirty") and not p.get("allow_dirty"):
            add("written from a tree with local changes"
                + (f": {_shown(git['changes'])}" if detail and git.get("changes") else ""))
        if sources and sources.get("changed_during_run"):
            add("source files changed while it ran"
                + (f": {_shown(sources['changed_during_run'])}" if detail else ""))
        if sources:
            changed = changed_sources(sources.get("files", {}), root,
                                      whole_package=sources.get("scope") != LOADED)
            if changed:
                add("its source files changed since it ran"
                    + (f": {_shown(changed)}" if detail else ""))
        for lib, version in sorted(_versions(p).items()):
            pin = spec.get(canonicalize_name(lib))
            if pin is not None and not pin.contains(version, prereleases=True):
                add(f"{lib} {version} outside its pin {pin}")
    runs = payload.get("commands") or []
    if len(runs) > 1 and "parts" not in (payload.get("provenance") or {}):
        add(f"joins the rows of {len(runs)} runs but keeps one run's provenance")
    return reasons


def notes(payload: dict, detail: bool = False) -> list[str]:
    """What a reader should know about a results file that does not make it stale: written with
    ``--allow-dirty`` from a tree with local changes (``detail`` names them)."""
    out: list[str] = []
    for p in blocks(payload):
        git = p.get("git") or {}
        if git.get("dirty") and p.get("allow_dirty"):
            text = ("written with --allow-dirty from a tree with local changes"
                    + (f": {_shown(git['changes'])}" if detail and git.get("changes") else ""))
            if text not in out:
                out.append(text)
    return out


def stale(payload: dict | None, name: str, root: Path = ROOT) -> str:
    """The bold stale mark a section shows under its heading ('' when current or not run), and
    the ``--allow-dirty`` note in italics when the file says so."""
    if payload is None:
        return ""
    reasons = stale_reasons(payload, root=root)
    out = f"**Stale: {'; '.join(reasons)}. Refresh: `{COMMANDS[name]}`.**\n\n" if reasons else ""
    if notes(payload):
        out += ("_Written with `--allow-dirty` from a tree with local changes: its source hashes "
                "are of the files it ran, which is what the stale check compares._\n\n")
    return out


def make_targets(name: str) -> str:
    """The ``make`` line of ``--status`` for the results file ``name``: the bench targets that
    write it (benchmarks/run_all.py), in order, and how to start a resumable file afresh."""
    targets = [f"bench-{t}" for t in run_all.writers(name)]
    if not targets:
        return "none (run the refresh command)"
    text = f"make {' '.join(targets)}"
    if len(targets) > 1:
        text += " (in this order, each within an hour)"
    if name in run_all.RESUMABLE:
        text += (f"; rows of benchmarks/results/{name} that today's code already made are "
                 "kept, the others made again")
    return text


def status(results: Path = RESULTS, root: Path = ROOT) -> tuple[str, int]:
    """The table of ``--status``, and how many sections are not current."""
    lines, behind = [], 0
    for name, title, command in SECTIONS:
        path = results / name
        said: list[str] = []
        if not path.exists():
            state, why = "missing", ["not run yet"]
        else:
            payload = json.loads(path.read_text())
            why = stale_reasons(payload, detail=True, root=root)
            said = notes(payload, detail=True)
            commits = sorted({(p.get("git") or {}).get("commit") or "?" for p in blocks(payload)})
            state = "stale" if why else f"current at {', '.join(c[:10] for c in commits)}"
        behind += bool(why)
        lines.append(f"{name}: {state}\n  section: {title}\n"
                     + "".join(f"  why: {w}\n" for w in why)
                     + "".join(f"  note: {n}\n" for n in said)
                     + f"  refresh: {command}\n  target: {make_targets(name)}\n")
    head = f"{len(SECTIONS) - behind} of {len(SECTIONS)} sections current\n\n"
    return head + "\n".join(lines), behind


def source(p: dict, timings: bool = False) -> str:
    """Where a results file came from: its git commit (and local changes), or that none was
    recorded (the section's stale mark says so). With ``timings``, whether the machine was
    loaded when they were taken."""
    git = p.get("git") or {}
    if not git.get("commit"):
        return "no commit recorded"
    dirty = (" + local changes" + (", --allow-dirty" if p.get("allow_dirty") else "")
             if git.get("dirty") else "")
    load = p.get("load_average_1min")
    busy = (f"; load {load:.1f} on {p.get('cpus')} CPUs: timings measured under load"
            if timings and load is not None and p.get("cpus") and load > 0.5 * p["cpus"]
            else "")
    return f"commit {git['commit'][:10]}{dirty}{busy}"


def _data_text(data: Any) -> str:
    """The data a run used, from its split record: name and the sizes of its splits."""
    if not isinstance(data, dict):
        return str(data) if data else "not recorded"
    sizes = [f"{data[k]:,} {label}" for k, label in (("train", "train"), ("valid", "validation"),
                                                      ("test", "test"))
             if isinstance(data.get(k), int) and (data[k] or k != "valid")]
    if not sizes and isinstance(data.get("sizes"), dict):
        sizes = [f"{v:,} {k}" for k, v in data["sizes"].items() if isinstance(v, int)]
    return f"{data.get('name', '?')}" + (f" ({' / '.join(sizes)})" if sizes else "")


def setup(p: dict, seeds: int | str | None = None, epochs: Any = None,
          figures: str = "figures on the test split", data: Any = None) -> str:
    """The sentence every section states, from its provenance: seeds (and so n per row),
    epochs, the data split and which split the figures are on. ``seeds`` and ``epochs``
    override what the block records (a string says it in words); one seed is "n=1", with no
    spread anywhere in the section.

    >>> for part in setup({"seeds": 3, "epochs": 20, "data": {"name": "mnist5k",
    ...         "train": 3500, "valid": 500, "test": 1000}}).strip().split("; "):
    ...     print(part)
    Setup: 3 seeds (n=3 per row unless the row says otherwise)
    20 epochs
    data mnist5k (3,500 train / 500 validation / 1,000 test)
    figures on the test split.
    >>> setup({"seed": 0, "epochs": 10, "data": "mnist5k"})[:52]
    'Setup: one seed (seed 0; n=1 per row, no spread); 10'
    """
    n = seeds if seeds is not None else p.get("seeds")
    if isinstance(n, list):
        n = len(n)
    if isinstance(n, str):
        seeds_text = n
    elif n is None or n == 1:
        first = p.get("seed", p.get("first_seed"))
        seeds_text = ("one seed (" + (f"seed {first}; " if first is not None else "")
                      + "n=1 per row, no spread)")
    else:
        seeds_text = f"{n} seeds (n={n} per row unless the row says otherwise)"
    e = epochs if epochs is not None else p.get("epochs")
    if isinstance(e, dict):
        epochs_text = ", ".join(f"{k}: {v}" for k, v in e.items()) + " epochs"
    elif isinstance(e, (list, tuple)):
        epochs_text = " and ".join(map(str, e)) + " epochs"
    elif isinstance(e, str):
        epochs_text = f"epochs {e}"
    elif e is None:
        epochs_text = "no training epochs"
    else:
        epochs_text = f"{e} epochs"
    return (f"Setup: {seeds_text}; {epochs_text}; data "
            f"{_data_text(data if data is not None else p.get('data'))}; {figures}.\n\n")


def bayesopt_section(b: dict | None) -> str:
    """Optuna TPE against AL, selected on validation only (the JSON of benchmarks/paper.py)."""
    cmd = "python -m benchmarks.paper_experiments bayesopt"
    out = ["\n## Architecture learning against Bayesian optimisation (Optuna TPE)\n\n"]
    if b is None:
        return "".join(out) + missing(cmd)
    if "summary" not in b:
        return "".join(out) + ("_Stale result (its searches selected on the test split): rerun "
                               f"`{cmd}`._\n")
    p, summ = b["provenance"], b["summary"]
    d = p["data"]
    out.append(stale(b, "paper/bayesopt.json"))
    out.append(setup(p, figures="every choice on the validation split, the test split read once "
                                "per delivered model"))
    out.append(
        f"Command: `{p['command']}` ({source(p, timings=True)}). Data: mnist5k, "
        f"{d['train']:,} training, "
        f"{d['valid']:,} validation (held out of training, stratified) and {d['test']:,} test "
        f"images. Cost = cross-entropy + {p['price_per_neuron']:g} x hidden neurons of the "
        "delivered model (the AL run's own lambda3), the paper's objective. Every selection is on "
        "the validation cost: each Optuna trial trains LeNet-5 at its widths for "
        f"{p['epochs']} epochs ({p['trials']} trials per search, TPE defaults), each AL run "
        f"trains {p['epochs']} epochs and delivers the shrunk model of its best epoch; the test "
        f"split is read once per delivered model. {p['seeds']} seeds (weights, batch order, "
        "sampler); mean (min-max). AL1 learns widths and depth (a linear fc layer is merged, "
        "which no width search can do), AL2 widths only, Optuna's own search space. *Speed-up* "
        "= Optuna's time to its best validation cost / AL's time to reach that cost (seeds where "
        f"AL reached it; clock: {p.get('clock', 'wall seconds')}).\n\n")

    def mm(s: dict, fmt: str = ".3f") -> str:
        return f"{s['mean']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"

    out.append("| delivered by | validation cost | test cost | architectures (per seed) |\n"
               "|---|---|---|---|\n")
    for name, r in summ["al"].items():
        out.append(f"| one {name} run | {mm(r['valid_cost'])} | {mm(r['test_cost'])} | "
                   f"{', '.join(r['architectures'])} |\n")
    for space, r in summ["optuna"].items():
        widths = ", ".join("-".join(str(s["optuna"][space]["best_params"][k])
                                    for k in ("conv1", "conv2", "fc")
                                    if k in s["optuna"][space]["best_params"])
                           for s in b["seeds"])
        out.append(f"| Optuna TPE, {space} widths | {mm(r['valid_cost'])} | "
                   f"{mm(r['test_cost'])} | {widths} |\n")
    out.append("\n| search | AL run | speed-up | seeds where AL reached Optuna's best | seeds "
               "where Optuna reached AL's cost |\n|---|---|---|---|---|\n")
    for space, r in summ["optuna"].items():
        for name, v in r["versus"].items():
            speed = f"{mm(v['speedup'], '.1f')}x" if v["speedup"] else "never"
            out.append(f"| TPE, {space} widths | {name} | {speed} | "
                       f"{v['al_reached_optuna_best']}/{v['seeds']} | "
                       f"{v['optuna_reached_al_cost']}/{v['seeds']} |\n")
    out.append("\n![bayesopt](../benchmarks/results/paper/bayesopt.png)\n")
    return "".join(out)


def _demo_latency(m: dict) -> tuple[str, str]:
    """Latency (median (IQR)) and speed-up cells of a demo row; a JSON written before the rows
    were timed together (interleaved, ``compare_latency``) has single-shot figures: not shown."""
    if "latency_iqr_ms" not in m:
        return STALE_TIMING, NA
    return f"{m['latency_ms']:.2f} ({m['latency_iqr_ms']:.2f})", f"{m['speedup']:.2f}x"


STALE_TIMING = "not yet measured (stale single-shot timing: rerun)"


def core_demo() -> str:
    r = load("core_demo.json", RESULTS)
    out = ["## LeNet-5 on mnist5k: the demo with default options\n"]
    if r is None:
        return "".join(out) + missing("python -m benchmarks.core_lenet")
    p = r["provenance"]
    out.append(stale(r, "core_demo.json"))
    out.append(setup(p))
    # the file records the job's command; what wrote it is the benchmark that runs the job
    made_by = (f"python -m benchmarks.core_lenet --seeds {p['seeds']} --epochs {p['epochs']}"
               if p["command"].startswith("archlearn run") else p["command"])
    job = f", the job of `{p['command']}`" if made_by != p["command"] else ""
    out.append(f"Command: `{made_by}`{job} ({source(p, timings=True)}; {p['epochs']} epochs, "
               f"{p['seeds']} seeds, "
               f"torch {p['torch']}, {machine(p)}). Data: {p['data']['split']}\n\n")
    out.append("| row | architecture (seed 0) | params | MACs | accuracy % | latency ms (IQR) | "
               "speed-up |\n|---|---|---|---|---|---|---|\n")
    for row in ("baseline", "learned", "budgeted", "from_scratch"):
        if row not in r["mean"]:
            out.append(f"| {row} | not yet measured: rerun `python -m benchmarks.core_lenet` | "
                       + " | ".join([NA] * 5) + " |\n")
            continue
        m = r["mean"][row]
        arch = r["runs"][0][row]["architecture"]
        ms, speedup = _demo_latency(m)
        out.append(f"| {row} | {arch} | {m['params']:.0f} | {m['macs']:.0f} | "
                   f"{100 * m['accuracy']:.2f} | {ms} | {speedup} |\n")
    per_seed = []
    for run in r["runs"]:
        learned, base = run["learned"], run["baseline"]
        text = (f"seed {run['seed']}: {learned['architecture']}, {learned['params']} "
                f"params, {100 * learned['accuracy']:.1f}%")
        if "budgeted" in run:
            b = run["budgeted"]["learned"]["budget"]
            text += (f"; budgeted {run['budgeted']['architecture']}, {b['kind']} "
                     f"{100 * b['reached']:.1f}% of the full model's for a budget of "
                     f"{100 * b['budget']:.0f}%, {100 * run['budgeted']['accuracy']:.1f}%")
        per_seed.append(text + f" (baseline {100 * base['accuracy']:.1f}%)")
    out.append("\nPer seed (learned): " + "; ".join(per_seed) + "\n")
    budget = p.get("budget")
    out.append("\nThe *budgeted* row is the same method with `cost` and `budget` of one kind ("
               + (f"`budget={budget}`" if budget else "not in this JSON") + "); *learned* is "
               "the paper's unweighted penalty, *from_scratch* its architecture trained again. "
               "MNIST is replaced by the bundled mnist5k (4,000 train / 1,000 test real MNIST "
               "digits): the paper's figures (99.3% baseline, AL2 40.9K at 99.07%) are on full "
               "MNIST with 60,000 training images. Latency: a batch of 256 on the CPU, 1 thread, "
               "every row of a seed timed together in interleaved rounds "
               "(`archlearn.structure.measure.compare_latency`), median (IQR) averaged over "
               "seeds; the speed-up is over the baseline of the same measurement.\n")
    out.append("\n![widths against iterations](../benchmarks/results/demo/widths.png)\n")
    return "".join(out)


def user_loop() -> str:
    r = load("core_user_loop.json", RESULTS)
    out = ["\n## The same defaults in a user's own training loop, and the cost of the gates\n"]
    if r is None:
        return "".join(out) + missing("python -m benchmarks.core_lenet")
    m = r["mean"]
    out.append(stale(r, "core_user_loop.json"))
    out.append(setup(r["provenance"]))
    out.append(f"Command: `{r['provenance']['command']}` "
               f"({source(r['provenance'], timings=True)}).\n\n")
    out.append("| loop | mean params | mean accuracy % | seconds per epoch (median) |\n")
    out.append("|---|---|---|---|\n")
    plain_s = sum(x["epoch_seconds"] for x in r["plain"]) / len(r["plain"])
    gated_s = sum(x["epoch_seconds"] for x in r["gated"]) / len(r["gated"])
    plain_p = r["plain"][0]["params"]
    out.append(f"| plain | {plain_p} | {100 * m['plain_accuracy']:.2f} | {plain_s:.2f} |\n")
    out.append(f"| with archlearn | {m['gated_params']:.0f} | {100 * m['gated_accuracy']:.2f} "
               f"| {gated_s:.2f} |\n")
    o = load("core_overhead.json", RESULTS)
    if o is None:
        return "".join(out) + missing("python -m benchmarks.core_lenet --overhead-only")
    mark = stale(o, "core_overhead.json")
    if mark:  # a paragraph of its own under the table
        out.append("\n" + mark.rstrip("\n") + "\n")
    out.append(f"\nCost of the gates, same loop, epochs interleaved: {o['gated_seconds']:.2f} s "
               f"against {o['plain_seconds']:.2f} s per epoch (median of {o['epochs']}, "
               f"{o['threads']} thread{'' if o['threads'] == 1 else 's'}; `{o['command']}`): "
               f"**{o['ratio']:.2f}x**.\n")
    return "".join(out)


def peers() -> str:
    r = load("peer_torch_pruning.json", RESULTS)
    out = ["\n## Torch-Pruning L1 with fine-tuning, same data and epochs\n"]
    if r is None:
        return "".join(out) + missing("python -m benchmarks.peer_torch_pruning")
    out.append(stale(r, "peer_torch_pruning.json"))
    out.append(setup(r["provenance"]))
    out.append(f"Command: `{r['provenance'].get('command', '')}` ({source(r['provenance'])}).\n\n")
    out.append("| method | target | mean params | mean accuracy % |\n|---|---|---|---|\n")
    groups: dict[tuple, list] = {}
    for row in r["rows"]:
        groups.setdefault((row["method"], row.get("target")), []).append(row)
    for (method, target), rows in groups.items():
        params = sum(x["params"] for x in rows) / len(rows)
        acc = sum(x["accuracy"] for x in rows) / len(rows)
        out.append(f"| {method} | {target or NA} | {params:.0f} | {100 * acc:.2f} |\n")
    return "".join(out)


def _paper(name: str) -> dict | None:
    return load(f"paper/{name}.json", RESULTS)


def paper_section() -> str:
    cmd = "python -m benchmarks.paper_experiments"
    out = ["\n# Paper 1 (Srinivas & Babu): every experiment on mnist5k\n\n"
           "MNIST is replaced by the bundled mnist5k (4,000 training images instead of 60,000), "
           "so accuracies sit about one point below the paper's (every table below is mnist5k). "
           "With the full MNIST IDX files, each command below runs on them with `--data PATH` "
           "(results in benchmarks/results/paper-mnist/); `archlearn run lenet-mnist "
           "--data-path PATH` does the same for the demo.\n"]
    t = _paper("table31")
    out.append("\n## Table 3.1: AL1-AL4\n\n")
    if t is None:
        out.append(missing(f"{cmd} table31"))
    else:
        p = t["provenance"]
        out.append(stale(t, "paper/table31.json"))
        out.append(setup(p))
        out.append(f"Command: `{p['command']}` ({source(p)}; mean of {p['seeds']} seeds).\n\n")
        out.append("| setting | lambda3 | depth on fc | architecture (seed 0) | params | acc % "
                   "| from scratch % | paper arch | paper AL % | paper scratch % |\n")
        out.append("|---|---|---|---|---|---|---|---|---|---|\n")
        for name, rows in t["rows"].items():
            m = t["mean"][name]
            setting = t["provenance"]["settings"].get(name, {})
            paper_arch, paper_acc, paper_scratch = t["paper"][name]
            scratch = f"{100 * m['scratch_accuracy']:.2f}" if "scratch_accuracy" in m else NA
            k = f"{setting['k']} lambda1" if setting else NA
            depth = "yes" if setting.get("depth") == "all" else ("no" if setting else NA)
            out.append(f"| {name} | {k} | {depth} | {rows[0]['architecture']} | "
                       f"{m['params']:.0f} | {100 * m['accuracy']:.2f} | {scratch} | "
                       f"{paper_arch} | {paper_acc} | {paper_scratch or NA} |\n")
    s = _paper("svd")
    out.append("\n## SVD of the 800x500 layer against AL\n\n")
    if s is None:
        out.append(missing(f"{cmd} svd"))
    else:
        out.append(stale(s, "paper/svd.json"))
        out.append(setup(s["provenance"]))
        out.append(f"Command: `{s['provenance']['command']}` ({source(s['provenance'])}; SVD "
                   "without fine-tuning, as in the paper).\n\n"
                   "| model | params | acc % |\n|---|---|---|\n")
        for row in s["rows"]:
            out.append(f"| {row['model']} | {row['params']:.0f} | "
                       f"{100 * row['accuracy']:.2f} |\n")
        out.append("\nPaper: " + "; ".join(f"{a} {b} {c}%" for a, b, c in s["paper"]) + "\n")
    h = _paper("hyper")
    out.append("\n## Hyper-parameters (figure 3.2a)\n\n")
    if h is None:
        out.append(missing(f"{cmd} hyper"))
    else:
        out.append(stale(h, "paper/hyper.json"))
        out.append(setup(h["provenance"]))
        out.append(f"Command: `{h['provenance']['command']}` ({source(h['provenance'])}).\n\n"
                   "| setting | architecture | params | acc % |\n"
                   "|---|---|---|---|\n")
        for label, run in h["runs"].items():
            out.append(f"| {label} | {run['architecture']} | {run['params']} | "
                       f"{100 * run['accuracy']:.2f} |\n")
        out.append("\n![hyper-parameters](../benchmarks/results/paper/hyperparameters.png)\n")
    c = _paper("classes")
    out.append("\n## Number of classes (figure 3.2b)\n\n")
    if c is None:
        out.append(missing(f"{cmd} classes"))
    else:
        out.append(stale(c, "paper/classes.json"))
        out.append(setup(c["provenance"]))
        out.append(f"Command: `{c['provenance']['command']}` ({source(c['provenance'])}). "
                   "Spearman correlation with the number of classes: "
                   f"fc units {c['spearman_fc_neurons']:.2f}, error "
                   f"{c['spearman_error']:.2f} (1.0 = perfectly monotonic).\n\n"
                   "| classes | widths | error % |\n|---|---|---|\n")
        for row in c["rows"]:
            out.append(f"| {row['classes']} | {'-'.join(map(str, row['widths']))} | "
                       f"{100 * row['error']:.2f} |\n")
        out.append("\n![classes](../benchmarks/results/paper/classes.png)\n")
    d = _paper("depth")
    out.append("\n## Depth selection (table 3.2)\n\n")
    if d is None:
        out.append(missing(f"{cmd} depth"))
    else:
        out.append(stale(d, "paper/depth.json"))
        out.append(setup(d["provenance"]))
        out.append(f"Command: `{d['provenance']['command']}` ({source(d['provenance'])}). The "
                   "learned depth counts the weight layers of the "
                   "shrunk model (merged layers are gone for real).\n\n"
                   "| initial depth | learned depth | architecture | error % | paper depth | "
                   "paper architecture | paper error % |\n|---|---|---|---|---|---|---|\n")
        for row, ref in zip(d["rows"], d["paper"]):
            out.append(f"| {row['initial_depth']} | {row['learned_depth']} | "
                       f"{row['architecture']} | {100 * row['error']:.2f} | {ref[1]} | {ref[2]} "
                       f"| {ref[3]} |\n")
    out.append(bayesopt_section(_paper("bayesopt")))
    pre = _paper("pretrained")
    out.append("\n## Starting from a trained model (the CaffeNet case study, scaled down)\n\n")
    if pre is None:
        out.append(missing(f"{cmd} pretrained"))
    else:
        out.append(stale(pre, "paper/pretrained.json"))
        out.append(setup(pre["provenance"]))
        out.append(f"Command: `{pre['provenance']['command']}` ({source(pre['provenance'])}; "
                   "a trained LeNet-5, then "
                   f"{pre['provenance']['finetune_epochs']} epochs with gates).\n\n"
                   "| variant | architecture | params | compression | acc % |\n"
                   "|---|---|---|---|---|\n")
        for row in pre["rows"]:
            out.append(f"| {row['variant']} | {row['architecture']} | {row['params']} | "
                       f"{100 * row['compression']:.0f}% | {100 * row['accuracy']:.2f} |\n")
    return "".join(out)


def _pm(sem: float | None) -> str:
    """`` +- sem`` when the results file has a standard error, else nothing."""
    return "" if sem is None or sem != sem else f" +- {sem:.3f}"


def structure_section() -> str:
    out = ["\n# Paper 3 (Stier et al.): structure, prediction and search\n"]
    sp = load("structure_prediction.json", RESULTS)
    out.append("\n## Predicting accuracy from the 23 structural features\n\n")
    if sp is None:
        out.append(missing("python -m benchmarks.structure_prediction"))
    else:
        b = sp["provenance"]["budget"]
        holdouts = [m["r2_holdout"] for r in sp["cells"].values() for m in r["r2"].values()]
        held_out = -(-2 * b["graphs_per_prior"] // 10)
        schedule = ("a one-cycle learning rate (10% warm-up, cosine to ~0)"
                    if b.get("anneal") else "a constant learning rate")
        out.append(stale(sp, "structure_prediction.json"))
        out.append(setup(sp["provenance"], seeds=f"{b['repeats']} training seeds per graph, "
                         f"accuracies averaged (n={2 * b['graphs_per_prior']} graphs per row)",
                         epochs=b["epochs"], data=f"{b['strings']:,} Reber strings per graph "
                         f"(tested on {b['test_strings']:,})",
                         figures="R^2 of held-out graphs (5-fold cross-validation)"))
        out.append(f"Command: `{sp['provenance']['command']}` "
                   f"({source(sp['provenance'], timings=True)}). "
                   "Budget (scaled for 2 cores; the "
                   "thesis used 200 graphs per cell, 15 epochs on 18,750 strings): "
                   f"{2 * b['graphs_per_prior']} random-prior recurrent nets per cell type "
                   f"(Watts-Strogatz and Barabasi-Albert, {b['nodes'][0]}-{b['nodes'][1]} nodes), "
                   f"each trained {b['repeats']}x (accuracies averaged) for {b['epochs']} epochs "
                   f"on {b['strings']} Reber strings (tested on {b['test_strings']}) with Adam "
                   f"and {schedule}; {2 * b['ffn_graphs_per_prior']} feed-forward nets on "
                   f"mnist5k for {b['ffn_epochs']} epochs. R^2 on held-out graphs: 5-fold "
                   "cross-validation, pooled out-of-fold predictions, mean of 5 shuffles (the "
                   f"paper's single 90/10 split scores {held_out} graphs and swings from "
                   f"{min(holdouts):.1f} to {max(holdouts):.1f} here; it is in the JSON as "
                   "`r2_holdout`). Best regressor >= 0.6 (the target) on: "
                   f"{', '.join(sp['target']['met_by']) or 'none'}. "
                   f"{sp['seconds'] / 60:.0f} min wall, {sp.get('cpu_seconds', 0) / 60:.0f} min "
                   "CPU (cell types in parallel processes).\n\n| cell | BayesianRidge | "
                   "RandomForest | AdaBoost | thesis (BR/RF/Ada) | accuracy range | seed std of "
                   "one run |\n|---|---|---|---|---|---|---|\n")
        for cell, r in sp["cells"].items():
            scores = " | ".join(f"{r['r2'][m]['r2_cv_pooled']:.2f}"
                                for m in ("bayesian_ridge", "random_forest", "adaboost"))
            thesis = sp["thesis_r2"].get(cell)
            ref = "/".join(f"{v:.2f}" for v in thesis.values()) if thesis else NA
            acc = r["accuracy"]
            noise = r.get("seed_std_single_run")
            out.append(f"| {cell} | {scores} | {ref} | {acc['min']:.2f}-{acc['max']:.2f} | "
                       f"{NA if noise is None else f'{noise:.3f}'} |\n")
    gs = load("genetic_search.json", RESULTS)
    out.append("\n## Genetic search with a performance predictor\n\n")
    if gs is None:
        out.append(missing("python -m benchmarks.genetic_search"))
    else:
        prov = gs["provenance"]
        budget = prov["budget"]
        seeds = len(prov["seeds"])
        training = "; ".join(
            f"{n}: {d['training']['epochs']} epochs at lr {d['training']['lr']:g}"
            + (", one-cycle" if d["training"].get("anneal") else "")
            for n, d in gs["datasets"].items())
        out.append(stale(gs, "genetic_search.json"))
        out.append(setup(prov, seeds=seeds, epochs={n: d["training"]["epochs"]
                                                   for n, d in gs["datasets"].items()},
                         data=", ".join(gs["datasets"]),
                         figures="fitness on a validation split held out of training, the "
                                 "best genome retrained and tested on the test split"))
        out.append(f"Command: `{prov['command']}` ({source(prov, timings=True)}). "
                   f"{budget['budget']} trained "
                   "networks per "
                   f"search ({training}), population {budget['population']}, "
                   f"{budget['offspring']} offspring per generation, the predictor screening "
                   f"{budget['screen']}x as many; at most {budget['max_nodes']} hidden units. "
                   "Fitness is validation accuracy (held out of training); each search's best "
                   f"genome is retrained {budget['test_repeats']}x on all training data and "
                   f"scored on test. Mean over {seeds} seeds (+- standard error where the results "
                   "file records it); *seeds won* "
                   "compares ga+predictor with random search of the same seed (both start "
                   "from the same random population).\n\n| data | search | best validation | "
                   "test of best | mean fitness of trained nets | seeds won vs random "
                   "(valid / test) |\n|---|---|---|---|---|---|\n")
        for name, d in gs["datasets"].items():
            acc = d["acceptance"]
            for search, r in d["summary"].items():
                if search != "ga+predictor":
                    won = NA
                elif "seeds_won_valid" in acc:
                    won = f"{acc['seeds_won_valid']}/{seeds} / {acc['seeds_won_test']}/{seeds}"
                else:
                    won = "not in this (stale) JSON: rerun"
                out.append(f"| {name} | {search} | {r['best_fitness_mean']:.3f}"
                           f"{_pm(r.get('best_fitness_sem'))} | "
                           f"{r['best_test_accuracy_mean']:.3f}"
                           f"{_pm(r.get('best_test_accuracy_sem'))} | "
                           f"{r['mean_fitness_trained']:.3f} | {won} |\n")
        for name in gs["datasets"]:
            out.append(f"\n![{name}](../benchmarks/results/genetic_search_{name}.png)\n")
    return "".join(out)


def render() -> str:
    """The whole of docs/RESULTS.md, from the JSON files."""
    text = ("# Results\n\nEvery figure below is read from `benchmarks/results/*.json`, written "
            "by the command named in its section; `make results` regenerates this page, "
            "`make results-status` lists which sections are current and the `make bench-...` "
            "target (each under an hour on 2 cores) that refreshes each, and `make bench` "
            "reruns everything.\n\n")
    from benchmarks import (
        report_budgets,
        report_compress,
        report_methods,
        report_minilm,
        report_seeds,
        report_zoo,
    )

    text += core_demo() + user_loop() + peers() + report_budgets.section() + paper_section()
    text += "\n" + report_methods.section() + structure_section() + report_zoo.section()
    text += report_minilm.section() + report_compress.section() + report_seeds.section()
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--status", action="store_true",
                        help="list every section: current or stale, why, and its command")
    args = parser.parse_args(argv)
    if args.status:
        print(status()[0], end="")
        return
    write_text = atomic_write(DOC, render())
    print(f"wrote {write_text}")


if __name__ == "__main__":
    main()
