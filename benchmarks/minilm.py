"""all-MiniLM-L6-v2 shrunk by archlearn against layer truncation and Torch-Pruning, 3 seeds.

    python -m benchmarks.minilm fidelity --first-seed 0   # seed 0 of the job -> minilm.json
    python -m benchmarks.minilm latency    # re-time the architectures -> minilm_latency.json

The first runs ``archlearn run minilm-distill`` (``archlearn.jobs.minilm_distill``) with its
defaults plus the baselines (``--baselines``) for each seed asked for (``--first-seed``,
``--seeds``, default one): the one-shot compression archlearn starts from (``oneshot``, not
distilled), archlearn's shrunk MiniLM and its int8 version, the first 3 layers and
Torch-Pruning at archlearn's MACs, each distilled with the same batches, steps, loss and
schedule, and the original; all scored once on the test sentences. It records per seed and as
means: MACs, parameters, mean cosine and top-10 neighbour agreement with the teacher, and per
seed whether archlearn's figure beats each baseline's. A seed takes over an hour, so the file
is resumable: each seed's run joins the runs already there that were made with the same
settings (a seed run again replaces its old run), and the provenance keeps one part per run.
Models and per-seed files go under ``--work`` (not committed). The job's own latency figures
are taken on whatever machine runs it (few rounds here); RESULTS.md publishes only the second
command's.

Every model is also scored on text of another kind, the test split of the Linux man-pages
project's section-7 pages (``benchmarks.compress.man_pages``): the issue's "other English text a
user brings" (``other`` in each row, ``mean_other``).

The second needs only that JSON: it rebuilds every architecture of every seed (the original
weights, the recorded heads and FFN widths per layer, or the first k layers, quantized where the
row is int8; latency depends on shapes, not on trained values) and times them together
(``compare_latency``: interleaved rounds, fixed threads, median and quartiles) at batch 32 x 128
and 1 x 128 tokens. Timings are only meaningful on a quiet machine: run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from archlearn.io import write_json
from archlearn.provenance import add_allow_dirty, merged
from benchmarks.compress import man_pages

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "minilm.json"
LATENCY_OUT = RESULTS / "minilm_latency.json"
BASELINES = ("oneshot", "first-3-layers", "torch-pruning")
SEEDS_PLANNED = 3  # the acceptance's mean of 3 seeds
#: what must agree for runs of different seeds to share the file
SETTINGS = ("steps", "lr", "batch_size", "method", "options", "budget", "hidden_weight",
            "similarity_weight", "start", "calibration", "gated", "truncate", "torch_pruning",
            "bf16", "model", "extra")
FIGURES = ("cosine", "topk_agreement")


def compare(results: dict) -> dict:
    """Mean, standard deviation and per-seed wins of archlearn against each baseline."""
    runs = results["runs"]
    spread = {}
    for name in runs[0]["rows"]:
        spread[name] = {k: statistics.stdev([r["rows"][name][k] for r in runs])
                        if len(runs) > 1 else 0.0 for k in FIGURES}
    wins = {}
    for base in BASELINES:
        if base not in runs[0]["rows"]:
            continue
        wins[base] = {k: sum(r["rows"]["archlearn"][k] > r["rows"][base][k] for r in runs)
                      for k in FIGURES}
        wins[base]["mean_difference"] = {
            k: results["mean"]["archlearn"][k] - results["mean"][base][k] for k in FIGURES}
    return {"sd": spread, "wins": wins, "seeds": len(runs)}


def run_job(args) -> None:
    import json

    from archlearn.jobs import minilm_distill

    budget = dict([args.budget.split("=")]) if args.budget else None
    budget = {k: float(v) for k, v in budget.items()} if budget else None
    command = "python -m benchmarks.minilm " + " ".join(sys.argv[1:])
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.exists() else {}
    parts = {(p.get("sources") or {}).get("run"): p
             for p in (done.get("provenance") or {}).get("parts") or []}
    runs = done.get("runs", [])
    other = man_pages()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        results = minilm_distill.run(Path(args.work), seeds=1, first_seed=seed,
                                     steps=args.steps, budget=budget, progress=not args.quiet,
                                     command=command, latency_rounds=args.rounds,
                                     baselines=True)
        scores = other_text(results.pop("models")[0], other.test, results.pop("tokenizer"))
        block = results["provenance"]
        block["other"] = other.record()
        run_id = block["sources"]["run"]
        record = {**results["runs"][0], "run": run_id}
        for name, figures in scores.items():
            record["rows"][name]["other"] = figures
        record["seconds"]["teacher_cache"] = results["teacher_cache_seconds"]
        parts[run_id] = block
        runs = sorted([r for r in runs if r["seed"] != seed and all(
            (parts.get(r.get("run")) or {}).get(k) == block.get(k) for k in SETTINGS)]
            + [record], key=lambda r: r["seed"])
        used = {r["run"] for r in runs}
        provenance = merged(*(p for i, p in parts.items() if i in used and i != run_id), block)
        provenance.update(seeds=len(runs), seeds_planned=max(SEEDS_PLANNED, len(runs)))
        payload = {"provenance": provenance, "runs": runs,
                   "mean": minilm_distill.mean_over_seeds(runs),
                   "mean_other": mean_other(runs),
                   "seconds": sum(r["seconds"]["total"] + r["seconds"]["teacher_cache"]
                                  for r in runs)}
        payload["comparison"] = compare(payload)
        write_json(out, payload)
        print(minilm_distill.table(payload), flush=True)
        print(f"wrote {out} (seeds {[r['seed'] for r in runs]})", flush=True)


def other_text(models: dict, sentences: list[str], tokenizer) -> dict[str, dict[str, float]]:
    """Each model's mean cosine and top-10 agreement with the original on ``sentences``
    (encoded by the job's ``tokenizer``)."""
    from archlearn.jobs.minilm_distill import _encode, evaluate

    rows = _encode(tokenizer, sentences)
    reference = evaluate.sentence_embeddings(models["original"], rows)
    return {name: evaluate.fidelity(model, rows, reference) for name, model in models.items()}


def mean_other(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per model, the figures on the other text, averaged over the runs that have them."""
    out = {}
    for name in runs[0]["rows"]:
        scored = [r["rows"][name]["other"] for r in runs if "other" in r["rows"][name]]
        if scored:
            out[name] = {k: statistics.fmean(s[k] for s in scored) for k in FIGURES}
    return out


def rebuild(row: dict, original, example):
    """A model of the recorded shape: the original's weights, the first units of each layer."""
    from archlearn.models.bert import keeping, truncated

    if row["layers"] < len(list(original.encoder.layer)):
        return truncated(original, row["layers"])
    return keeping(original, [list(range(h)) for h in row["heads"]],
                   [list(range(f)) for f in row["ffn"]], example)


def run_latency(args) -> None:
    import json

    import torch

    from archlearn.jobs.minilm_distill import evaluate
    from archlearn.models.pretrained import load_minilm
    from archlearn.provenance import provenance

    recorded = json.loads(Path(args.out).read_text())
    original = load_minilm().eval()
    example = torch.full((1, 128), 1000)
    models = {"original": original}
    for r in recorded["runs"]:
        for name, row in r["rows"].items():
            if name != "original":
                model = rebuild(row, original, example).eval()
                models[f"{name} seed {r['seed']}"] = evaluate.int8(model) if row.get(
                    "int8") else model
    start = time.perf_counter()
    timing = evaluate.latency(models, rounds=args.rounds, threads=args.threads)
    command = "python -m benchmarks.minilm " + " ".join(sys.argv[1:])
    payload = {"provenance": provenance(command, threads=args.threads, rounds=args.rounds,
                                        from_results=str(args.out)),
               "latency": timing, "seconds": time.perf_counter() - start}
    write_json(args.latency_out, payload)
    for shape, result in timing.items():
        for name, m in result.items():
            print(f"{shape:8} {name:<26} {m['median_ms']:9.1f} ms "
                  f"[{m['q1_ms']:.1f}, {m['q3_ms']:.1f}]  x{m['speedup']:.2f}")
    print(f"wrote {args.latency_out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_allow_dirty(parser)
    parser.add_argument("step", nargs="?", choices=("fidelity", "latency"), default="fidelity")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds to run from --first-seed (each over an hour)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the job's")
    parser.add_argument("--budget", default=None, help="e.g. macs=0.45 (default: the job's)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="latency rounds (default: 3 in the fidelity step, 10 in latency)")
    parser.add_argument("--threads", type=int, default=2, help="latency threads")
    parser.add_argument("--work", default="runs/minilm-bench")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--latency-out", default=str(LATENCY_OUT))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.step == "latency":
        args.rounds = args.rounds or 10
        run_latency(args)
    else:
        args.rounds = args.rounds or 3
        if args.steps is None:
            from archlearn.jobs.minilm_distill import DEFAULT_STEPS

            args.steps = DEFAULT_STEPS
        run_job(args)


if __name__ == "__main__":
    main()
