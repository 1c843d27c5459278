"""The distillation run every model of the job gets: the same batches, steps, loss and schedule.

* The teacher's outputs for every batch are computed once (:func:`teacher_cache`) and shared
  by all the students, in float16 (half the memory; the loss casts them back).
* The student trains without dropout (the target, the teacher in eval mode, has none) and with
  its embeddings frozen (11.7M of MiniLM's 22.7M parameters: the vocabulary table that shrinking
  never touches and that a few hundred steps could only disturb).
* AdamW, learning rate warmed up linearly over the first 10% of the steps, then cosine decay to
  zero (one cycle); gradients clipped to norm 1.
* The forward and backward passes run under bfloat16 autocast (``Schedule.bf16``): on a CPU
  with AVX-512 BF16 (this machine's AMD EPYC) a training step of MiniLM takes 0.31 s of CPU
  instead of 0.56 s, so the 30-minute job trains on nearly twice the sentences. Weights,
  optimizer state, gates and the loss stay in float32, and every evaluation and timing of a
  model runs in float32.
* With a learner (the gated student), its penalty joins the loss and ``learner.step()`` follows
  every optimizer step; the progress bar shows the heads and FFN neurons the gates keep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from archlearn.distillation import Distiller

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """Steps and optimizer settings shared by every student (see the module docstring)."""

    steps: int
    lr: float = 5e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    clip: float = 1.0
    bf16: bool = True

    def factor(self, step: int) -> float:
        """Learning-rate multiplier at ``step`` (0-based): linear warm-up, cosine decay.

        >>> s = Schedule(steps=10)
        >>> [round(s.factor(i), 2) for i in (0, 1, 5, 9)]
        [1.0, 1.0, 0.59, 0.03]
        """
        warm = max(1, int(self.warmup * self.steps))
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, self.steps - warm)
        return 0.5 * (1 + math.cos(math.pi * progress))


def teacher_cache(distiller: Distiller, batches: Sequence[Batch], progress: bool = False,
                  bf16: bool = True):
    """The teacher's outputs for every batch, float16 on the CPU (computed under bfloat16
    autocast with ``bf16``: targets to about 3 significant digits, far finer than the
    students' distance to them)."""
    out = []
    for ids, mask in tqdm(batches, desc="teacher", disable=not progress, leave=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            last, states = distiller.teacher_outputs(ids, mask)
        out.append((last.half(), None if states is None else tuple(s.half() for s in states)))
    return out


def no_dropout(model: nn.Module) -> None:
    """Set every ``nn.Dropout`` of ``model`` to p = 0 (BERT's attention reads its module's p)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the students train: all but the embeddings (frozen here)."""
    out = []
    for name, p in model.named_parameters():
        if name.startswith("embeddings.") or ".embeddings." in name:
            p.requires_grad_(False)
        else:
            out.append(p)
    return out


def width_counts(learner) -> dict[str, tuple[int, int]]:
    """Kept and total units of the learner's head groups and of its FFN (channel) groups; a
    residual stream's hidden dimensions are neither."""
    kept = {"heads": [0, 0], "ffn": [0, 0]}
    for group, decision in zip(learner.groups, learner.decisions()):
        key = {"heads": "heads", "channels": "ffn"}.get(group.kind)
        if key is None:
            continue
        kept[key][0] += int(decision.kept.numel())
        kept[key][1] += group.size
    return {k: (v[0], v[1]) for k, v in kept.items()}


def distill_train(student: nn.Module, distiller: Distiller, batches: Sequence[Batch], cache,
                  schedule: Schedule, *, learner=None, progress: bool = True,
                  desc: str = "student") -> dict[str, Any]:
    """Train ``student`` for ``schedule.steps`` batches; returns the loss history and time."""
    no_dropout(student)
    params = trainable(student)
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor)
    history: list[dict[str, float]] = []
    bar = tqdm(total=schedule.steps, desc=desc, disable=not progress, leave=False,
               dynamic_ncols=True)
    start = time.perf_counter()
    student.train()
    for step in range(schedule.steps):
        i = step % len(batches)
        ids, mask = batches[i]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=schedule.bf16):
            loss = distiller(student, ids, mask, teacher_outputs=cache[i])
        terms = dict(distiller.last)
        if learner is not None:
            penalty = learner.penalty()
            terms["penalty"] = float(penalty.detach())
            loss = loss + penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, schedule.clip)
        optimizer.step()
        lr_schedule.step()
        if learner is not None:
            learner.step()
        if step % 10 == 0 or step == schedule.steps - 1:
            record = {"step": step, **terms}
            postfix = {"loss": f"{terms['embedding']:.4f}"}
            if learner is not None:
                counts = width_counts(learner)
                record.update(heads=counts["heads"][0], ffn=counts["ffn"][0])
                postfix.update(heads=f"{counts['heads'][0]}/{counts['heads'][1]}",
                               ffn=f"{counts['ffn'][0]}/{counts['ffn'][1]}")
            history.append(record)
            bar.set_postfix(postfix, refresh=False)
        bar.update(1)
    bar.close()
    student.eval()
    return {"history": history, "seconds": time.perf_counter() - start}
