"""docs/RESULTS.md section: matched MACs budgets (benchmarks/results/budgets*.json)."""

from __future__ import annotations

import json
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

RESULTS = Path(__file__).parent / "results"
TOLERANCE = 0.02  # a peer up to 2% above an archlearn row's MACs counts as "equal MACs"
UNTIMED = "not yet measured"  # latency cells before `python -m benchmarks.budgets latency`
NA = "n/a"


def _read(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _latency_means(timed: dict | None) -> dict[tuple, dict]:
    """Per (model, method, budget, batch): mean over seeds of median, IQR and speed-up."""
    out: dict[tuple, list[dict]] = {}
    for r in (timed or {}).get("rows", []):
        out.setdefault((r["model"], r["method"], r["budget"], r["batch"]), []).append(r)
    return {k: {f: statistics.fmean(r[f] for r in v) for f in ("median_ms", "iqr_ms", "speedup")}
            for k, v in out.items()}


def _lat(lat: dict, key: tuple, batch: int) -> str:
    t = lat.get((*key, batch))
    return UNTIMED if t is None else f"{t['median_ms']:.2f} ({t['iqr_ms']:.2f})"


def section() -> str:
    out = ["\n## Matched MACs budgets: archlearn against MorphNet, Torch-Pruning and Optuna\n\n"]
    trained = _read(TRAIN_JSON)
    if trained is None:
        return "".join(out) + "_Not run yet: `python -m benchmarks.budgets train`._\n"
    from benchmarks.report import stale

    p = trained["provenance"]
    out.append(stale(trained, TRAIN_JSON))
    timed = _read(LATENCY_JSON)
    lat = _latency_means(timed)
    commands = trained.get("commands") or [p["command"]]
    out.append(f"Commands (each added rows; `merge` joined parallel runs): "
               f"{', '.join(f'`{c}`' for c in commands)} (commit {(p['git']['commit'] or '?')[:10]}"
               f"{' + local changes' if p['git']['dirty'] else ''}, torch {p['torch']}, "
               f"{p['machine']}, load average {p['load_average_1min']} at the end). "
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
        out.append("| budget | method | seeds | widths (seed 0) | params | MACs (% of full) | "
                   "accuracy % (sd) | batch 1 ms | batch 256 ms | speed-up @256 | wall s |\n")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|\n")
        for budget in (None, *BUDGETS):
            for method in (("baseline",) if budget is None else (*ARCHLEARN, *PEERS)):
                k = (name, method, budget)
                shown = NA if budget is None else f"{100 * budget:.0f}%"
                if k not in m:
                    out.append(f"| {shown} | {method} | 0 | not yet measured: `python -m "
                               f"benchmarks.budgets train --models {name} --methods {method}` | "
                               + " | ".join([NA] * 7) + " |\n")
                    continue
                r = m[k]
                speed = lat.get((*k, 256))
                speedup = UNTIMED if speed is None else f"{speed['speedup']:.2f}x"
                out.append(
                    f"| {shown} | {method} | {r['seeds']} | "
                    f"{'-'.join(map(str, r['widths']))} | {r['params']:,.0f} | "
                    f"{r['macs']:,.0f} ({100 * r['macs_fraction']:.1f}) | "
                    f"{100 * r['accuracy']:.2f} ({100 * r['accuracy_std']:.2f}) | "
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


def sweep_section() -> str:
    out = ["### Budgets are hit whatever the number of epochs\n\n"]
    swept = _read(SWEEP_JSON)
    if swept is None:
        return "".join(out) + "_Not run yet: `python -m benchmarks.budgets sweep`._\n"
    from benchmarks.report import stale

    out.append(stale(swept, SWEEP_JSON))
    out.append(f"Command: `{swept['provenance']['command']}`: tsrelu with `cost` and `budget` "
               "of the same kind. Reached / budget: mean (min-max) over seeds, counted on the "
               "shrunk model; *controller*: where the decision stood at the freeze, before it "
               "landed on the budget (as a fraction of the budget).\n\n")
    out.append("| model | budget | epochs | seeds | reached / budget | controller / budget | "
               "accuracy % |\n|---|---|---|---|---|---|---|\n")
    groups: dict[tuple, list[dict]] = {}
    for r in swept["rows"]:
        groups.setdefault((r["model"], r["kind"], r["budget"], r["epochs"]), []).append(r)
    for (name, kind, budget, epochs), rows in sorted(groups.items(), key=str):
        ratios = [r["ratio"] for r in rows]
        ctrl = statistics.fmean(r["controller_ratio"] for r in rows)
        shown = f"{100 * budget:.0f}% {kind}" if budget <= 1 else f"{budget:,.0f} {kind}"
        out.append(f"| {name} | {shown} | {epochs} | {len(rows)} | "
                   f"{statistics.fmean(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) | "
                   f"{ctrl:.2f} | {100 * statistics.fmean(r['accuracy'] for r in rows):.2f} |\n")
    return "".join(out)
