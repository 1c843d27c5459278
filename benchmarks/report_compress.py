"""The docs/RESULTS.md section of ``benchmarks.compress`` (called by ``benchmarks.report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.compress import LENET_JSON, MINILM_JSON, TP
from benchmarks.report_io import NA, load, machine

RESULTS = Path(__file__).parent / "results"
EQUAL = 0.01  # a Torch-Pruning row more than 1% above archlearn's MACs is marked


def _sd(e: dict, scale: float = 1.0, digits: int = 2) -> str:
    """`` (sd)`` when the figure has more than one seed."""
    return f" ({scale * e['std']:.{digits}f})" if e["n"] > 1 else ""


def _signed(x: float, digits: int = 2) -> str:
    """``+1.25`` / ``-0.50``, and ``0.00`` rather than ``-0.00``."""
    return f"{round(x, digits) + 0.0:+.{digits}f}"


def _seeds(p: dict) -> str:
    done, planned = p["seeds"], p.get("seeds_planned", p["seeds"])
    cut = f" of {planned} planned: the run was stopped early" if done < planned else ""
    return (f"mean (sd) over {done} seeds{cut}" if done > 1
            else f"**one seed only{cut}: no spread**")


def section(folder: Path = RESULTS) -> str:
    out = ["\n## One-shot compression of trained models, no training after it\n\n"
           "`al.compress(model, calibration, budget={\"macs\": b})`: every unit scored on "
           "unlabelled calibration inputs, the budget allocated over the exact cost model, the "
           "units removed and each layer that reads them re-fitted by ridge least squares; "
           "against Torch-Pruning's one-shot importance criteria at the same MACs, neither "
           "fine-tuned (`python -m benchmarks.compress`; protocol in its docstring).\n"]
    lenet = load(LENET_JSON, folder)
    out.append(lenet_section(lenet) if lenet else
               "\n### Trained LeNet-5\n\n_Not run yet: `python -m benchmarks.compress lenet "
               "--seeds 3`._\n")
    minilm = load(MINILM_JSON, folder)
    out.append(minilm_section(minilm) if minilm else
               "\n### all-MiniLM-L6-v2\n\n_Not run yet: `python -m benchmarks.compress minilm "
               "--seeds 3`._\n")
    return "".join(out)


def lenet_section(r: dict[str, Any]) -> str:
    from benchmarks.report import setup, source, stale

    p = r["provenance"]
    lat = p["latency"]
    out = ["\n### Trained LeNet-5 (20-50-500-10) on mnist5k\n\n", stale(r, LENET_JSON),
           setup(p, epochs=f"{p['epochs']} for the dense model, none after compression")]
    out.append(
        f"Command: `{p['command']}` ({source(p, timings=True)}; torch {p['torch']}, "
        f"{machine(p)}). Data: {p['data']['split']}; {p['data']['train']:,} training / "
        f"{p['data']['valid']:,} validation / {p['data']['test']:,} test images. The dense model "
        f"of each seed: {p['epochs']} epochs (Adam 1e-3, batch 64), weights cached. Calibration: "
        f"{p['calibration']} training images per seed. *archlearn* scores the units without "
        "labels (activation energy x norm of the reading weights), *archlearn-taylor* by a "
        "Taylor score of the cross-entropy on the labelled calibration images (`loss=`, "
        "`targets=`), as Torch-Pruning's Taylor rows do. Torch-Pruning: L1 magnitude or Taylor "
        "(one backward of the cross-entropy on the labelled calibration images), *global* "
        "(least important channels of the whole net) or *uniform* (the same ratio in every "
        "layer), its ratio bisected to archlearn's reached MACs. Accuracy on the test split, "
        f"read once per model; {_seeds(p)}. Seconds: the compression alone (Torch-Pruning: one "
        f"prune at the found ratio, Taylor's backward included). Speed-up: batch "
        f"{lat['batch']}, {lat['threads']} thread, every model of a seed timed together over "
        f"{lat['rounds']} interleaved rounds, the dense model's median over the row's.\n\n")
    out.append("| MACs budget | method | seeds | architecture (seed 0) | params | MACs % of dense "
               "| accuracy % | vs dense, pt | seconds | speed-up |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n")
    first = {(row["method"], row["budget"]): row for row in r["runs"][0]["rows"]}
    for e in r["summary"]:
        key = (e["method"], e["budget"])
        budget = "dense" if e["method"] == "dense" else f"{100 * e['budget']:.0f}%"
        drop = e.get("accuracy_drop")
        vs = NA if drop is None else _signed(-100 * drop["mean"])
        macs = f"{100 * e['macs_fraction']['mean']:.1f}"
        gaps = [row["macs_vs_archlearn"] - 1 for run in r["runs"] for row in run["rows"]
                if (row["method"], row["budget"]) == key and "macs_vs_archlearn" in row]
        if gaps and max(gaps) > EQUAL:
            macs += f" (up to {100 * max(gaps):+.1f}% vs archlearn)"
        arch = first[key]["architecture"] if key in first else NA
        seconds = NA if e["method"] == "dense" else f"{e['seconds']['mean']:.2f}"
        # the dense row is the reference: its speed-up is 1 by definition, with nothing to spread
        speedup = ("1.00x (the reference)" if e["method"] == "dense"
                   else f"{e['speedup']['mean']:.2f}x{_sd(e['speedup'])}")
        out.append(f"| {budget} | {e['method']} | {e['n']} | {arch} | "
                   f"{e['params']['mean']:,.0f} | {macs} | "
                   f"{100 * e['accuracy']['mean']:.2f}{_sd(e['accuracy'], 100)} | {vs} | "
                   f"{seconds} | {speedup} |\n")
    out.append("\n" + _lenet_verdicts(r) + "\n")
    return "".join(out)


def _lenet_verdicts(r: dict[str, Any]) -> str:
    """Each archlearn row against each Torch-Pruning row, and how long it took at most."""
    summary = {(e["method"], e["budget"]): e for e in r["summary"]}
    lines = []
    for budget, rows in r["comparison"].items():
        b = float(budget)
        for method, peers in rows.items():
            ours = summary.get((method, b))
            if ours is None:
                continue
            slowest = max(row["seconds"] for run in r["runs"] for row in run["rows"]
                          if (row["method"], row["budget"]) == (method, b))
            text = [f"{100 * b:.0f}% of the MACs, {method}: "
                    f"{100 * ours['accuracy']['mean']:.2f}% "
                    f"({_signed(-100 * ours['accuracy_drop']['mean'])} pt from dense; each "
                    f"compression took at most {slowest:.1f} s)"]
            for name in TP:
                c = peers.get(name)
                if c is not None:
                    text.append(f"{_signed(100 * c['accuracy_difference'])} pt against {name} "
                                f"(better in {c['seeds_won']} of {c['seeds']} seeds)")
            lines.append("- " + "; ".join(text) + ".")
    return "\n".join(lines) + "\n"


_FIGURE_LABELS = {"cosine_test": "cosine on the test sentences", "top10_test": "top-10 on them",
                  "cosine_other": "cosine on the man pages", "top10_other": "top-10 on them"}


def _differences(comparison: dict[str, dict]) -> str:
    """archlearn minus a peer, per MiniLM figure, with the seeds archlearn won."""
    return "; ".join(f"{_FIGURE_LABELS[k]} {v['difference']:+.4f} (better in {v['seeds_won']} "
                     f"of {v['seeds']} seeds)" for k, v in comparison.items())


def minilm_section(r: dict[str, Any]) -> str:
    from benchmarks.report import setup, source, stale

    p = r["provenance"]
    d, o = p["data"], p["other"]
    lat = p["latency"]
    out = ["\n### all-MiniLM-L6-v2, its sentence embeddings kept\n\n", stale(r, MINILM_JSON),
           setup(p, epochs="none (pre-trained, compressed once)",
                 figures="figures on the test sentences")]
    out.append(
        f"Command: `{p['command']}` ({source(p, timings=True)}; torch {p['torch']}, "
        f"{machine(p)}). Budget {p['budget']} of the MACs of one {p['tokens']}-token "
        f"sentence. Calibration: {p['calibration']} sentences of the train split of "
        f"{d['name']} ({d['sizes']['train']:,} sentences), a new draw for each seed. Fidelity "
        "to the original (mean cosine of the mean-pooled embeddings; top-10: share of each "
        "sentence's 10 nearest sentences the model and the original have in common) on the "
        f"{d['sizes']['test']:,} test sentences of {d['name']} and on text of another kind: "
        f"{o['sizes']['test']:,} sentences (the hash-bucket test split) of {o['split']}. "
        "Torch-Pruning: heads and FFN neurons by L2 magnitude, the same ratio in every layer "
        "(its Hugging Face BERT example), bisected to archlearn's MACs. ridge-recipe: the "
        "training-free recipe measured in research/ANCHORS.md (0.953 / 0.533 on its own "
        "sentences), re-implemented plainly (`benchmarks/ridge_recipe.py`: K-prune scores, "
        "greedy allocation by score per MAC, float64 ridge re-fit of the attention-output and "
        "FFN-output layers, bottom-up) on the same calibration batches at archlearn's MACs. "
        "None distilled. "
        f"Latency: {lat['threads']} threads, {lat['rounds']} interleaved rounds (3 times as "
        f"many at batch 1), the original's median over the model's; {_seeds(p)}.\n\n")
    out.append("| model | heads per layer (seed 0) | FFN per layer (seed 0) | params | MACs % | "
               "cosine, test | top-10, test | cosine, man pages | top-10, man pages | seconds "
               "| speed-up 32 x 128 | speed-up 1 x 128 |\n"
               "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    first = r["runs"][0]["rows"]
    for name, e in r["summary"].items():
        row = first[name]
        out.append(
            f"| {name} | {' '.join(map(str, row['heads']))} | "
            f"{' '.join(map(str, row['ffn']))} | {e['params']['mean'] / 1e6:.2f}M | "
            f"{100 * e['macs_fraction']['mean']:.1f} | "
            f"{e['cosine_test']['mean']:.4f}{_sd(e['cosine_test'], digits=4)} | "
            f"{e['top10_test']['mean']:.3f}{_sd(e['top10_test'], digits=3)} | "
            f"{e['cosine_other']['mean']:.4f}{_sd(e['cosine_other'], digits=4)} | "
            f"{e['top10_other']['mean']:.3f}{_sd(e['top10_other'], digits=3)} | "
            f"{NA if name == 'original' else format(e['seconds']['mean'], '.1f')} | "
            f"{e['speedup_b32x128']['mean']:.2f}x | "
            f"{e['speedup_b1x128']['mean']:.2f}x |\n")
    tp = r["runs"][0]["rows"]["torch-pruning"]
    out.append(f"\narchlearn minus Torch-Pruning: {_differences(r['comparison'])}. Torch-Pruning's "
               f"MACs against archlearn's: {_signed(100 * (tp['macs_vs_archlearn'] - 1), 1)}% "
               f"(seed 0; whole heads, the same in every layer); its search for the ratio took "
               f"{tp['search_seconds']:.0f} s more.\n")
    if "comparison_recipe" in r:
        out.append("\narchlearn minus the ANCHORS.md recipe: "
                   f"{_differences(r['comparison_recipe'])}.\n")
    return "".join(out)
