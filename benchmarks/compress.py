"""One-shot compression of trained models, no training after it: archlearn against Torch-Pruning.

    python -m benchmarks.compress lenet --seeds 3    # -> results/compress_lenet.json
    python -m benchmarks.compress minilm --seeds 3   # -> results/compress_minilm.json
    python -m benchmarks.compress all --seeds 3      # both

**LeNet-5** (20-50-500-10) on mnist5k (3,500 train / 500 validation carved from the 4,000
training images, stratified / 1,000 test; the split of ``benchmarks.budgets``): per seed the dense
model is trained ``--epochs`` (20) epochs exactly as ``benchmarks.budgets`` trains its baseline
(weights drawn under ``seeded(seed)``, Adam 1e-3, batch 64, batches seeded), its weights cached
as safetensors under ``--cache`` (keyed by the seed and a hash of the training settings and
data, so a rerun skips training). Calibration: ``--calibration`` (512) training images drawn with
the seed (never a test image). For each MACs budget (50%, 25%, 10%):

* ``archlearn``: ``al.compress(model, calibration, budget={"macs": b})``: label-free scores,
  exact allocation, shrinking, ridge re-fit of the reading layers; ``archlearn-taylor``: the
  same with a Taylor score of the cross-entropy on the labelled calibration images
  (``loss=cross_entropy, targets=labels``), the information Torch-Pruning's Taylor rows get;
* ``tp-l1-*`` / ``tp-taylor-*``: Torch-Pruning's ``MagnitudeImportance(p=1)`` and
  ``TaylorImportance`` (its gradients from one backward of the cross-entropy on the labelled
  calibration images), one shot, the final Linear ignored, either ``global`` (the least important
  channels of the whole net) or ``uniform`` (the same ratio in every layer); the ratio is
  bisected until the MACs land on archlearn's reached MACs (the JSON records the gap).

No row is trained after compression. MACs are counted on the built model
(``archlearn.structure.measure.count_macs``, one image). The test split is read once per model.
*Seconds* is the compression itself: ``al.compress``; Torch-Pruning's one pruning at the found
ratio, with the Taylor gradient (its bisection is ``search_seconds``). Latency: every model of a
seed timed together (``compare_latency``: batch 256, 1 thread, interleaved rounds); the speed-up
is the dense model's median over the row's.

**all-MiniLM-L6-v2**: per seed ``--calibration`` (512) sentences drawn with the seed from the
train split of the stdlib-docs corpus (``archlearn.data.text.load_text``), padded in
length-sorted batches of 32; ``al.compress`` at ``{"macs": 0.5}`` (MACs of one 128-token
sentence); Torch-Pruning one shot (heads and FFN neurons, L2-magnitude,
``jobs/minilm_distill/baselines.torch_pruning_selection``) at archlearn's MACs; the
training-free recipe of ``research/ANCHORS.md`` (``benchmarks.ridge_recipe``: K-prune scores,
greedy allocation, float64 ridge re-fit) on the same calibration batches at archlearn's MACs;
no distillation.
Fidelity to the original (mean cosine of the mean-pooled embeddings, top-10 neighbour
agreement) on the corpus's test sentences *and* on text of another kind: the overview pages
(section 7) of the Linux man-pages project (Debian's ``manpages``), stripped of roff, split into
sentences, its hash-bucket test split (:func:`man_pages`). Latency: ``evaluate.latency`` (batch 32
x 128 and 1 x 128 tokens, 2 threads, interleaved rounds).

The JSON is rewritten after each seed, so a run stopped early keeps the seeds it finished.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import shlex
import statistics
import sys
import time
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.data.text import TextSplits, dedupe, prose_sentences, split_sentences
from archlearn.errors import ArchlearnError
from archlearn.io import atomic_write, jsonable, write_json
from archlearn.metrics import accuracy
from archlearn.provenance import add_allow_dirty, provenance
from archlearn.seeding import seeded
from archlearn.structure.measure import compare_latency, count_macs, count_params
from benchmarks.ridge_recipe import encoder_macs, ridge_recipe

RESULTS = Path(__file__).parent / "results"
LENET_JSON, MINILM_JSON = "compress_lenet.json", "compress_minilm.json"
CACHE = Path("runs/cache/compress")
BUDGETS = (0.5, 0.25, 0.1)
MINILM_BUDGET = 0.5
CALIBRATION = 512
EPOCHS = 20
EXAMPLE = torch.zeros(1, 1, 28, 28)
TOKENS = 128  # MiniLM's MACs are those of one sentence of this many tokens
#: Torch-Pruning rows: name -> (importance, global pruning)
TP = {"tp-l1-global": ("l1", True), "tp-l1-uniform": ("l1", False),
      "tp-taylor-global": ("taylor", True), "tp-taylor-uniform": ("taylor", False)}
#: archlearn rows: name -> its score (label-free energy; Taylor with the labelled cross-entropy)
ARCHLEARN = {"archlearn": "energy", "archlearn-taylor": "taylor"}
METHODS = (*ARCHLEARN, *TP)
MAN7 = Path("/usr/share/man/man7")


# --- shared ------------------------------------------------------------------------------------

def stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value) and n."""
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "n": len(v)}


def fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer (to check that compressing left the input alone)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def compress_function() -> Any:
    """``al.compress``; a clear error on an archlearn without it."""
    fn: Any = getattr(al, "compress", None)
    if not callable(fn) or isinstance(fn, types.ModuleType):
        raise ArchlearnError("this archlearn has no al.compress")
    return fn


def run_compress(model: nn.Module, calibration: list, budget: dict[str, float], *,
                 example: Any = None, progress: bool = False,
                 **options: Any) -> tuple[nn.Module, dict, float]:
    """``al.compress`` timed: the small model, its report and the seconds it took.

    ``example`` (the input whose MACs the budget counts) is passed as ``example_inputs``;
    ``options`` (``loss``, ``targets``) go to ``al.compress`` as they are.
    """
    compress = compress_function()
    options["progress"] = progress
    if example is not None:
        options["example_inputs"] = example
    start = time.perf_counter()
    result = compress(model, calibration, budget=budget, **options)
    seconds = time.perf_counter() - start
    return result.eval(), jsonable(result.archlearn_report), seconds


# --- LeNet-5 ----------------------------------------------------------------------------------

def lenet_splits():
    return data.load("mnist5k", valid=500)


def training_settings(s, epochs: int) -> dict[str, Any]:
    """What the cached weights depend on (hashed into the cache key)."""
    return {"model": "lenet5 20-50-500-10", "epochs": epochs, "optimizer": "Adam lr 1e-3",
            "batch_size": 64, "loss": "cross-entropy", "loop": "benchmarks.budgets.fit",
            "data": s.record()}


def trained_lenet(s, seed: int, epochs: int, cache: Path) -> tuple[nn.Module, dict]:
    """LeNet-5 trained ``epochs`` on ``s.train`` for ``seed``, from the cache when it is there.

    Returns the model (eval mode) and ``{"cached", "seconds", "path", "key"}``; ``seconds`` is the
    training time when it was trained (also for a cached model).
    """
    import safetensors.torch

    from benchmarks.budgets import fit, loader

    settings = training_settings(s, epochs)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache) / f"lenet5-seed{seed}-{key}.safetensors"
    with seeded(seed):
        model = models.lenet5()
    if path.exists():
        state = safetensors.torch.load_file(str(path))
        model.load_state_dict(state)
        with safetensors.safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        info = {"cached": True, "seconds": float(meta.get("seconds", "nan"))}
    else:
        start = time.perf_counter()
        fit(model, loader(s, seed), epochs)
        seconds = time.perf_counter() - start
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        meta = {"seconds": f"{seconds:.3f}", "seed": str(seed),
                "settings": json.dumps(settings, sort_keys=True)}
        atomic_write(path, lambda tmp: safetensors.torch.save_file(state, tmp, metadata=meta))
        info = {"cached": False, "seconds": seconds}
    return model.eval(), {**info, "path": str(path), "key": key}


