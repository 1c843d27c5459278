"""docs/RESULTS.md section: matched MACs budgets (benchmarks/results/budgets*.json)."""

from __future__ import annotations

import statistics
from pathlib import Path

from benchmarks.budgets import (
    ARCHLEARN,
    BUDGETS,
    LATENCY_JSON,
    MODELS,
    PEERS,
    SWEEP_JSON,
    TRAIN_JSON,
    means,
)
from benchmarks.report_io import NA, load, machine

RESULTS = Path(__file__).parent / "results"
TOLERANCE = 0.02  # a peer up to 2% above an archlearn row's MACs counts as "equal MACs"
UNTIMED = "not yet measured"  # latency cells before `python -m benchmarks.budgets latency`


def _latency_means(timed: dict | None) -> dict[tuple, dict]:
    """Per (model, method, budget, batch): mean over seeds of median, IQR and speed-up."""
    out: dict[tuple, list[dict]] = {}
    for r in (timed or {}).get("rows", []):
        out.setdefault((r["model"], r["method"], r["budget"], r["batch"]), []).append(r)
    return {k: {f: statistics.fmean(r[f] for r in v) for f in ("median_ms", "iqr_ms", "speedup")}
            for k, v in out.items()}


def _lat(lat: dict, key: tuple, batch: int) -> str:
    t = lat.get((*key, batch))
    if t is None:
        return UNTIMED
    digits = 3 if t["median_ms"] < 1 else 2  # a batch of one takes a fraction of a ms
    return f"{t['median_ms']:.{digits}f} ({t['iqr_ms']:.{digits}f})"


def heading(rows: list[dict]) -> str:
    """The section's heading, naming only the methods that have rows: MorphNet, Optuna or
    Torch-Pruning are promised only when the file holds a row of theirs.

    >>> heading([{"method": "tsrelu"}, {"method": "tp-l1"}])
    '## Matched MACs budgets: archlearn (tsrelu) against Torch-Pruning'
    """
    have = {r["method"] for r in rows}
    ours = [m for m in ARCHLEARN if m in have and m != "morphnet"]
    peers = [label for label, methods in (("MorphNet", ("morphnet",)),
                                          ("Torch-Pruning", ("tp-l1", "tp-taylor")),
                                          ("Optuna", ("optuna",)))
             if have & set(methods)]
    title = "## Matched MACs budgets: archlearn" + (f" ({', '.join(ours)})" if ours else "")
    if peers:
        title += " against " + (f"{', '.join(peers[:-1])} and {peers[-1]}" if len(peers) > 1
                                else peers[0])
    return title


def accuracy_cell(mean: float, sd: float, n: int) -> str:
    """Mean accuracy % and its standard deviation over seeds; one seed has no spread to show.

    >>> accuracy_cell(0.975, 0.0, 1), accuracy_cell(0.975, 0.001, 3)
    ('97.50 (n=1, no sd)', '97.50 (0.10)')
    """
    return f"{100 * mean:.2f} " + (f"({100 * sd:.2f})" if n > 1 else "(n=1, no sd)")


