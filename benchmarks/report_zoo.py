"""docs/RESULTS.md section: real architectures (benchmarks/results/zoo.json)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.report_io import machine

RESULTS = Path(__file__).parent / "results" / "zoo.json"


def _seconds(t: dict) -> str:
    return f"{t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f})"


def _channels(share: dict) -> str:
    """Removable channels gated (all channels in brackets); a results file written before the
    removable share existed holds the share of all channels under ``channels``."""
    if "channels_all" not in share:
        return f"- ({100 * share['channels']:.0f}% of all)"
    return f"{100 * share['channels']:.0f}% ({100 * share['channels_all']:.0f}% of all)"


def section(path: Path = RESULTS) -> str:
    out = ["\n## Real architectures: what is gated, what is skipped and why\n\n"]
    if not path.exists():
        return "".join(out) + "_Not run yet: `python -m benchmarks.zoo`._\n"
    from benchmarks.report import setup, stale

    r = json.loads(path.read_text())
    p = r["provenance"]
    out.append(stale(r, "zoo.json"))
    out.append(setup(p, seeds=f"one seed (the default initialisation; n={p['repeats']} interleaved "
                     "timing repeats per row, median and range)", data="none read (random "
                     "224x224 images and 128-token inputs)",
                     figures="shares counted on the models themselves, no split involved"))
    dirty = " + local changes" if p["git"]["dirty"] else ""
    # timm and torchvision joined the zoo later: older results files have no version for them
    libraries = "".join(f", {lib} {p[lib]}" for lib in ("timm", "torchvision") if lib in p)
    out.append(
        f"Command: `{p['command']}` (commit {(p['git']['commit'] or '?')[:10]}{dirty}, "
        f"torch {p['torch']}, transformers {p['transformers']}{libraries}, {machine(p)}). "
        "transformers' own model classes, timm's (`timm/...`) and torchvision's (`tv/...`) at "
        "their default sizes, random init (nothing downloaded), and the "
        "pre-trained all-MiniLM-L6-v2; images 224x224, 128 tokens. *Gated channels*: the share "
        "of *removable* output channels that are units of a gate group, i.e. of the output "
        "channels of every layer except the model's output layers (a classifier's logits, a "
        "pooler's outputs: the model's own outputs, which no structure learning can remove); "
        "in brackets the share of all output channels, output layers included (older results "
        "files have only this one). *Gated params/MACs*: the share of the parameters and MACs "
        "in layers a group can shrink. Attach includes tracing and the trial shrink that "
        "checks every group; shrink is with about half of every group's units off. Seconds: "
        f"median (range) of {p['repeats']} interleaved runs.\n\n")
    out.append("| model | params | MACs | gated removable channels | gated params | gated MACs | "
               "groups: channels / heads / blocks / hidden | attach s | shrink s |\n")
    out.append("|---|---|---|---|---|---|---|---|---|\n")
    notes, refusals = [], []
    for name, row in r["models"].items():
        if "error" in row:  # one cell per column (the table test reads them); the reason below
            out.append(f"| {name} |" + " refused |" * 8 + "\n")
            refusals.append(f"- **{name}** refused with one `ArchlearnError`: {row['error']}\n")
            continue
        s, g = row["share"], row["groups"]
        out.append(
            f"| {name} | {row['params'] / 1e6:.1f}M | {row['macs'] / 1e9:.2f}G | "
            f"{_channels(s)} | {100 * s['params']:.0f}% | {100 * s['macs']:.0f}% | "
            f"{g.get('channels', 0)} / {g.get('heads', 0)} / {g.get('blocks', 0)} / "
            f"{g.get('hidden', 0)} | "
            f"{_seconds(row['attach_s'])} | {_seconds(row['shrink_s'])} |\n")
        if row["skipped"]:
            reasons = "; ".join(f"{n}x {reason}" for reason, n in row["skipped"].items())
            notes.append(f"- **{name}** skipped: {reasons}\n")
    if refusals:
        out.append("\nRefused models (nothing was changed):\n\n")
        out += refusals
    if notes:
        out.append("\nSkipped groups (left ungated, listed in `architecture()[\"skipped\"]`):\n\n")
        out += notes
    return "".join(out)
