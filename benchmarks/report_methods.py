"""Markdown sections for docs/RESULTS.md: the one comparison, the methods' defaults and variants,
their selection on validation, and Stier et al.'s magnitude pruning.

Numbers come only from ``benchmarks/results/compare_methods.json``, ``method_settings.json``,
``select_defaults.json`` and ``magnitude_stier.json``; ``section()`` returns the Markdown.

    python -m benchmarks.report_methods      # prints the sections
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.report_io import load, machine, missing

RESULTS = Path(__file__).parent / "results"
COMPARE_CMD = "python -m benchmarks.compare_methods --seeds 3 --epochs 10"
STIER_CMD = "python -m benchmarks.magnitude_stier --seeds 3 --epochs 100"
FAMILY_ORDER = {"baseline": 0, "archlearn": 1, "peer": 2}


def _opening(results: Path, name: str, heading: str, command: str) -> tuple[dict | None, list]:
    """A section's results and its first lines: the heading, then the stale mark, or the
    command to run when there are no results yet."""
    r = load(name, results)
    if r is None:
        return None, [heading, missing(command)]
    from benchmarks.report import stale

    return r, [heading, stale(r, name)]


def _tp_version(p: dict) -> str:
    """The installed torch-pruning distribution, as the staleness check reads it (the package's
    own ``__version__``, which the run also records, says 1.6.0 in the 1.6.1 wheel)."""
    return (p.get("versions") or {}).get("torch-pruning") or p["torch_pruning"]


def _prose(text: str) -> str:
    """A docstring protocol flattened into one line, back to Markdown: inline code, bullets."""
    return text.replace("``", "`").replace(" * ", "\n- ")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _size(value: float, x: str) -> str:
    return f"{value:.2f} ms" if x == "latency_ms" else f"{value:,.0f} {x}"


def _verdict_line(task_verdict: dict, label: str) -> str:
    """One bullet: the winners, then each archlearn row's margin and the peer it is held to."""
    x = task_verdict["x"]
    parts = []
    for name, v in task_verdict["methods"].items():
        if v.get("compared_with"):
            mark = "on/above" if v["on_or_above_front"] else "below"
            text = (f"{name} {mark} ({v['margin_pp']:+.2f} pp vs {v['compared_with']}, "
                    f"{_size(v[f'peer_{x}'], x)})")
            if "next_larger_peer" in v and v[f"peer_{x}"] < 0.5 * v[x]:
                text += (f", but {v['next_larger_margin_pp']:+.2f} pp vs the next larger peer "
                         f"{v['next_larger_peer']} ({_size(v[f'next_larger_peer_{x}'], x)})")
        elif "margin_vs_smallest_peer_pp" in v:
            text = (f"{name} on the front: smaller than every peer "
                    f"({v['margin_vs_smallest_peer_pp']:+.2f} pp vs the smallest, "
                    f"{_size(v[f'smallest_peer_{x}'], x)})")
        else:
            text = f"{name}: {v.get('note', 'no peer')}"
        parts.append(text)
    winners = ", ".join(task_verdict["on_or_above_front"]) or "none"
    return f"- {label}: **{winners}**. " + "; ".join(parts) + ".\n"