def section() -> str:
    trained = load(TRAIN_JSON, RESULTS)
    if trained is None:
        return ("\n## Matched MACs budgets\n\n"
                "_Not run yet: `python -m benchmarks.budgets train`._\n")
    out = ["\n" + heading(trained["rows"]) + "\n\n"]
    from benchmarks.report import setup, stale

    p = trained["provenance"]
    out.append(stale(trained, TRAIN_JSON))
    out.append(setup(p, figures="accuracy on the test split (the only choices, Optuna's, on the "
                                "validation split)"))
    timed = load(LATENCY_JSON, RESULTS)
    lat = _latency_means(timed)
    out.append(f"Commands (each added rows; `merge` joined parallel runs): "
               f"{_commands(trained)} (commit {(p['git']['commit'] or '?')[:10]}"
               f"{' + local changes' if p['git']['dirty'] else ''}, torch {p['torch']}, "
               f"{machine(p)}, load average {p['load_average_1min']} at the end). "
               f"Data: {p['data']['split'] if 'split' in p['data'] else p['data']}.\n\n")
    out.append(p["protocol"] + "\n\n")
    if timed is None:
        out.append("_Latency not timed yet: `python -m benchmarks.budgets latency` (on a quiet "
                   "machine)._\n\n")
    else:
        q = timed["provenance"]
        out.append(stale(timed, LATENCY_JSON))
        out.append(f"Latency: `{q['command']}` ({q['rounds']} interleaved rounds, 1 thread, "
                   f"median (IQR) in ms per forward pass, mean over seeds; load average "
                   f"{q['load_average_1min']} on {q['cpus']} CPUs when timed"
                   + ("; a loaded machine: compare rows of one run only" if
                      (q["load_average_1min"] or 0) > 1 else "") + ").\n\n")
    m = means(trained["rows"])
    for name, (label, _) in MODELS.items():
        out.append(f"### {label}\n\n")
        if not any(k[0] == name for k in m):
            out.append(f"_Not run yet: `python -m benchmarks.budgets train --models {name}`._\n\n")
            continue
        out.append("| budget | method | n (seeds) | widths (seed 0) | params | MACs (% of full) | "
                   "accuracy % (sd) | batch 1 ms | batch 256 ms | speed-up @256 | wall s |\n")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for budget in (None, *BUDGETS):
            for method in (("baseline",) if budget is None else (*ARCHLEARN, *PEERS)):
                k = (name, method, budget)
                shown = NA if budget is None else f"{100 * budget:.0f}%"
                if k not in m:
                    out.append(f"| {shown} | {method} | n=0 | not yet measured: `python -m "
                               f"benchmarks.budgets train --models {name} --methods {method}` | "
                               + " | ".join([NA] * 7) + " |\n")
                    continue
                r = m[k]
                speed = lat.get((*k, 256))
                speedup = UNTIMED if speed is None else f"{speed['speedup']:.2f}x"
                out.append(
                    f"| {shown} | {method} | n={r['seeds']} | "
                    f"{'-'.join(map(str, r['widths']))} | {r['params']:,.0f} | "
                    f"{r['macs']:,.0f} ({100 * r['macs_fraction']:.1f}) | "
                    f"{accuracy_cell(r['accuracy'], r['accuracy_std'], r['seeds'])} | "
                    f"{_lat(lat, k, 1)} | {_lat(lat, k, 256)} | "
                    f"{speedup} | "
                    f"{r['seconds']:.0f} |\n")
        out.append("\n" + verdicts(m, name) + "\n")
        if (RESULTS / f"budgets_{name}.png").exists():
            out.append(f"![{name}](../benchmarks/results/budgets_{name}.png)\n\n")
    out.append(sweep_section())
    return "".join(out)


def verdicts(m: dict, name: str) -> str:
    """Per budget: archlearn's best row against every peer at equal (or more) MACs."""
    lines = []
    base = m.get((name, "baseline", None))
    for budget in BUDGETS:
        ours = [(k[1], v) for k, v in m.items() if k[0] == name and k[2] == budget
                and k[1] in ARCHLEARN]
        theirs = [(k[1], v) for k, v in m.items() if k[0] == name and k[2] == budget
                  and k[1] in PEERS]
        if not ours:
            continue
        method, best = max(ours, key=lambda x: x[1]["accuracy"])
        text = [f"{100 * budget:.0f}% MACs: best archlearn method **{method}** "
                f"{100 * best['accuracy']:.2f}%"]
        if base:
            text.append(f"{100 * (best['accuracy'] - base['accuracy']):+.2f} pp vs the baseline")
        for peer, v in sorted(theirs, key=lambda x: -x[1]["accuracy"]):
            cmp = "at or above" if best["accuracy"] >= v["accuracy"] else "below"
            more = v["macs"] > best["macs"] * (1 + TOLERANCE)
            text.append(f"{cmp} {peer} ({100 * (best['accuracy'] - v['accuracy']):+.2f} pp"
                        f"{', which uses more MACs' if more else ''})")
        lines.append("- " + "; ".join(text) + ".")
    return "\n".join(lines) + "\n"


HIT = 0.02  # a budget is hit when the shrunk model lands at most 2% under it, never over


def hit(ratio: float) -> bool:
    """Whether a shrunk model that reached ``ratio`` of its budget hit it (``HIT``).

    >>> hit(0.99), hit(0.97), hit(1.01)
    (True, False, False)
    """
    return 1 - HIT <= ratio <= 1 + 1e-9


def _sweep_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["kind"], r["budget"], r["epochs"]), []).append(r)
    return dict(sorted(groups.items(), key=str))