def calibration_images(s, seed: int, n: int, batch: int = 128):
    """``n`` training images drawn with ``seed``: the images and the labels in batches."""
    x, y = s.train.tensors
    if not 0 < n <= len(y):
        raise ArchlearnError(f"calibration takes 1 to {len(y)} training images, got {n}")
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    xc, yc = x[pick], y[pick]
    return list(xc.split(batch)), list(yc.split(batch))


def architecture(model: nn.Module) -> str:
    """Output widths of the weight layers, in order ("20-50-500-10")."""
    widths = [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
              for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return "-".join(str(w) for w in widths)


def _describe(model: nn.Module, full_macs: int) -> dict[str, Any]:
    macs = count_macs(model, EXAMPLE)
    return {"architecture": architecture(model), "params": count_params(model), "macs": macs,
            "macs_fraction": macs / full_macs}


def lenet_seed(s, seed: int, *, epochs: int, calibration: int, budgets: Sequence[float],
               cache: Path, tp_iterations: int = 20, latency_rounds: int = 30,
               progress: bool = False) -> dict[str, Any]:
    """Every row of one seed: the dense model, archlearn and Torch-Pruning at each budget."""
    from benchmarks.peers import prune_to, taylor_grads, tp_pruned

    dense, trained = trained_lenet(s, seed, epochs, cache)
    full = count_macs(dense, EXAMPLE)
    batches, labels = calibration_images(s, seed, calibration)
    xc, yc = torch.cat(batches), torch.cat(labels)
    before = fingerprint(dense)
    nets: dict[str, nn.Module] = {"dense": dense}
    rows = {"dense": {"method": "dense", "budget": 1.0, **_describe(dense, full),
                      "seconds": 0.0}}
    grads = taylor_grads(dense, (xc, yc))
    for budget in budgets:
        for name, score in ARCHLEARN.items():
            options = ({} if score == "energy" else
                       {"loss": nn.functional.cross_entropy, "targets": labels})
            small, report, seconds = run_compress(dense, batches, {"macs": budget},
                                                  progress=progress, **options)
            row = {"method": name, "budget": budget, **_describe(small, full),
                   "seconds": seconds, "report_budget": report.get("budget")}
            nets[f"{name}@{budget}"], rows[f"{name}@{budget}"] = small, row
        ours = rows[f"archlearn@{budget}"]
        for name, (importance, global_pruning) in TP.items():
            g = grads if importance == "taylor" else None
            start = time.perf_counter()
            _, ratio = prune_to(dense, EXAMPLE, ours["macs"], importance, g,
                                iterations=tp_iterations, global_pruning=global_pruning,
                                size=lambda m: count_macs(m, EXAMPLE))
            search = time.perf_counter() - start
            start = time.perf_counter()  # what one prune at a known ratio costs a user
            if importance == "taylor":
                g = taylor_grads(dense, (xc, yc))
            pruned = tp_pruned(dense, EXAMPLE, ratio, importance, g, global_pruning).eval()
            seconds = time.perf_counter() - start
            row = {"method": name, "budget": budget, **_describe(pruned, full),
                   "seconds": seconds, "search_seconds": search, "ratio": ratio}
            row["macs_vs_archlearn"] = row["macs"] / ours["macs"]
            nets[f"{name}@{budget}"], rows[f"{name}@{budget}"] = pruned, row
    untouched = fingerprint(dense) == before
    for key, model in nets.items():
        rows[key]["accuracy"] = accuracy(model, s.test)  # the test split, read once per model
    timing = compare_latency(nets, s.train.tensors[0][:256], threads=1, rounds=latency_rounds)
    base = timing["dense"]["median_ms"]
    for key, t in timing.items():
        rows[key].update(latency_ms=t["median_ms"], latency_iqr_ms=t["iqr_ms"],
                         speedup=base / t["median_ms"])
    return {"seed": seed, "training": trained, "input_untouched": untouched,
            "rows": list(rows.values())}


def lenet_summary(runs: list[dict]) -> list[dict[str, Any]]:
    """Per (method, budget): mean, std and n over seeds of every figure."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            groups.setdefault((row["method"], row["budget"]), []).append(row)
    out = []
    for (method, budget), rows in groups.items():
        entry: dict[str, Any] = {"method": method, "budget": budget, "n": len(rows)}
        for k in ("accuracy", "macs_fraction", "params", "seconds", "speedup", "latency_ms"):
            entry[k] = stats([r[k] for r in rows])
        if method != "dense":
            dense = {r["seed"]: r for r in _rows(runs, "dense", 1.0)}
            entry["accuracy_drop"] = stats([dense[r["seed"]]["accuracy"] - r["accuracy"]
                                            for r in _rows(runs, method, budget)])
        out.append(entry)
    return out


def _rows(runs: list[dict], method: str, budget: float) -> list[dict]:
    return [{**row, "seed": run["seed"]} for run in runs for row in run["rows"]
            if row["method"] == method and row["budget"] == budget]


def lenet_comparison(runs: list[dict], budgets: Sequence[float]) -> dict[str, Any]:
    """Per budget and archlearn row: its accuracy minus each Torch-Pruning row's (mean over
    seeds, seeds where it is higher, and the largest MACs gap between the two)."""
    out: dict[str, Any] = {}
    for budget in budgets:
        entry: dict[str, Any] = {}
        for method in ARCHLEARN:
            ours = {r["seed"]: r for r in _rows(runs, method, budget)}
            versus: dict[str, Any] = {}
            for name in TP:
                theirs = {r["seed"]: r for r in _rows(runs, name, budget)}
                seeds = sorted(set(ours) & set(theirs))
                if not seeds:
                    continue
                versus[name] = {
                    "accuracy_difference": statistics.fmean(
                        ours[s]["accuracy"] - theirs[s]["accuracy"] for s in seeds),
                    "seeds_won": sum(ours[s]["accuracy"] > theirs[s]["accuracy"]
                                     for s in seeds),
                    "seeds": len(seeds),
                    "macs_gap_max": max(abs(theirs[s]["macs"] / ours[s]["macs"] - 1)
                                        for s in seeds)}
            if versus:
                entry[method] = versus
        out[str(budget)] = entry
    return out


def run_lenet(out: Path = RESULTS, *, seeds: int = 3, first_seed: int = 0,
              epochs: int = EPOCHS, calibration: int = CALIBRATION,
              budgets: Sequence[float] = BUDGETS, cache: Path = CACHE, tp_iterations: int = 20,
              latency_rounds: int = 30, progress: bool = True,
              command: str = "python -m benchmarks.compress lenet") -> dict[str, Any]:
    """Every seed in turn; ``out / compress_lenet.json`` rewritten after each."""
    s = lenet_splits()
    start = time.perf_counter()
    runs: list[dict] = []
    results: dict[str, Any] = {}
    for seed in range(first_seed, first_seed + seeds):
        runs.append(lenet_seed(s, seed, epochs=epochs, calibration=calibration,
                               budgets=budgets, cache=cache, tp_iterations=tp_iterations,
                               latency_rounds=latency_rounds, progress=progress))
        results = {
            "provenance": provenance(
                command, s, seeds=len(runs), seeds_planned=seeds, epochs=epochs,
                calibration=calibration, budgets=list(budgets), tp_iterations=tp_iterations,
                latency={"batch": 256, "threads": 1, "rounds": latency_rounds},
                training=training_settings(s, epochs) | {"data": s.name}),
            "runs": runs,
            "summary": lenet_summary(runs),
            "comparison": lenet_comparison(runs, budgets),
            "seconds": time.perf_counter() - start,
        }
        write_json(Path(out) / LENET_JSON, results)
        if progress:
            print(lenet_table(results), flush=True)
    return results


def lenet_table(results: dict[str, Any]) -> str:
    lines = [f"{'budget':>7} {'method':<18}{'n':>3}{'acc %':>8}{'sd':>6}{'MACs %':>8}"
             f"{'params':>9}{'s':>7}{'speed-up':>9}"]
    for e in results["summary"]:
        lines.append(f"{100 * e['budget']:>6.0f}% {e['method']:<18}{e['n']:>3}"
                     f"{100 * e['accuracy']['mean']:>8.2f}{100 * e['accuracy']['std']:>6.2f}"
                     f"{100 * e['macs_fraction']['mean']:>8.1f}{e['params']['mean']:>9.0f}"
                     f"{e['seconds']['mean']:>7.2f}{e['speedup']['mean']:>8.2f}x")
    return "\n".join(lines)


# --- text of another kind: the Linux man-pages project's overview pages -----------------------

_ESCAPES = [(re.compile(p), r) for p, r in (
    (r"\\f(\[[^\]]*\]|\(..|.)", ""),          # font changes
    (r"\\\*(\[[^\]]*\]|\(..|.)", ""),         # strings
    (r"\\\((em|en)|\\\[(em|en)\]", " - "),    # dashes
    (r"\\\((lq|rq|dq)|\\\[(lq|rq|dq)\]", '"'),
    (r"\\\((oq|cq|aq)|\\\[(oq|cq|aq)\]", "'"),
    (r"\\\[[^\]]*\]|\\\(..", ""),             # other special characters
    (r"\\-", "-"), (r"\\e", "\\\\"), (r"\\[&%:|^/,)]", ""), (r"\\ ", " "), (r"\\c$", ""))]
_FONT = {"B", "I", "SM", "SB"}                  # the arguments are text
_ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}  # the arguments are text, run together
_BLOCKS = {"EX": "EE", "nf": "fi", "TS": "TE", "EQ": "EN", "de": ".."}  # code, tables: skipped


def _unescape(text: str) -> str:
    for pattern, replacement in _ESCAPES:
        text = pattern.sub(replacement, text)
    return text


def _arguments(rest: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError:
        return rest.split()


def roff_paragraphs(source: str) -> str:
    """The running text of a man page's roff source, paragraphs separated by blank lines.

    Text lines are kept with their escapes resolved; font macros (``.B``, ``.IR``...) give
    their arguments as text; ``.MR name section`` gives ``name(section)``; every other request
    (``.PP``, ``.SH``, ``.TP``...) ends a paragraph; example, no-fill, table and equation
    blocks and comments are dropped.

    >>> roff_paragraphs('.SH NAME\\nA \\\\fBbold\\\\fP word.\\n.PP\\nSee\\n.BR signal (7).')
    'NAME\\n\\nA bold word.\\n\\nSee signal(7).'
    """
    paragraphs: list[str] = []
    current: list[str] = []
    skip_until: str | None = None

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for line in source.splitlines():
        if skip_until is not None:
            if re.match(rf"[.']\s*{re.escape(skip_until)}\b", line):
                skip_until = None
            continue
        if line.startswith((".\\\"", "'\\\"", "\\\"")):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"[.']\s*(\S+)\s*(.*)", line)
            if m is None:
                flush()
                continue
            request, rest = m.groups()
            if request in _BLOCKS:
                flush()
                skip_until = _BLOCKS[request]
            elif request in _FONT:
                if rest:
                    current.append(_unescape(" ".join(_arguments(rest))))
            elif request in _ALTERNATING:
                current.append(_unescape("".join(_arguments(rest))))
            elif request == "MR":
                a = _arguments(rest)
                if len(a) >= 2:
                    current.append(f"{a[0]}({a[1]}){''.join(a[2:])}")
            elif request == "SH" and rest:
                flush()
                current.append(_unescape(" ".join(_arguments(rest))))
                flush()
            else:
                flush()
            continue
        if not line.strip():
            flush()
            continue
        current.append(_unescape(line.strip()))
    flush()
    return "\n\n".join(paragraphs)


def man_pages(root: str | Path = MAN7) -> TextSplits:
    """The English sentences of the Linux man-pages project's pages in ``root`` (section 7:
    overviews, conventions and miscellany), split train/valid/test by a hash of each sentence.

    A page belongs to the project when its ``.TH`` line names "Linux man-pages" (other packages
    put pages in the same folder). The evaluation uses the test split: sentences none of us
    chose, of a kind the stdlib docstrings are not (kernel, network and C-library prose).
    """
    folder = Path(root)
    texts, versions = [], set()
    for path in sorted(folder.glob("*.7*")):
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                source = f.read()
        except OSError:
            continue
        title = re.search(r"^\.TH\s.*$", source, re.MULTILINE)
        if title is None or "Linux man-pages" not in title.group(0):
            continue
        found = re.search(r"Linux man-pages\s*([0-9][0-9.]*)?", title.group(0))
        versions.add((found.group(1) if found else None) or "unversioned")
        texts.append(roff_paragraphs(source))
    if not texts:
        raise ArchlearnError(f"no page of the Linux man-pages project in {folder}: install "
                             "Debian's manpages package (apt-get install manpages)")
    sentences = dedupe(s for text in texts for s in prose_sentences(text))
    return split_sentences(
        sentences, name="linux-man-pages-7",
        source=f"the {len(texts)} section-7 pages of the Linux man-pages project "
               f"{', '.join(sorted(versions))} in {folder}, roff stripped")


# --- all-MiniLM-L6-v2 ---------------------------------------------------------------------------

def transformers_ready() -> None:
    """Make transformers' model classes importable where torchvision is installed (the dev
    extra): transformers imports it, and its index wheel, a CUDA build, fails on the CPU torch
    until ``benchmarks.vision_shim`` declares its two operators. Without torchvision: nothing."""
    from benchmarks.vision_shim import import_torchvision

    try:
        import_torchvision()
    except ImportError:
        pass


def encode(tokenizer, sentences: Iterable[str]) -> list[list[int]]:
    """Token ids at each sentence's natural length, at most 128 (the job's encoding)."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(TOKENS)
    return [e.ids for e in tokenizer.encode_batch(list(sentences))]