def compare_section(results: Path = RESULTS) -> str:
    r, out = _opening(results, "compare_methods.json",
                      "\n## One comparison: archlearn's methods against pruning peers\n\n",
                      COMPARE_CMD)
    if r is None:
        return "".join(out)
    p = r["provenance"]
    from benchmarks.report import setup, source

    out.append(setup(p))
    out.append(f"Command: `{p['command']}` ({source(p, timings=True)}; {p['epochs']} epochs per "
               "row, mean of "
               f"{p['seeds']} "
               f"seeds, torch {p['torch']}, torch-pruning {_tp_version(p)}, "
               f"{machine(p)}). Data: mnist5k, {p['data']['train']:,} training and "
               f"{p['data']['test']:,} test images (real MNIST digits; not the 60,000-image "
               "MNIST of the papers).")
    if p.get("note"):
        out.append(f" Note: {p['note']}")
    out.append("\n\nProtocol. " + _prose(p["protocol"]) + "\n")
    for task, task_means in r["mean"].items():
        label = p["tasks"][task]
        out.append(f"\n### {label}\n\n")
        out.append("| row | kind | architecture (seed 0) | params | MACs | accuracy % (std) "
                   "| latency ms |\n|---|---|---|---|---|---|---|\n")
        rows = sorted(task_means.items(),
                      key=lambda kv: (FAMILY_ORDER[kv[1]["family"]], -kv[1]["params"]))
        for name, m in rows:
            kind = "peer, unstructured" if m["unstructured"] else m["family"]
            params = f"{m['params']:.0f}" + (" non-zero" if m["unstructured"] else "")
            out.append(f"| {name} | {kind} | {m['architecture_seed0']} | {params} | "
                       f"{m['macs']:.0f} | {_pct(m['accuracy'])} ({_pct(m['accuracy_std'])}) | "
                       f"{m['latency_ms']:.2f} |\n")
        setup = r["peer_setup"][task]
        targets = "; ".join(t["rule"] + (f" ({t['params']})" if t["params"] else "")
                            for t in setup["targets"])
        out.append(f"\nPeer sizes: {targets}; {setup['first_epochs']} dense epochs, then "
                   f"{setup['fine_tune_epochs']} fine-tuning epochs.\n")
    out.append(f"\n![accuracy against parameters](../benchmarks/results/{r['plot']})\n")
    out.append("\n### Pareto verdict\n\nAn archlearn row is on or above the peers' front when no "
               "peer with equal or fewer parameters (up to 2% more counts as equal) is more "
               "accurate; the margin is its accuracy minus the best such peer's (mean over seeds, "
               "percentage points; with 1,000 test images one image is 0.1 pp, compare with the "
               "std columns above).\n\n")
    for task, verdicts in r["pareto"].items():
        out.append(f"**{p['tasks'][task]}**\n\n")
        out.append(_verdict_line(verdicts["all_peers"], "against all peers, by params"))
        out.append(_verdict_line(verdicts["structured_same_model"],
                                 "against structured peers on the same model, by params"))
        out.append(_verdict_line(verdicts["structured_same_model_by_macs"],
                                 "against structured peers on the same model, by MACs"))
        if "structured_same_model_by_latency" in verdicts:
            out.append(_verdict_line(verdicts["structured_same_model_by_latency"],
                                     "against structured peers on the same model, by latency"))
        out.append("\n")
    out.append("The unstructured peer's parameters are its non-zero ones; its tensors are dense, "
               "so its MACs and latency are the dense model's. Latency: a batch of 256 on one CPU "
               "thread of a shared machine, median of 30 runs; compare within this table only.\n")
    return "".join(out)


def _holds(c: dict) -> str:
    a = c["accuracy"]
    if not c["holds"]:
        return "Does not hold"
    if a["seeds_uniform_worse"] == a["seeds"]:
        return "Holds in every seed"
    return "Holds on the mean, not in every seed"


def stier_section(results: Path = RESULTS) -> str:
    r, out = _opening(results, "magnitude_stier.json",
                      "\n## Stier et al.: magnitude pruning classes at 80% (784-100-10 MLP)\n\n",
                      STIER_CMD)
    if r is None:
        return "".join(out)
    p, d = r["provenance"], r["dense"]
    from benchmarks.report import setup, source

    out.append(setup(p, epochs=f"{p['epochs']} dense, then retraining as in each row"))
    out.append(f"Command: `{p['command']}` ({source(p)}; mean of {p['seeds']} seeds; "
               f"{p['optimizer']}, "
               f"{p['epochs']} dense epochs; mnist5k, {p['data']['train']:,} training images "
               "instead of full MNIST's 50,000 in the paper's code).\n\n")
    out.append("Protocol. " + _prose(p["protocol"]) + "\n\n")
    out.append(f"Unpruned: **{_pct(d['accuracy'])}%** ({_pct(d['accuracy_std'])} std), "
               f"{d['params']:,} params.\n\n")
    out.append("| schedule | class | retrain epochs per step | pruned % (per layer, in order) "
               "| accuracy right after pruning % | after retraining % (std) | vs unpruned pp "
               "| vs unpruned trained as long pp |\n|---|---|---|---|---|---|---|---|\n")
    for m in r["mean"].values():
        schedule = "one-shot" if m["steps"] == 1 else f"iterative, {m['steps']} steps"
        layers = " / ".join(f"{100 * v:.0f}" for v in m["layer_sparsity"].values())
        extra = r["dense_same_extra_epochs"][f"{m['steps'] * m['retrain_epochs']} extra epochs"]
        control = 100 * (m["accuracy"] - extra)
        out.append(f"| {schedule} | {m['scope']} | {m['retrain_epochs']} | "
                   f"{100 * m['sparsity']:.1f} ({layers}) | {_pct(m['pruned_accuracy'])} | "
                   f"{_pct(m['accuracy'])} ({_pct(m['accuracy_std'])}) | "
                   f"{m['vs_unpruned_pp']:+.2f} | {control:+.2f} |\n")
    controls = ", ".join(f"{k}: {_pct(v)}%" for k, v in r["dense_same_extra_epochs"].items())
    out.append(f"\nControl, the unpruned net trained on for the same extra epochs: {controls}.\n")
    paper = r["paper"]
    out.append(f"\n**Against the paper.** {paper['source']}: "
               f"{100 * paper['accuracy_at_80']:.1f}% at 80% compression on {paper['data']}, "
               f"{paper['gain_over_unpruned_pp']:+.1f} pp against the unpruned net.")
    blind = [m for m in r["mean"].values() if m["scope"] == "blind" and m["steps"] == 1]
    if blind:
        here = "; ".join(f"{m['retrain_epochs']} retraining epochs: {_pct(m['accuracy'])}% "
                         f"({m['vs_unpruned_pp']:+.2f} pp)" for m in blind)
        out.append(f" Here, one-shot class-blind at 80%, against the unpruned "
                   f"{_pct(d['accuracy'])}%: {here}. mnist5k has {p['data']['train']:,} "
                   "training images, so absolute accuracies sit lower; the authors' code "
                   "retrained until the validation accuracy stopped improving (at most 25 "
                   "epochs).")
    out.append("\n\n**Claim: class-uniform is worse than class-blind.**\n\n")
    for key, c in r["claim_uniform_worse_than_blind"].items():
        a, b = c["accuracy"], c["pruned_accuracy"]
        out.append(f"- {key}: after retraining uniform - blind = "
                   f"{a['uniform_minus_blind_pp']:+.2f} pp (uniform worse in "
                   f"{a['seeds_uniform_worse']}/{a['seeds']} seeds); right after pruning "
                   f"{b['uniform_minus_blind_pp']:+.2f} pp "
                   f"({b['seeds_uniform_worse']}/{b['seeds']}). "
                   f"{_holds(c)}.\n")
    return "".join(out)