def _budget_label(kind: str, budget: float) -> str:
    return f"{100 * budget:.0f}% {kind}" if budget <= 1 else f"{budget:,.0f} {kind}"


def sweep_heading(rows: list[dict]) -> tuple[str, str]:
    """The sweep's heading and verdict, from the rows: "hit" only when every seed of every case
    landed within ``HIT`` under its budget; otherwise how many cases did and which missed.

    >>> r = {"model": "m", "kind": "macs", "budget": 0.5, "epochs": 10, "ratio": 0.99}
    >>> sweep_heading([r])[0]
    '### Budgets are hit at 10 epochs: every seed within 2% under its budget'
    >>> print(sweep_heading([r, {**r, "epochs": 30, "ratio": 0.9}])[1])
    **Missed** (a seed more than 2% under its budget, or over it): m 50% macs at 30 epochs (0.900).
    """
    groups = _sweep_groups(rows)
    epochs = sorted({k[3] for k in groups})
    at = " and ".join(map(str, epochs)) + " epochs"
    missed = {k: g for k, g in groups.items() if not all(hit(r["ratio"]) for r in g)}
    if not missed:
        return (f"### Budgets are hit at {at}: every seed within {100 * HIT:.0f}% under its "
                "budget"), ""
    heading = (f"### Budgets at {at}: hit in {len(groups) - len(missed)} of {len(groups)} cases "
               f"(every seed within {100 * HIT:.0f}% under its budget)")
    listed = []
    for (name, kind, budget, e), g in missed.items():
        off = ", ".join(f"{r['ratio']:.3f}" for r in g if not hit(r["ratio"]))
        listed.append(f"{name} {_budget_label(kind, budget)} at {e} epochs ({off})")
    return heading, (f"**Missed** (a seed more than {100 * HIT:.0f}% under its budget, or over "
                     f"it): {'; '.join(listed)}.")


def _commands(payload: dict) -> str:
    """The commands a resumable file's rows come from (its ``commands``), as inline code."""
    commands = payload.get("commands") or [payload["provenance"]["command"]]
    return ", ".join(f"`{c}`" for c in commands)


def sweep_section() -> str:
    swept = load(SWEEP_JSON, RESULTS)
    if swept is None:
        return ("### Budgets over the number of epochs\n\n"
                "_Not run yet: `python -m benchmarks.budgets sweep`._\n")
    from benchmarks.report import setup, stale

    title, verdict = sweep_heading(swept["rows"])
    out = [title + "\n\n", stale(swept, SWEEP_JSON)]
    p = swept["provenance"]
    out.append(f"Commands: {_commands(swept)} (each run makes only the "
               "rows not yet current; `--seeds k` adds seed k-1): tsrelu with `cost` and `budget` "
               "of the same kind. Reached / budget: mean (min-max) over seeds, counted on the "
               "shrunk model; *hit*: every seed within "
               f"{100 * HIT:.0f}% under the budget (never over); *controller*: where the "
               "decision stood at the freeze, before it landed on the budget (as a fraction of "
               "the budget). "
               + setup(p, epochs="as in each row", figures="accuracy on the test split"))
    if verdict:
        out.append(verdict + "\n\n")
    out.append("| model | budget | epochs | n (seeds) | reached / budget | hit | "
               "controller / budget | accuracy % |\n|---|---|---|---|---|---|---|---|\n")
    for (name, kind, budget, epochs), rows in _sweep_groups(swept["rows"]).items():
        ratios = [r["ratio"] for r in rows]
        ctrl = statistics.fmean(r["controller_ratio"] for r in rows)
        spread = f" ({min(ratios):.3f}-{max(ratios):.3f})" if len(rows) > 1 else ""
        landed = sum(hit(x) for x in ratios)
        out.append(f"| {name} | {_budget_label(kind, budget)} | {epochs} | n={len(rows)} | "
                   f"{statistics.fmean(ratios):.3f}{spread} | "
                   f"{'yes' if landed == len(rows) else f'no ({landed}/{len(rows)} seeds)'} | "
                   f"{ctrl:.2f} | {100 * statistics.fmean(r['accuracy'] for r in rows):.2f} |\n")
    swept_models = {r["model"] for r in swept["rows"]}
    out += [f"\n_Not run yet for the {label}: `python -m benchmarks.budgets sweep --seeds 3 "
            f"--models {name}`._\n" for name, (label, _) in MODELS.items()
            if name not in swept_models]
    return "".join(out)
