"""The docs/RESULTS.md section of ``benchmarks.minilm`` (called by ``benchmarks.report``)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report_io import load, machine

RESULTS = Path(__file__).parent / "results"
# the one-shot start (al.compress, not distilled) and the int8 row (archlearn's model with dynamic
# int8 Linear layers) beside the distilled models, where a run has them
ORDER = ("original", "oneshot", "archlearn", "archlearn-int8", "first-3-layers", "first-4-layers",
         "torch-pruning")


def _widths(values: list[int]) -> str:
    return " ".join(str(v) for v in values)


def _seeds(p: dict, runs: list[dict]) -> str:
    """Which seeds the figures cover, and how many are still to run of those planned."""
    seeds = [r["seed"] for r in runs]
    planned = p.get("seeds_planned", len(seeds))
    cut = f", {planned - len(seeds)} of the {planned} planned still to run" if len(
        seeds) < planned else ""
    named = f"seed {seeds[0]} only" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
    return named + cut


def _phases(p: dict) -> str:
    """How archlearn's steps were spent, and in which precision the students trained."""
    if "gated" not in p:
        return ""
    precision = "bfloat16 autocast" if p.get("bf16") else "float32"
    return (f" (archlearn: gates for {100 * p['gated']:.0f}% of the steps, then the shrunk "
            f"model dense; trained in {precision})")


def _commands(p: dict) -> str:
    """Every command whose run's rows the file holds (one per seed for a resumed file)."""
    parts = p.get("parts") or [p]
    return ", ".join(f"`{c}`" for c in dict.fromkeys(part["command"] for part in parts))


def section() -> str:
    from benchmarks.report import setup, source, stale

    out = ["\n## all-MiniLM-L6-v2 shrunk, its sentence embeddings kept\n\n"]
    r = load("minilm.json", RESULTS)
    if r is None:
        return "".join(out) + "_Not run yet: `python -m benchmarks.minilm fidelity`._\n"
    p = r["provenance"]
    data = p["data"]
    out.append(stale(r, "minilm.json"))
    out.append(setup(p, epochs=f"{p['steps']} distillation steps per model (no epochs)",
                     figures="figures on the test sentences"))
    out.append(
        f"Commands: {_commands(p)} ({source(p)}; the job `archlearn run minilm-distill` for "
        f"{_seeds(p, r['runs'])}; {p['steps']} distillation steps of {p['batch_size']} "
        f"sentences per model{_phases(p)}, method {p['method']}, budget {p['budget']}; "
        f"torch {p['torch']}, "
        f"{machine(p)}). Data: {data['name']}, {data['split']}; {data['sizes']['train']} "
        f"train / {data['sizes']['valid']} validation / {data['sizes']['test']} test sentences "
        f"(sha256 of the test split {data['sha256']['test']}); every figure below is on the test "
        f"sentences, read once per model.\n\n")
    other = r.get("mean_other") or {}  # text of another kind, where the run scored it
    columns = ["model", "heads per layer (seed 0)", "FFN per layer (seed 0)", "params", "MACs",
               "cosine", "top-10 agreement"] + (
        ["cosine, man pages", "top-10, man pages"] if other else [])
    out.append("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n")

    def on_other(name: str) -> str:  # the man-pages cells of a row, empty where not scored
        if not other:
            return ""
        o = other.get(name)
        return f" {o['cosine']:.4f} | {o['topk_agreement']:.3f} |" if o else " | |"
    first = r["runs"][0]["rows"]
    full = r["mean"]["original"]["macs"]
    sd = r["comparison"]["sd"]
    seeds = r["comparison"]["seeds"]

    def spread(value: float, digits: int) -> str:  # no spread from a single seed
        return f" ± {value:.{digits}f}" if seeds > 1 else ""

    for name in ORDER:
        if name not in r["mean"]:
            continue
        m, row = r["mean"][name], first[name]
        out.append(f"| {name} | {_widths(row['heads'])} | {_widths(row['ffn'])} | "
                   f"{m['params'] / 1e6:.2f}M | {100 * m['macs'] / full:.1f}% | "
                   f"{m['cosine']:.4f}{spread(sd[name]['cosine'], 4)} | "
                   f"{m['topk_agreement']:.3f}{spread(sd[name]['topk_agreement'], 3)} |"
                   f"{on_other(name)}\n")
    over = (f"Mean ± standard deviation over {seeds} seeds" if seeds > 1
            else "**One seed only: no spread, not yet the acceptance's mean of 3**")
    out.append(f"\n{over}. MACs: one "
               f"128-token sentence (100% = {full / 1e6:,.1f} M). Cosine: mean cosine "
               "similarity of the mean-pooled embedding to the teacher's; top-10 agreement: the "
               "share of each test sentence's 10 nearest test sentences that the student and "
               "the teacher have in common."
               + (f" Man pages: the same figures on the {p['other']['sizes']['test']} test "
                  f"sentences of {p['other']['name']} ({p['other']['split']}), text of another "
                  "kind than the training sentences." if other else "") + "\n\n")
    wins = r["comparison"]["wins"]
    lines = []
    for base, w in wins.items():
        d = w["mean_difference"]
        lines.append(f"{base}: cosine {d['cosine']:+.4f} (better in {w['cosine']} of "
                     f"{r['comparison']['seeds']} seeds), top-10 {d['topk_agreement']:+.3f} "
                     f"(better in {w['topk_agreement']})")
    out.append("archlearn against each baseline (mean difference): " + "; ".join(lines) + ".\n")
    out.append(_latency())
    return "".join(out)


def _latency() -> str:
    from benchmarks.report import source, stale

    t = load("minilm_latency.json", RESULTS)
    if t is None:
        return ("\nLatency: _not measured on a quiet machine yet: "
                "`python -m benchmarks.minilm latency`._\n")
    p = t["provenance"]
    mark = stale(t, "minilm_latency.json")
    out = ["\n" + mark.rstrip("\n") + "\n" if mark else ""]
    out += [f"\nCPU latency, `{p['command']}` ({source(p, timings=True)}; {p['threads']} threads, "
            f"{p['rounds']} interleaved rounds, 3 times as many at batch 1; median [quartiles]; "
            "speed-up = the original's median over the model's):\n\n"
            "| model | batch 32 x 128 tokens, ms | speed-up | batch 1 x 128, ms | speed-up |\n"
            "|---|---|---|---|---|\n"]
    b32, b1 = t["latency"]["b32x128"], t["latency"]["b1x128"]
    for name in b32:
        a, b = b32[name], b1[name]
        out.append(f"| {name} | {a['median_ms']:.0f} [{a['q1_ms']:.0f}, {a['q3_ms']:.0f}] | "
                   f"{a['speedup']:.2f}x | {b['median_ms']:.1f} [{b['q1_ms']:.1f}, "
                   f"{b['q3_ms']:.1f}] | {b['speedup']:.2f}x |\n")
    return "".join(out)