def settings_section(results: Path = RESULTS) -> str:
    """Each method's defaults and the variants its docstring discusses, on digits."""
    r, out = _opening(results, "method_settings.json",
                      "\n## Each method's defaults and variants on digits\n\n",
                      "python -m benchmarks.method_settings")
    if r is None:
        return "".join(out)
    from benchmarks.report import setup, source

    p = r["provenance"]
    out.append(setup(p))
    out.append(f"Command: `{p['command']}` ({source(p)}). " + _prose(p["protocol"]) + " Dense "
               "accuracy: " + "; ".join(
                   f"{'BatchNorm MLP' if bn else 'MLP'} "
                   f"{_pct(min(d['accuracy'] for d in r['dense'] if d['batchnorm'] == bn))}-"
                   f"{_pct(max(d['accuracy'] for d in r['dense'] if d['batchnorm'] == bn))}%"
                   for bn in (False, True)) + ".\n\n")
    out.append("| method | variant | model | widths per seed | accuracy % mean (min-max) |\n"
               "|---|---|---|---|---|\n")
    for row in r["rows"].values():
        out.append(f"| {row['method']} | {row['variant']} | "
                   f"{'BatchNorm MLP' if row['batchnorm'] else 'MLP'} | "
                   f"{', '.join(row['widths'])} | {_pct(row['accuracy_mean'])} "
                   f"({_pct(row['accuracy_min'])}-{_pct(row['accuracy_max'])}) |\n")
    return "".join(out)


def _split(d: dict) -> str:
    return f"{d['name']} ({d['train']:,} train / {d['valid']:,} validation)"


def _mark(m: dict, variant: str) -> str:
    """A variant's role: the default it ran with, the one selected, both, or one of the grid."""
    marks = [word for word, key in (("default", "default_variant"), ("selected", "selected"))
             if m[key] == variant]
    return " and ".join(marks) or "grid"


def defaults_section(results: Path = RESULTS) -> str:
    """Each method's defaults selected on the validation split (benchmarks/select_defaults.py)."""
    r, out = _opening(results, "select_defaults.json",
                      "\n## Method defaults selected on validation\n\n",
                      "python -m benchmarks.select_defaults")
    if r is None:
        return "".join(out)
    from benchmarks.report import setup, source

    p = r["provenance"]
    out.append(setup(p, data=" and ".join(_split(d) for d in p["data"].values()),
                     figures="figures on the validation split (the test split is not read)"))
    out.append(f"Command: `{p['command']}` ({source(p)}). " + _prose(p["protocol"]) + "\n\n")
    out.append("| method | variant | widths per seed | params (mean) | MACs % (mean) | "
               "validation accuracy % mean (sd) | role |\n|---|---|---|---|---|---|---|\n")
    for method, m in r["methods"].items():
        for variant, v in m["variants"].items():
            out.append(f"| {method} | {variant} | {', '.join(v['widths'])} | "
                       f"{v['params_mean']:,.0f} | {100 * v['macs_fraction_mean']:.1f} | "
                       f"{_pct(v['accuracy_mean'])} ({_pct(v['accuracy_std'])}) | "
                       f"{_mark(m, variant)} |\n")
    out.append("\n" + "".join(
        f"- {method} ({m['task']}; {m['criterion']}): selected `{m['selected']}`, "
        + ("the default it ran with" if m["agrees"]
           else f"the default it ran with was `{m['default_variant']}`") + ".\n"
        for method, m in r["methods"].items()))
    return "".join(out)


def section(results: Path = RESULTS) -> str:
    """The sections as Markdown, ready to append to docs/RESULTS.md."""
    return (compare_section(results) + settings_section(results) + defaults_section(results)
            + stier_section(results))


if __name__ == "__main__":
    print(section())
