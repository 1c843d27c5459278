"""Render docs/RESULTS.md from the JSON files under benchmarks/results (no hand-typed numbers).

    python -m benchmarks.report
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DOC = Path(__file__).parent.parent / "docs" / "RESULTS.md"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _missing(command: str) -> str:
    return f"_Not run yet: `{command}`._\n"


def core_demo() -> str:
    r = _load("core_demo.json")
    out = ["## LeNet-5 on mnist5k: the demo with default options\n"]
    if r is None:
        return "".join(out) + _missing("python -m benchmarks.core_lenet")
    p = r["provenance"]
    out.append(f"Command: `{p['command']}` ({p['epochs']} epochs, {p['seeds']} seeds, "
               f"torch {p['torch']}, {p['machine']}). Data: {p['data']['split']}\n\n")
    out.append("| row | architecture (seed 0) | params | MACs | accuracy % | latency ms |\n")
    out.append("|---|---|---|---|---|---|\n")
    for row in ("baseline", "learned", "from_scratch"):
        m = r["mean"][row]
        arch = r["runs"][0][row]["architecture"]
        out.append(f"| {row} | {arch} | {m['params']:.0f} | {m['macs']:.0f} | "
                   f"{100 * m['accuracy']:.2f} | {m['latency_ms']:.2f} |\n")
    per_seed = []
    for run in r["runs"]:
        learned, base = run["learned"], run["baseline"]
        per_seed.append(f"seed {run['seed']}: {learned['architecture']}, {learned['params']} "
                        f"params, {100 * learned['accuracy']:.1f}% "
                        f"(baseline {100 * base['accuracy']:.1f}%)")
    out.append("\nPer seed (learned): " + "; ".join(per_seed) + "\n")
    out.append("\nMNIST is replaced by the bundled mnist5k (4,000 train / 1,000 test real MNIST "
               "digits): the paper's figures (99.3% baseline, AL2 40.9K at 99.07%) are on full "
               "MNIST with 60,000 training images. Latency: a batch of 256 on the CPU, median.\n")
    out.append("\n![widths against iterations](../benchmarks/results/demo/widths.png)\n")
    return "".join(out)


def user_loop() -> str:
    r = _load("core_user_loop.json")
    out = ["\n## The same defaults in a user's own training loop, and the cost of the gates\n"]
    if r is None:
        return "".join(out) + _missing("python -m benchmarks.core_lenet")
    m = r["mean"]
    out.append(f"Command: `{r['provenance']['command']}`.\n\n")
    out.append("| loop | mean params | mean accuracy % | seconds per epoch (median) |\n")
    out.append("|---|---|---|---|\n")
    plain_s = sum(x["epoch_seconds"] for x in r["plain"]) / len(r["plain"])
    gated_s = sum(x["epoch_seconds"] for x in r["gated"]) / len(r["gated"])
    plain_p = r["plain"][0]["params"]
    out.append(f"| plain | {plain_p} | {100 * m['plain_accuracy']:.2f} | {plain_s:.2f} |\n")
    out.append(f"| with archlearn | {m['gated_params']:.0f} | {100 * m['gated_accuracy']:.2f} "
               f"| {gated_s:.2f} |\n")
    out.append(f"\nGated epoch / plain epoch: **{m['overhead']:.2f}x**.\n")
    return "".join(out)


def peers() -> str:
    r = _load("peer_torch_pruning.json")
    out = ["\n## Torch-Pruning L1 with fine-tuning, same data and epochs\n"]
    if r is None:
        return "".join(out) + _missing("python -m benchmarks.peer_torch_pruning")
    out.append(f"Command: `{r['provenance'].get('command', '')}`.\n\n")
    out.append("| method | target | mean params | mean accuracy % |\n|---|---|---|---|\n")
    groups: dict[tuple, list] = {}
    for row in r["rows"]:
        groups.setdefault((row["method"], row.get("target")), []).append(row)
    for (method, target), rows in groups.items():
        params = sum(x["params"] for x in rows) / len(rows)
        acc = sum(x["accuracy"] for x in rows) / len(rows)
        out.append(f"| {method} | {target or ''} | {params:.0f} | {100 * acc:.2f} |\n")
    return "".join(out)


def main() -> None:
    text = ("# Results\n\nEvery figure below is read from `benchmarks/results/*.json`, written "
            "by the command named in its section; `make results` regenerates this page and "
            "`make bench` reruns everything.\n\n" + core_demo() + user_loop() + peers())
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