def calibration_sentences(rows: list[list[int]], seed: int, n: int,
                          batch: int = 32) -> tuple[list[dict[str, torch.Tensor]], list[int]]:
    """``n`` rows drawn with ``seed``, in length-sorted padded batches of keyword tensors."""
    from archlearn.data.text import pad

    if not 0 < n <= len(rows):
        raise ArchlearnError(f"calibration takes 1 to {len(rows)} sentences, got {n}")
    picked = sorted(random.Random(seed).sample(range(len(rows)), n))
    ordered = sorted(picked, key=lambda i: len(rows[i]))
    batches = []
    for start in range(0, n, batch):
        ids, mask = pad([rows[i] for i in ordered[start:start + batch]])
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches, picked


def minilm_seed(seed: int, teacher: Any, rows: dict[str, list], reference: dict[str, Any], *,
                calibration: int, budget: float, tp_iterations: int, latency_rounds: int,
                threads: int, progress: bool) -> dict[str, Any]:
    """archlearn's, Torch-Pruning's and the ANCHORS.md recipe's one-shot MiniLM for one
    calibration draw."""
    from archlearn.jobs.minilm_distill import baselines, evaluate
    from archlearn.models.bert import keeping

    example = torch.full((1, TOKENS), 1000 % int(teacher.config.vocab_size))
    batches, picked = calibration_sentences(rows["train"], seed, calibration)
    before = fingerprint(teacher)
    small, report, seconds = run_compress(teacher, batches, {"macs": budget}, example=example,
                                          progress=progress)
    untouched = fingerprint(teacher) == before
    target = count_macs(small, example)
    start = time.perf_counter()
    macs_of = baselines.macs_counter(teacher, example)
    selection, ratio = baselines.torch_pruning_selection(teacher, example, target, macs_of,
                                                         iterations=tp_iterations)
    search = time.perf_counter() - start
    start = time.perf_counter()  # one selection at the found ratio, and the shrinking
    selection = baselines._select(teacher, example, ratio)
    pruned = keeping(teacher, *selection, example).eval()
    tp_seconds = time.perf_counter() - start
    full = count_macs(teacher, example)
    # the ANCHORS.md recipe at archlearn's MACs: its budget is a share of the encoder's MACs
    # (the rest of the model, the pooler, is kept whole by both)
    encoder = encoder_macs(teacher, TOKENS)
    start = time.perf_counter()
    recipe, _ = ridge_recipe(teacher, batches, (target - (full - encoder)) / encoder,
                             tokens=TOKENS)
    recipe_seconds = time.perf_counter() - start
    nets = {"original": teacher, "archlearn": small, "torch-pruning": pruned,
            "ridge-recipe": recipe.eval()}
    out: dict[str, Any] = {}
    for name, model in nets.items():
        row = evaluate.describe(model, example)
        row["macs_fraction"] = row["macs"] / full
        for corpus in ("test", "other"):
            row[corpus] = evaluate.fidelity(model, rows[corpus], reference[corpus])
        out[name] = row
    out["archlearn"].update(seconds=seconds, report_budget=report.get("budget"))
    out["torch-pruning"].update(seconds=tp_seconds, search_seconds=search, ratio=ratio,
                                macs_vs_archlearn=out["torch-pruning"]["macs"] / target)
    out["ridge-recipe"].update(seconds=recipe_seconds,
                               macs_vs_archlearn=out["ridge-recipe"]["macs"] / target)
    out["original"]["seconds"] = 0.0
    timing = evaluate.latency(nets, rounds=latency_rounds, threads=threads)
    for name, row in out.items():
        row["latency"] = {shape: t[name] for shape, t in timing.items()}
    digest = hashlib.sha256(json.dumps(picked).encode()).hexdigest()[:16]
    return {"seed": seed, "calibration": {"sentences": calibration, "rows_sha256": digest},
            "input_untouched": untouched, "rows": out}


