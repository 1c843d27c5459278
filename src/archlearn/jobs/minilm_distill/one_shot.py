"""``archlearn run minilm-distill --oneshot``: the teacher compressed by ``al.compress``.

Nothing is trained; for each seed:

1. **Calibration.** ``calibration`` (default 512) sentences of the *train* split drawn with the
   seed (all of them if the split is smaller), in length-sorted padded batches of 32
   ``dict(input_ids=..., attention_mask=...)``; no labels.
2. **oneshot.** ``al.compress(teacher, batches, budget, example_inputs=example)``: the budget
   (default ``{"macs": 0.5}``) counted for one 128-token sentence, heads and FFN neurons scored
   on the calibration sentences, allocated, removed, and the reading layers re-fitted; saved
   under ``models/oneshot`` (safetensors + recipe + ``config.json``). Its report (the budget
   reached, widths per layer, the re-fit rows, the seconds) goes into ``results.json``.
3. **torch-pruning.** Torch-Pruning's heads and FFN neurons (``baselines.py``) at the oneshot
   model's MACs, removed by :func:`archlearn.models.bert.keeping`; no distillation either.
4. **oneshot-int8**: the oneshot model with dynamic int8 Linear layers (``evaluate.int8``),
   evaluated, not saved.
5. **Figures** as in the distillation job (``evaluate.py``): shape, parameters, MACs, fidelity
   to the teacher on the test sentences, interleaved CPU latency.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import archlearn as al
from archlearn.data.text import pad
from archlearn.errors import ArchlearnError
from archlearn.io import jsonable
from archlearn.jobs.minilm_distill import baselines, evaluate
from archlearn.models.bert import keeping
from archlearn.structure.measure import count_macs

BUDGET = {"macs": 0.5}
CALIBRATION = 512  # sentences drawn from the train split
CALIBRATION_BATCH = 32


def calibration_sentences(rows: list[list[int]], seed: int, n: int,
                          batch: int = CALIBRATION_BATCH,
                          ) -> tuple[list[dict[str, torch.Tensor]], list[int]]:
    """``min(n, len(rows))`` rows drawn with ``seed``, as length-sorted padded batches of
    keyword tensors, and the indices drawn.

    >>> batches, picked = calibration_sentences([[5, 6], [7], [8, 9, 10]], 0, 2, batch=1)
    >>> len(batches), sorted(batches[0])
    (2, ['attention_mask', 'input_ids'])
    """
    if n < 1 or not rows:
        raise ArchlearnError(f"calibration takes at least one sentence, got {n} of {len(rows)}")
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
    ordered = sorted(picked, key=lambda i: len(rows[i]))
    batches = []
    for start in range(0, len(ordered), batch):
        ids, mask = pad([rows[i] for i in ordered[start:start + batch]])
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches, picked


def one_seed(out: Path, seed: int, teacher: Any, rows: dict[str, list[list[int]]],
             example: torch.Tensor, teacher_test: torch.Tensor, *, budget: dict[str, float],
             calibration: int, torch_pruning: bool, latency_rounds: int, threads: int,
             progress: bool) -> tuple[dict[str, Any], dict[str, nn.Module]]:
    """One calibration draw: the oneshot and Torch-Pruning rows beside the original."""
    from archlearn.jobs.minilm_distill import INT8, evaluate_rows

    t0 = time.perf_counter()
    batches, picked = calibration_sentences(rows["train"], seed, calibration)
    small = al.compress(teacher, batches, budget=budget, example_inputs=example,
                        progress=progress).eval()
    seconds: dict[str, Any] = {"compress": time.perf_counter() - t0}
    report = jsonable(small.archlearn_report)
    models: dict[str, nn.Module] = {"original": teacher, "oneshot": small,
                                    "oneshot" + INT8: evaluate.int8(small)}
    ratio = None
    if torch_pruning:
        t1 = time.perf_counter()
        selection, ratio = baselines.torch_pruning_selection(
            teacher, example, count_macs(small, example),
            baselines.macs_counter(teacher, example))
        models["torch-pruning"] = keeping(teacher, *selection, example).eval()
        seconds["torch_pruning_selection"] = time.perf_counter() - t1

    rows_out = evaluate_rows(models, out, example, rows["test"], teacher_test)
    rows_out["oneshot"]["seconds"] = seconds["compress"]
    if ratio is not None:
        rows_out["torch-pruning"]["ratio"] = ratio
    t2 = time.perf_counter()
    timing = evaluate.latency(models, rounds=latency_rounds, threads=threads)
    seconds["latency"] = time.perf_counter() - t2
    for name, row in rows_out.items():
        row["latency"] = {shape: r[name] for shape, r in timing.items()}
    seconds["total"] = time.perf_counter() - t0
    digest = hashlib.sha256(json.dumps(picked).encode()).hexdigest()[:16]
    return {"seed": seed, "rows": rows_out,
            "calibration": {"sentences": len(picked), "rows_sha256": digest},
            "compress": report, "seconds": seconds}, models


