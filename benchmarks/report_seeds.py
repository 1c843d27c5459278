"""Markdown sections for docs/RESULTS.md: paper 2 (the switcher) and paper 4 (diffsparse).

Numbers come only from ``benchmarks/results/switcher.json`` and
``benchmarks/results/diffsparse.json``; ``section()`` returns the Markdown.

    python -m benchmarks.report_seeds      # prints the sections
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.report_io import load, machine, missing
from benchmarks.report_methods import _pct

RESULTS = Path(__file__).parent / "results"
SWITCHER_CMD = "python -m benchmarks.switcher --seeds 3 --epochs 4 6 --jobs 2"
DIFFSPARSE_CMD = "python -m benchmarks.diffsparse --seeds 3 --epochs 30"


def _verdict(margin_pp: float) -> str:
    """The acceptance reading of a margin against magnitude pruning (mean over seeds)."""
    if margin_pp >= 0:
        return f"better, {margin_pp:+.2f} pp"
    if margin_pp >= -1:
        return f"within 1 point, {margin_pp:+.2f} pp"
    return f"**more than 1 point below**, {margin_pp:+.2f} pp"


def _row(name: str, runs: list[dict], summary: dict, arch: bool = True) -> str:
    """One table row: [architecture of seed 0,] mean non-zero weights, sparsity, accuracy."""
    nonzero = sum(r[name]["nonzero_weights"] for r in runs) / len(runs)
    sparsity = ([r[name]["weight_sparsity"] for r in runs]
                if "weight_sparsity" in runs[0][name] else None)
    shown = "-" if sparsity is None else f"{100 * sum(sparsity) / len(sparsity):.1f}"
    s = summary[name]
    # magnitude pruning keeps every layer's shape (its rows carry no architecture)
    shape = runs[0][name].get("architecture", "unstructured, dense shapes")
    first = f" {shape} |" if arch else ""
    # one seed has no spread to show (a standard deviation of 0.00 would claim one)
    sd = f"({_pct(s['accuracy_std'])})" if len(runs) > 1 else "(n=1, no sd)"
    return f"| {name} |{first} {nonzero:,.0f} | {shown} | {_pct(s['accuracy_mean'])} {sd} |\n"


def _epochs(epochs: int | dict) -> str:
    """The epochs of a run: one number, or one per task."""
    if isinstance(epochs, dict):
        return ", ".join(f"{task}: {n}" for task, n in epochs.items())
    return str(epochs)


def switcher_section(results: Path = RESULTS) -> str:
    out = ["\n# Paper 2 (Han et al., the switcher network): neurons against connections\n\n"]
    r = load("switcher.json", results)
    if r is None:
        return "".join(out) + missing(SWITCHER_CMD)
    from benchmarks.report import setup, stale

    p = r["provenance"]
    out.append(stale(r, "switcher.json"))
    out.append(setup(p))
    out.append(
        f"Command: `{p['command']}` ({_epochs(p['epochs'])} epochs, mean of {p['seeds']} seeds, "
        f"torch {p['torch']}, {machine(p)}). Data: {p['data']['split']}\n\n"
        "Protocol (the official code's schedule, `benchmarks/switcher.py`): task weights with "
        "plain SGD at lr 0.1, the switchers with their own SGD at lr 0.1, both x0.1 at 50% "
        "and 75% of the epochs; epochs alternate between the two (the MLP from its first "
        "epoch, weights first; LeNet after 4 plain epochs, switchers first). *neurons* gates "
        "units (a smaller dense model); *connections* gates single weights (a kernel per "
        "(out, in) pair for convs) and keeps the shapes, with exact zeros; *simplified* is the "
        "per-unit MLP switcher without U-Net (`meta=\"mlp\"`). Each switcher row stands beside "
        "class-blind magnitude pruning at its weight sparsity (same seed: the dense run after "
        "half the epochs, pruned to the same number of non-zero Linear/Conv weights, trained "
        "the other half with the dense schedule, zeros kept). Non-zero weights: entries of "
        "the Linear/Conv weights that are not exactly zero (biases excluded). Nothing is "
        "selected, so no validation split is needed; the test split is read once per model.\n")
    for task in r["tasks"].values():
        runs, summary = task["runs"], task["summary"]
        trained = (f" ({task['epochs']} epochs; the code trains 100)" if "epochs" in task
                   else "")
        out.append(f"\n## {task['label']}{trained}\n\n| row | architecture (seed 0) | "
                   "non-zero weights | weight sparsity % | accuracy % (std) |\n"
                   "|---|---|---|---|---|\n")
        for name in runs[0]:
            out.append(_row(name, runs, summary))
        verdicts = [f"{name}: {_verdict(s['vs_magnitude_pp'])}"
                    for name, s in summary.items() if "vs_magnitude_pp" in s]
        if verdicts:
            out.append("\nAgainst class-blind magnitude pruning at equal sparsity (mean over "
                       "seeds): " + "; ".join(verdicts) + ".\n")
        full, simple = summary.get("switcher neurons"), summary.get(
            "switcher neurons, simplified")
        if full and simple:
            out.append(
                f"\nU-Net against the simplified switcher (neurons): "
                f"{100 * (full['accuracy_mean'] - simple['accuracy_mean']):+.2f} pp accuracy, "
                f"{100 * (full['weight_sparsity_mean'] - simple['weight_sparsity_mean']):+.1f} "
                "points of weight sparsity.\n")
    return "".join(out)


def _diffsparse_experiment(title: str, e: dict) -> str:
    out = [f"\n## {title}\n\n"]
    sel = e["selection"]
    trials = ", ".join(f"lam {t['lam']:g}: {_pct(t['valid_accuracy'])}% at "
                       f"{100 * t['weight_sparsity']:.1f}% sparsity" for t in sel["trials"])
    out.append(f"Validation (1,000 of the training examples, seed 0; dense "
               f"{_pct(sel['dense_valid_accuracy'])}%): {trials}. Chosen: **lam "
               f"{sel['chosen']:g}** (the sparsest within 1 point of dense; on a tie the "
               "smallest lam).\n\n")
    runs, summary = e["runs"], e["summary"]
    out.append("| row | non-zero weights | weight sparsity % | accuracy % (std) |\n"
               "|---|---|---|---|\n")
    for name in runs[0]:
        out.append(_row(name, runs, summary, arch=False))
    out.append("\ndiffsparse against class-blind magnitude pruning at equal sparsity (mean over "
               f"seeds): {_verdict(summary['diffsparse']['vs_magnitude_pp'])}.\n")
    if e["mode"] == "cell":
        edges = [r["diffsparse"]["edges"] for r in runs]
        total = runs[0]["diffsparse"]["candidate_edges"]
        out.append("\nLearned cell (edges kept of the " + str(total) + " of the complete DAG; "
                   "read off the exact zeros by `DagCell.learned_graph()`): "
                   + "; ".join(f"seed {i}: {len(es)} edges "
                               + " ".join(f"{a}->{b}" for a, b in es)
                               for i, es in enumerate(edges)) + ".\n")
    return "".join(out)


def diffsparse_section(results: Path = RESULTS) -> str:
    out = ["\n# Paper 4 (Lee, differentiable sparsification): single weights and a DAG cell\n\n"]
    r = load("diffsparse.json", results)
    if r is None:
        return "".join(out) + missing(DIFFSPARSE_CMD)
    from benchmarks.report import setup, stale

    first = next(iter(r["experiments"].values()))["provenance"]
    out.append(stale(r, "diffsparse.json"))
    for name, e in r["experiments"].items():
        out.append(f"{name}: " + setup(e["provenance"], figures="`lam` chosen on a validation "
                                                                 "split, figures on the test "
                                                                 "split"))
    out.append(
        f"Command: `{first['command']}` ({first['epochs']} epochs, mean of {first['seeds']} "
        f"seeds, torch {first['torch']}, {machine(first)}).\n\n"
        "Protocol (`benchmarks/diffsparse.py`): the weights train with Adam (lr 1e-3, batch "
        "64), beta with the method's Adam (lr 1e-2); `lam` is chosen on a validation split "
        "(the sparsest setting within 1 point of the dense net's validation accuracy), then "
        "each seed trains on all training data and is tested once. Magnitude pruning at equal "
        "sparsity: the dense run after half the epochs, pruned class-blind to the learned "
        "row's number of non-zero Linear/Conv weights, trained the other half (fresh Adam), "
        "zeros kept.\n")
    titles = {"lenet300": "Unstructured: LeNet-300-100 on mnist5k (`mode=\"weights\"`)",
              "cell": "A DAG cell on MNIST-1D (`mode=\"cell\"`)"}
    for name, e in r["experiments"].items():
        out.append(_diffsparse_experiment(titles.get(name, name), e))
        if name == "cell":
            p = e["provenance"]
            out.append(f"\nCell: the complete DAG of {p['nodes']} nodes (every node may read every "
                       f"earlier one; node 0 reads the signal), `Conv1d(k=5) -> BN -> ReLU` "
                       f"nodes of {p['channels']} channels, the sink flattened into a Linear "
                       "(`archlearn.graphs.cell_net`). *learned cell from scratch*: the learned "
                       "edges as a fixed cell, trained anew. Data: " + p["data"]["split"] + "\n")
    return "".join(out)


def section(results: Path = RESULTS) -> str:
    return switcher_section(results) + diffsparse_section(results)


if __name__ == "__main__":
    print(section())
