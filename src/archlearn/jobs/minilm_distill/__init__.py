"""The job ``archlearn run minilm-distill``: all-MiniLM-L6-v2, shrunk, its embeddings kept.

For each seed:

1. **Data.** Sentences of the running Python's standard-library documentation
   (:func:`archlearn.data.text.load_text`) or of ``--data-path file.txt``; fixed
   train/validation/test split by a hash of each sentence. With ``extra`` (``--extra N``) the
   distillation also reads N sentences of the installed packages' docstrings
   (``data.text.package_sentences``; none is a validation or test sentence): the teacher
   labels any text. It is off by default: on the validation sentences, 22,000 of them (2,000
   steps, seed 0) gave cosine 0.9577 / top-10 0.755 against 0.9598 / 0.756 without, though
   0.938 / 0.713 against 0.933 / 0.697 on the man pages' validation sentences (text of
   another kind), and they cost about 3 minutes of the teacher's time. Training batches of 32
   sentences at their natural length (grouped by length, padded per batch, seeded order); the
   teacher's outputs for every training sentence are computed once (``training.TeacherCache``)
   and shared by every student, step and seed.
2. **archlearn.** By default (``start="oneshot"``) learning starts where one-shot compression
   ends: the teacher is compressed by ``al.compress`` to ``budget`` on ``calibration`` (default
   512) train sentences (``one_shot.py``; the ``oneshot`` row), its re-fitted weights are
   written back into a full-size copy (``compression.warm_start.expand``) and the method's
   gates on the heads and FFN neurons start at its decision (``al.attach(..., init=...)``),
   held on the budget by CoFi's Lagrangian (``controller="lagrangian"``), so units can come
   back and others go, for the first ``gated`` share of the steps (default 5%); then the student
   is shrunk and the small dense model is distilled for the rest of the steps on the same
   learning-rate schedule (a step of the shrunk model costs less than half a gated one, and the
   decision barely moves after the one-shot start). With ``start="full"`` the gates start
   all-on on a copy of the teacher (the budget's multiplier controller) and train for every
   step. ``budget`` defaults to ``{"macs": 0.45}``: 45% of the
   MACs of a 128-token sentence, which measured about 2.1x faster at batch 32 x 128 on this
   CPU. The student is distilled from the frozen original (:func:`archlearn.distill`: cosine
   of the mean-pooled embedding, plus hidden states layer by layer) for ``steps`` batches
   (default 4,000), and saved (``models/archlearn``: safetensors + recipe + config.json).
   Its int8 version (``archlearn-int8``: the shrunk model's Linear layers in dynamic int8,
   ``evaluate.int8``) is evaluated beside it, not saved.
3. **Baselines** (``--baselines``: what the benchmark runs; off by default, so that the job
   is archlearn's model alone), distilled with the same batches, steps, loss and schedule
   (``training.py``): the first ``k`` layers for each ``k`` in ``truncate`` (``--baselines``:
   3) and Torch-Pruning's heads/FFN pruning at archlearn's MACs (``baselines.py``); and the
   unpruned original.
4. **Figures** (``evaluate.py``): layers, heads and FFN neurons per layer, parameters, MACs,
   mean cosine and top-10 neighbour agreement with the teacher on the *test* sentences (read
   once, at the end), and CPU latency at batch 32 x 128 and 1 x 128 tokens, interleaved, with
   its spread (``archlearn.structure.measure.compare_latency``).

With ``oneshot=True`` (``archlearn run minilm-distill --oneshot``) nothing is trained: the
teacher is compressed by ``al.compress`` on ``calibration`` (default 512) train sentences, at
``budget`` (default ``{"macs": 0.5}``), and compared with the original and Torch-Pruning at the
same MACs, neither distilled (``one_shot.py``; rows ``original``, ``oneshot``,
``oneshot-int8``, ``torch-pruning``).

``model_dir`` (``--model-dir DIR``) replaces all-MiniLM-L6-v2 by any local BERT sentence
encoder: a folder with ``config.json`` (``model_type`` "bert"), ``model.safetensors`` and
``tokenizer.json`` (:func:`archlearn.models.pretrained.load_encoder_dir`).

Every saved model reloads with ``al.load(dir, model=BertModel(BertConfig.from_json_file(
dir / "config.json")))`` (the recipe replays on a fresh original; a truncated model's config
has its own depth).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlearn as al
from archlearn.budget import parse_budget
from archlearn.compression.calibration import MIN_EXAMPLES
from archlearn.compression.warm_start import expand
from archlearn.data.text import digest, length_groups, load_text, package_sentences
from archlearn.distillation import distill
from archlearn.errors import ArchlearnError
from archlearn.io import jsonable, write_json
from archlearn.jobs.minilm_distill import baselines, evaluate, one_shot
from archlearn.jobs.minilm_distill.training import Schedule, TeacherCache, distill_train
from archlearn.models.bert import keeping, truncated
from archlearn.provenance import provenance
from archlearn.seeding import seeded
from archlearn.structure.measure import count_macs

#: the data this job reads: the stdlib sentences without a path, a text file with one
DATA = ("stdlib-docs", "text-file")
DEFAULT_BUDGET = {"macs": 0.45}
DEFAULT_STEPS = 4000
#: the share of the steps that train the gates (from the one-shot start); the shrunk dense
#: model is distilled for the rest (with ``start="full"`` the gates train for every step)
GATED = 0.05
BATCH_SIZE = 32
HIDDEN_WEIGHT = 1.0
SIMILARITY_WEIGHT = 0.0
#: unlabelled sentences from the installed packages' docstrings added to the training sentences
#: (off: see the module docstring)
EXTRA = 0
#: the truncation baseline (``baselines=True``): the first 3 of 6 layers, about archlearn's MACs
BASELINE_LAYERS = (3,)
EXAMPLE_TOKENS = 128  # MACs are counted for one sentence of this many tokens
INT8 = "-int8"  # the row of a model's dynamic int8 version: its name and this
STARTS = ("oneshot", "full")  # where the distilled student's gates start


def run(
    out: Path,
    *,
    seeds: int = 1,
    first_seed: int = 0,
    dataset: str = "stdlib-docs",
    path: str | None = None,
    progress: bool = True,
    options: dict[str, Any] | None = None,
    method: str = "tsrelu",
    command: str = "archlearn run minilm-distill",
    budget: dict[str, float] | None = None,
    steps: int | None = None,
    lr: float = 5e-4,
    truncate: Sequence[int] | None = None,
    torch_pruning: bool | None = None,
    baselines: bool = False,
    latency_rounds: int = 10,
    threads: int = 2,
    teacher: Any = None,
    tokenizer=None,
    oneshot: bool = False,
    calibration: int | None = None,
    model_dir: str | None = None,
    start: str | None = None,
    gated: float | None = None,
    similarity: float = SIMILARITY_WEIGHT,
    validate_every: int = 0,
    extra: int | None = None,
) -> dict[str, Any]:
    """Run the job for seeds ``first_seed`` .. ``first_seed + seeds - 1``; write
    ``results.json`` and the models under ``out``.

    ``teacher``/``tokenizer`` replace all-MiniLM-L6-v2 and its tokenizer (the tests use a
    tiny random BERT); the teacher must be a transformers ``BertModel``. ``steps`` defaults to
    :data:`DEFAULT_STEPS`. ``oneshot``: compress the teacher with ``al.compress`` on
    ``calibration`` train sentences (default 512) instead of distilling (no ``steps``, no method
    options; ``budget`` defaults to ``{"macs": 0.5}``; no truncation rows). ``model_dir``: a
    local BERT sentence encoder's folder instead of all-MiniLM-L6-v2 (see the module docstring).
    ``start``: where the distilled student's gates start, ``"oneshot"`` (default: at
    ``al.compress``'s decision on ``calibration`` sentences, default 512) or ``"full"`` (all-on).
    ``gated``: the share of the steps the gates train before the student is shrunk and
    distilled dense (default :data:`GATED`; 1 with ``start="full"``). ``truncate`` (layer
    counts) and ``torch_pruning`` add the baselines, distilled the same way (the benchmark
    does); ``baselines`` turns on both (``truncate`` :data:`BASELINE_LAYERS`); without it
    there is no truncation, and Torch-Pruning runs only with ``oneshot`` (undistilled, a
    second). ``similarity``: the weight of the in-batch similarity-matrix loss term.
    ``validate_every``: every so many steps, the student's fidelity on the validation
    sentences goes into the history (a validation curve; 0: none). ``extra``: so many
    sentences of the installed packages' docstrings (:func:`archlearn.data.text.
    package_sentences`, never one of the validation or test sentences) join the training
    sentences of the distillation (default :data:`EXTRA`: none); calibration draws from the
    corpus's own training sentences only.
    """
    began = time.perf_counter()
    if oneshot:
        if steps is not None:
            raise ArchlearnError("--oneshot trains nothing: leave out --steps")
        if options:
            raise ArchlearnError("--oneshot attaches no gates: leave out the method options (-o)")
        if start is not None or gated is not None or extra is not None:
            raise ArchlearnError("--oneshot trains nothing: leave out --start, --gated and "
                                 "--extra")
        if truncate:
            raise ArchlearnError("--oneshot compares with Torch-Pruning undistilled; "
                                 "truncation needs distillation: leave out truncate")
    start = start or "oneshot"
    if truncate is None:
        truncate = BASELINE_LAYERS if baselines and not oneshot else ()
    torch_pruning = baselines or oneshot if torch_pruning is None else torch_pruning
    if start not in STARTS:
        raise ArchlearnError(f"--start is one of {list(STARTS)}, got {start!r}")
    if gated is None:
        gated = GATED if start == "oneshot" else 1.0
    if not 0 < gated <= 1:
        raise ArchlearnError(f"--gated is the share of the steps that train the gates, in "
                             f"(0, 1]; got {gated}")
    if oneshot or start == "oneshot":
        calibration = one_shot.CALIBRATION if calibration is None else calibration
        if calibration < MIN_EXAMPLES:
            raise ArchlearnError(f"--calibration takes at least {MIN_EXAMPLES} sentences, "
                                 f"got {calibration}")
    elif calibration is not None:
        raise ArchlearnError("--calibration is the one-shot calibration set: give --oneshot "
                             "or --start oneshot")
    steps = DEFAULT_STEPS if steps is None else steps
    extra = 0 if oneshot else EXTRA if extra is None else extra
    if extra < 0:
        raise ArchlearnError(f"--extra is a number of sentences, >= 0; got {extra}")
    budget = dict(budget or (one_shot.BUDGET if oneshot else DEFAULT_BUDGET))
    parse_budget(budget)  # a bad budget is one error now, not after the teacher's pass
    if dataset not in DATA or (dataset == "text-file") != (path is not None):
        raise ArchlearnError(f"minilm-distill reads the stdlib sentences (no path) or a text "
                             f"file (--data-path); got data {dataset!r} with path {path!r}")
    if steps < 1:
        raise ArchlearnError(f"steps must be >= 1, got {steps}")
    model_name = "all-MiniLM-L6-v2"
    if model_dir is not None:
        from archlearn.models.pretrained import load_encoder_dir

        if teacher is not None or tokenizer is not None:
            raise ArchlearnError("give model_dir or teacher and tokenizer, not both")
        teacher, tokenizer = load_encoder_dir(model_dir)  # checked before the data is read
        model_name = Path(model_dir).name
    splits = load_text(path)
    if teacher is None:
        from archlearn.models.pretrained import load_minilm

        teacher = load_minilm()
    if tokenizer is None:
        from archlearn.models.pretrained import load_tokenizer

        tokenizer = load_tokenizer()
    teacher.eval()  # frozen: the distiller runs it without gradients
    bad = [] if oneshot else [k for k in truncate
                              if not 1 <= k < teacher.config.num_hidden_layers]
    if bad:
        raise ArchlearnError(f"truncate keeps 1 to {teacher.config.num_hidden_layers - 1} "
                             f"layers, got {bad}")
    parts = ("train", "valid", "test") if validate_every else ("train", "test")
    rows = {part: _encode(tokenizer, getattr(splits, part)) for part in parts}
    more = package_sentences(extra, exclude=[*splits.train, *splits.valid, *splits.test]) \
        if extra else []
    rows["extra"] = _encode(tokenizer, more) if more else []
    example = torch.full((1, EXAMPLE_TOKENS), 1000 % teacher.config.vocab_size)
    teacher_test = evaluate.sentence_embeddings(teacher, rows["test"])
    runs, models = [], []
    distiller = cache = None
    check: Callable[[nn.Module], dict[str, float]] | None = None
    cache_seconds = 0.0
    if not oneshot:  # the teacher's outputs for every train sentence, once for every seed
        t0 = time.perf_counter()
        distiller = distill(teacher, hidden=HIDDEN_WEIGHT, similarity=similarity)
        cache = TeacherCache(distiller, rows["train"] + rows["extra"], progress=progress)
        cache_seconds = time.perf_counter() - t0
        if validate_every:
            teacher_valid = evaluate.sentence_embeddings(teacher, rows["valid"])

            def validate(model: nn.Module) -> dict[str, float]:
                figures = evaluate.fidelity(model, rows["valid"], teacher_valid)
                return {f"valid_{k}": v for k, v in figures.items()}

            check = validate
    for seed in range(first_seed, first_seed + seeds):
        if oneshot:
            assert calibration is not None
            record, built = one_shot.one_seed(
                out / f"seed{seed}", seed, teacher, rows, example, teacher_test, budget=budget,
                calibration=calibration, torch_pruning=torch_pruning,
                latency_rounds=latency_rounds, threads=threads, progress=progress)
        else:
            record, built = _one_seed(
                out / f"seed{seed}", seed, teacher, rows, example, teacher_test, method=method,
                options=options or {}, budget=budget, schedule=Schedule(steps=steps, lr=lr),
                truncate=truncate, torch_pruning=torch_pruning, latency_rounds=latency_rounds,
                threads=threads, progress=progress, calibration=calibration,
                distiller=distiller, cache=cache, gated=max(1, round(gated * steps)),
                check=check, check_every=validate_every)
        runs.append(record)
        models.append(built)
    settings: dict[str, Any] = (
        {"oneshot": True, "calibration": calibration, "budget": budget} if oneshot else
        {"steps": steps, "lr": lr, "batch_size": BATCH_SIZE, "method": method,
         "options": options or {}, "budget": budget, "hidden_weight": HIDDEN_WEIGHT,
         "similarity_weight": similarity, "start": start, "calibration": calibration,
         "gated": gated, "truncate": list(truncate), "torch_pruning": torch_pruning,
         "bf16": Schedule(steps=steps).bf16,  # bfloat16 autocast where the CPU has it
         "extra": {"requested": extra, "sentences": len(more),
                   "sha256": digest(more),
                   "source": "docstrings of the installed packages (site-packages)"},
         "controller": "lagrangian" if start == "oneshot" else "multiplier"})
    results = {
        "provenance": provenance(command, data=splits.record(), seeds=seeds, **settings,
                                 model=model_name, model_dir=model_dir,
                                 sentence_tokens_mean=statistics.fmean(
                                     len(r) for r in rows["train"])),
        "runs": runs,
        "mean": mean_over_seeds(runs),
        "seconds": time.perf_counter() - began,
    }
    if not oneshot:
        results["teacher_cache_seconds"] = cache_seconds
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    results["models"] = models  # the evaluated models of each seed (not in the JSON)
    results["tokenizer"] = tokenizer  # what encoded them: to score more text the same way
    return results


def _encode(tokenizer, sentences: list[str]) -> list[list[int]]:
    """Token ids at each sentence's natural length (at most 128 tokens: the model's limit)."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(EXAMPLE_TOKENS)
    return [e.ids for e in tokenizer.encode_batch(sentences)]


def _one_seed(out: Path, seed: int, teacher: Any, rows, example, teacher_test, *,
              method, options, budget, schedule: Schedule, truncate, torch_pruning,
              latency_rounds, threads, progress, calibration: int | None, distiller, cache,
              gated: int, check, check_every: int,
              ) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    t0 = time.perf_counter()
    # batches over the training and extra sentences: every row the teacher's cache holds
    plan = length_groups([len(r) for r in cache.rows], BATCH_SIZE, schedule.steps, seed)
    seconds: dict[str, Any] = {}
    models: dict[str, nn.Module] = {"original": teacher}
    training: dict[str, dict] = {}
    watch = {"check": check, "check_every": check_every}

    record: dict[str, Any] = {"seed": seed}
    start: dict[str, Any] = {}
    if calibration is not None:  # learning starts from the one-shot decision
        t1 = time.perf_counter()
        calibrate, picked = one_shot.calibration_sentences(rows["train"], seed, calibration)
        first = al.compress(teacher, calibrate, budget=budget, example_inputs=example,
                            progress=progress).eval()
        models["oneshot"] = first
        record["compress"] = jsonable(first.archlearn_report)
        record["calibration"] = {"sentences": len(picked)}
        start = {"init": first, "controller": "lagrangian"}
        seconds["compress"] = time.perf_counter() - t1

    # archlearn: gates on heads and FFN neurons for the first `gated` steps, then shrunk and
    # distilled dense for the rest of the same schedule
    with seeded(seed):
        student = expand(teacher, start["init"]) if start else _copy(teacher)
        learner = al.attach(student, example, method=method, total_steps=gated,
                            budget=budget, **start, **options)
        training["archlearn"] = distill_train(student, distiller, plan, cache, schedule,
                                              learner=learner, steps=gated, progress=progress,
                                              desc=f"archlearn seed {seed} (gated)", **watch)
    architecture = learner.architecture()
    small = learner.shrink().eval()
    learner.detach()
    if gated < schedule.steps:  # no dropout, a fixed plan: nothing left to seed
        dense = distill_train(small, distiller, plan, cache, schedule, first=gated,
                              progress=progress, desc=f"archlearn seed {seed}", **watch)
        training["archlearn"]["history"] += dense["history"]
        training["archlearn"]["seconds"] += dense["seconds"]
    models["archlearn"] = small
    models["archlearn" + INT8] = evaluate.int8(small)
    target = count_macs(small, example)

    for k in truncate:
        name = f"first-{k}-layers"
        models[name] = truncated(teacher, k)
        training[name] = distill_train(models[name], distiller, plan, cache, schedule,
                                       progress=progress, desc=f"{name} seed {seed}", **watch)
    if torch_pruning:
        t1 = time.perf_counter()
        selection, ratio = baselines.torch_pruning_selection(
            teacher, example, target, baselines.macs_counter(teacher, example))
        pruned = keeping(teacher, *selection, example)
        seconds["torch_pruning_selection"] = time.perf_counter() - t1
        training["torch-pruning"] = distill_train(pruned, distiller, plan, cache, schedule,
                                                  progress=progress,
                                                  desc=f"torch-pruning seed {seed}", **watch)
        training["torch-pruning"]["ratio"] = ratio
        models["torch-pruning"] = pruned
    seconds["training"] = {k: v["seconds"] for k, v in training.items()}

    rows_out = evaluate_rows(models, out, example, rows["test"], teacher_test)
    for name, row in rows_out.items():
        if name in training:
            row["final_loss"] = training[name]["history"][-1]["embedding"]
    t2 = time.perf_counter()
    timing = evaluate.latency(models, rounds=latency_rounds, threads=threads)
    seconds["latency"] = time.perf_counter() - t2
    for name, row in rows_out.items():
        row["latency"] = {shape: r[name] for shape, r in timing.items()}
    seconds["total"] = time.perf_counter() - t0
    record.update(rows=rows_out, architecture=_jsonable(architecture),
                  history=training["archlearn"]["history"], seconds=seconds, gated=gated)
    if check_every:  # every student's validation curve
        record["validation"] = {
            name: [{k: h[k] for k in h if k == "step" or k.startswith("valid_")}
                   for h in run["history"] if "valid_cosine" in h]
            for name, run in training.items()}
    return record, models


def evaluate_rows(models: dict[str, nn.Module], out: Path, example: torch.Tensor,
                  test_rows, teacher_test: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Per model: shape, size and MACs, fidelity on the test sentences, and where it was saved.

    An int8 model (``NAME-int8``) has the shape and MACs of the float model it quantizes
    (counted on that one: the packed int8 weights are no parameters, and MACs count the same
    multiply-accumulates) and is not saved (``al.save`` stores float weights).
    """
    rows_out = {}
    for name, model in models.items():
        model.eval()
        source = name.removesuffix(INT8)
        row = evaluate.describe(models[source], example)
        if source != name:
            row["int8"] = True
        row.update(evaluate.fidelity(model, test_rows, teacher_test))
        if name != "original" and source == name:
            row["saved"] = str(_save(model, out / "models" / name))
        rows_out[name] = row
    return rows_out


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _save(model: Any, folder: Path) -> Path:
    """``al.save`` plus the model's ``config.json`` (its depth), to rebuild it for ``al.load``."""
    al.save(model, folder)
    (folder / "config.json").write_text(model.config.to_json_string())
    return folder


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=float))


def mean_over_seeds(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per model: params, MACs, fidelity and latency (median, speed-up), averaged over runs."""
    keys = ("params", "macs", "cosine", "topk_agreement")
    out = {}
    for name in runs[0]["rows"]:
        rows = [r["rows"][name] for r in runs]
        out[name] = {k: statistics.fmean(float(row[k]) for row in rows) for k in keys}
        for shape in evaluate.LATENCY_SHAPES:
            out[name][f"{shape}_ms"] = statistics.fmean(
                row["latency"][shape]["median_ms"] for row in rows)
            out[name][f"{shape}_speedup"] = statistics.fmean(
                row["latency"][shape]["speedup"] for row in rows)
    return out


def table(results: dict[str, Any]) -> str:
    """The job's table: per model its shape, size, latency and fidelity (mean over seeds)."""
    p = results["provenance"]
    data = p["data"]
    sizes = data["sizes"]
    first = results["runs"][0]["rows"]
    full_macs = first["original"]["macs"]
    split = (f"{sizes['train']} train / {sizes['valid']} valid / {sizes['test']} test "
             f"sentences")
    model = p.get("model", "all-MiniLM-L6-v2")
    started = "at al.compress's decision" if p.get("start") == "oneshot" else "all-on"
    if p.get("oneshot"):
        lines = [
            f"{model} compressed one-shot by al.compress, no training: "
            f"{results['runs'][0]['calibration']['sentences']} calibration sentences of "
            f"{data['name']} ({split}), budget {p['budget']}, torch-pruning at its MACs "
            f"undistilled, mean of {p['seeds']} seed(s)",
        ]
    else:
        lines = [
            f"{model} distilled on {data['name']} ({split}"
            + (f", + {p['extra']['sentences']} package docstring sentences"
               if (p.get("extra") or {}).get("sentences") else "")
            + f"), {p['steps']} steps, "
            f"method {p['method']}, budget {p['budget']}, gates started {started}, mean of "
            f"{p['seeds']} seed(s)",
        ]
    head = (f"{'model':<16}{'heads per layer':<20}{'FFN per layer':<32}{'params':>8}"
            f"{'MACs':>8}{'ms 32x128':>11}{'speed-up':>10}{'ms 1x128':>10}{'cosine':>8}"
            f"{'top-10':>8}")
    lines += [head, "-" * len(head)]
    for name, row in first.items():
        m = results["mean"][name]
        heads = " ".join(str(h) for h in row["heads"])
        ffn = " ".join(str(f) for f in row["ffn"])
        lines.append(
            f"{name:<16}{heads:<20}{ffn:<32}{m['params'] / 1e6:>7.1f}M"
            f"{100 * m['macs'] / full_macs:>7.1f}%{m['b32x128_ms']:>11.0f}"
            f"{m['b32x128_speedup']:>9.2f}x{m['b1x128_ms']:>10.1f}{m['cosine']:>8.4f}"
            f"{m['topk_agreement']:>8.3f}")
    timed = first["original"]["latency"]["b32x128"]
    lines.append(
        f"MACs of one 128-token sentence (100% = {full_macs / 1e6:,.1f} M); latency: median of "
        f"{timed['rounds']} interleaved rounds, {timed['threads']} threads (load average "
        f"{p['load_average_1min']} at the start); speed-up at 32x128 against the original; "
        f"cosine and top-10 neighbour agreement with the teacher on the test sentences; "
        f"{INT8.removeprefix('-')}: the model above with dynamic int8 Linear layers")
    if p.get("oneshot"):
        report = results["runs"][0]["compress"]
        lines.append(
            f"al.compress reached {100 * report['budget']['reached']:.1f}% of the "
            f"{report['budget']['kind']} (budget {100 * report['budget']['budget']:.1f}%) in "
            f"{report['seconds']['total']:.1f} s, {len(report['refit'])} layer(s) re-fitted "
            f"(seed {results['runs'][0]['seed']})")
    saved = next(row["saved"] for row in first.values() if "saved" in row)
    lines.append(f"heads/FFN per layer of seed 0; models saved under {Path(saved).parent}")
    return "\n".join(lines)