MINILM_FIGURES = {"cosine_test": ("test", "cosine"), "top10_test": ("test", "topk_agreement"),
                  "cosine_other": ("other", "cosine"), "top10_other": ("other", "topk_agreement")}


def minilm_summary(runs: list[dict]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in runs[0]["rows"]:
        rows = [r["rows"][name] for r in runs]
        entry: dict[str, Any] = {k: stats([row[a][b] for row in rows])
                                 for k, (a, b) in MINILM_FIGURES.items()}
        for k in ("params", "macs", "macs_fraction", "seconds"):
            entry[k] = stats([row[k] for row in rows])
        for shape in ("b32x128", "b1x128"):
            entry[f"speedup_{shape}"] = stats([row["latency"][shape]["speedup"] for row in rows])
            entry[f"ms_{shape}"] = stats([row["latency"][shape]["median_ms"] for row in rows])
        out[name] = entry
    return out


def minilm_comparison(runs: list[dict], other: str = "torch-pruning") -> dict[str, Any]:
    """archlearn minus ``other`` per figure: mean difference and seeds won."""
    out = {}
    for k, (a, b) in MINILM_FIGURES.items():
        diffs = [r["rows"]["archlearn"][a][b] - r["rows"][other][a][b] for r in runs]
        out[k] = {"difference": statistics.fmean(diffs), "seeds_won": sum(d > 0 for d in diffs),
                  "seeds": len(diffs)}
    return out


def run_minilm(out: Path = RESULTS, *, seeds: int = 3, first_seed: int = 0,
               calibration: int = CALIBRATION, budget: float = MINILM_BUDGET,
               teacher: Any = None, tokenizer: Any = None, text: TextSplits | None = None,
               other: TextSplits | None = None, tp_iterations: int = 8,
               latency_rounds: int = 10, threads: int = 2, progress: bool = True,
               command: str = "python -m benchmarks.compress minilm") -> dict[str, Any]:
    """Every seed (calibration draw) in turn; ``out / compress_minilm.json`` after each.

    ``teacher``/``tokenizer``/``text``/``other`` replace MiniLM, its tokenizer, the stdlib
    corpus and the man pages (the tests use a tiny random BERT and small texts).
    """
    from archlearn.data.text import load_text
    from archlearn.jobs.minilm_distill import evaluate

    start = time.perf_counter()
    transformers_ready()
    if teacher is None:
        from archlearn.models.pretrained import load_minilm

        teacher = load_minilm()
    if tokenizer is None:
        from archlearn.models.pretrained import load_tokenizer

        tokenizer = load_tokenizer()
    teacher.eval()
    text = text or load_text()
    other = other or man_pages()
    rows = {"train": encode(tokenizer, text.train), "test": encode(tokenizer, text.test),
            "other": encode(tokenizer, other.test)}
    reference = {k: evaluate.sentence_embeddings(teacher, rows[k]) for k in ("test", "other")}
    runs: list[dict] = []
    results: dict[str, Any] = {}
    for seed in range(first_seed, first_seed + seeds):
        runs.append(minilm_seed(seed, teacher, rows, reference, calibration=calibration,
                                budget=budget, tp_iterations=tp_iterations,
                                latency_rounds=latency_rounds, threads=threads,
                                progress=progress))
        results = {
            "provenance": provenance(
                command, seeds=len(runs), seeds_planned=seeds, calibration=calibration,
                budget={"macs": budget}, tokens=TOKENS, tp_iterations=tp_iterations,
                latency={"threads": threads, "rounds": latency_rounds},
                data=text.record(), other=other.record()),
            "runs": runs,
            "summary": minilm_summary(runs),
            "comparison": minilm_comparison(runs),
            "comparison_recipe": minilm_comparison(runs, "ridge-recipe"),
            "seconds": time.perf_counter() - start,
        }
        write_json(Path(out) / MINILM_JSON, results)
        if progress:
            print(minilm_table(results), flush=True)
    return results


def minilm_table(results: dict[str, Any]) -> str:
    lines = [f"{'model':<15}{'MACs %':>8}{'cos test':>10}{'top10':>7}{'cos other':>10}"
             f"{'top10':>7}{'s':>8}{'x 32x128':>10}{'x 1x128':>9}"]
    for name, e in results["summary"].items():
        lines.append(f"{name:<15}{100 * e['macs_fraction']['mean']:>8.1f}"
                     f"{e['cosine_test']['mean']:>10.4f}{e['top10_test']['mean']:>7.3f}"
                     f"{e['cosine_other']['mean']:>10.4f}{e['top10_other']['mean']:>7.3f}"
                     f"{e['seconds']['mean']:>8.1f}{e['speedup_b32x128']['mean']:>9.2f}x"
                     f"{e['speedup_b1x128']['mean']:>8.2f}x")
    return "\n".join(lines)


# --- command line -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_allow_dirty(parser)
    parser.add_argument("model", choices=("lenet", "minilm", "all"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="LeNet-5's training")
    parser.add_argument("--calibration", type=int, default=CALIBRATION)
    parser.add_argument("--cache", default=str(CACHE), help="trained LeNet-5 weights")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the JSON files")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads for compression (latency: 1 for LeNet-5, 2 for "
                             "MiniLM)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python -m benchmarks.compress " + " ".join(
        sys.argv[1:] if argv is None else argv)
    if args.model in ("lenet", "all"):
        run_lenet(Path(args.out), seeds=args.seeds, first_seed=args.first_seed,
                  epochs=args.epochs, calibration=args.calibration, cache=Path(args.cache),
                  progress=not args.quiet, command=command)
    if args.model in ("minilm", "all"):
        run_minilm(Path(args.out), seeds=args.seeds, first_seed=args.first_seed,
                   calibration=args.calibration, progress=not args.quiet, command=command)


if __name__ == "__main__":
    main()
