"""The distillation run every model of the job gets: the same batches, steps, loss and schedule.

* The teacher's outputs for every train sentence are computed once (:class:`TeacherCache`) and
  shared by every student, step, epoch and seed, in float16 (half the memory; the loss casts
  them back); a batch is any list of sentence indices (``data.text.length_groups``), padded
  when it is read.
* The student trains without dropout (the target, the teacher in eval mode, has none) and with
  its embeddings frozen (11.7M of MiniLM's 22.7M parameters: the vocabulary table that shrinking
  never touches and that a few hundred steps could only disturb).
* AdamW, learning rate warmed up linearly over the first 10% of the steps, then cosine decay to
  zero (one cycle); gradients clipped to norm 1.
* Where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX: :func:`fast_bf16`), the
  forward and backward passes run under bfloat16 autocast (``Schedule.bf16``): on such an AMD
  EPYC a training step of MiniLM took 0.31 s of CPU instead of 0.56 s, so the 30-minute job
  trains on nearly twice the sentences. Elsewhere (AVX2 only) bfloat16 is emulated and a step
  takes many times longer than in float32, so it stays off. Weights, optimizer state, gates and
  the loss stay in float32, and every evaluation and timing of a model runs in float32.
* With a learner (the gated student), its penalty joins the loss and ``learner.step()`` follows
  every optimizer step; the progress bar shows the heads and FFN neurons the gates keep.
* A run can be cut in phases (``first``/``steps``): the job trains the gates for the first
  steps, shrinks, and distills the small dense model for the rest on the same learning-rate
  schedule, so most steps cost what the small model costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from archlearn.data.text import length_chunks, pad
from archlearn.distillation import Distiller


def fast_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (oneDNN's check: AVX-512 BF16 or AMX), so
    that bfloat16 autocast speeds training up instead of slowing it down many times."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


@dataclass(frozen=True)
class Schedule:
    """Steps and optimizer settings shared by every student (see the module docstring)."""

    steps: int
    lr: float = 5e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    clip: float = 1.0
    bf16: bool = field(default_factory=fast_bf16)

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


class TeacherCache:
    """The teacher's outputs for every token-id row, computed once, float16 on the CPU.

    The rows run through the teacher in length-sorted batches of ``batch_size``, under
    bfloat16 autocast where the CPU has it (``bf16``, default :func:`fast_bf16`: targets to
    about 3 significant digits, far finer than the students' distance to them); each sentence
    keeps its own real tokens only, so any batch of sentences can be read back
    (:meth:`batch`), padded with zeros where the mask is 0 (every loss term masks the padding
    out).

    >>> from archlearn.distillation import distill
    >>> table = torch.nn.Embedding(10, 4)  # a toy teacher: token ids -> states
    >>> teacher = lambda ids, attention_mask=None, output_hidden_states=False: table(ids)
    >>> cache = TeacherCache(distill(teacher), [[1, 2, 3], [4]])
    >>> ids, mask, (last, states) = cache.batch([1, 0])
    >>> ids.tolist(), tuple(last.shape), last[0, 1:].abs().sum().item(), states
    ([[4, 0, 0], [1, 2, 3]], (2, 3, 4), 0.0, None)
    """

    def __init__(self, distiller: Distiller, rows: Sequence[Sequence[int]], *,
                 batch_size: int = 64, progress: bool = False, bf16: bool | None = None) -> None:
        bf16 = fast_bf16() if bf16 is None else bf16
        self.rows = rows
        # the last hidden states, or None where they are the hidden states' last (a BERT's
        # are): then they are read from there, and the cache is a seventh smaller
        self.last: list[torch.Tensor] | None = [torch.empty(0)] * len(rows)
        self.states: list[torch.Tensor] | None = None
        chunks = length_chunks(rows, batch_size)
        for chunk in tqdm(chunks, desc="teacher", disable=not progress, leave=False):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                last, states = distiller.teacher_outputs(*pad([rows[i] for i in chunk]))
            if states is not None and self.states is None:
                self.states = [torch.empty(0)] * len(rows)
                if torch.equal(last, states[-1]):
                    self.last = None
            for j, i in enumerate(chunk):
                n = len(rows[i])  # .half() copies the slice: the batch's storage is freed
                if self.last is not None:
                    self.last[i] = last[j, :n].half()
                if self.states is not None and states is not None:
                    self.states[i] = torch.stack([s[j, :n] for s in states]).half()

    def batch(self, indices: Sequence[int]):
        """``(input_ids, attention_mask, (last, states))`` of the rows ``indices``: the
        teacher's last hidden states ``[batch, tokens, dim]`` and its hidden states (a tuple,
        or ``None`` when the distiller needs none), zero-padded like the ids."""
        ids, mask = pad([self.rows[i] for i in indices])
        states = None if self.states is None else self._padded(self.states, indices, ids.shape[1])
        if self.last is None:
            assert states is not None
            return ids, mask, (states[-1], tuple(states))
        last = self._padded(self.last, indices, ids.shape[1])
        return ids, mask, (last, None if states is None else tuple(states))

    def _padded(self, stored: list[torch.Tensor], indices: Sequence[int],
                width: int) -> torch.Tensor:
        """The rows' tensors ``[..., tokens, dim]`` stacked at ``-3``, zero-padded to
        ``width`` tokens."""
        first = stored[indices[0]]
        out = torch.zeros(*first.shape[:-2], len(indices), width, first.shape[-1],
                          dtype=torch.float16)
        for j, i in enumerate(indices):
            out[..., j, :len(self.rows[i]), :] = stored[i]
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


def distill_train(student: nn.Module, distiller: Distiller, plan: Sequence[Sequence[int]],
                  cache: TeacherCache, schedule: Schedule, *, learner=None, first: int = 0,
                  steps: int | None = None, progress: bool = True, desc: str = "student",
                  check: Callable[[nn.Module], dict[str, float]] | None = None,
                  check_every: int = 0) -> dict[str, Any]:
    """Train ``student`` on the batches ``plan[first:first + steps]`` (sentence indices into
    the cache's rows; the plan repeats if shorter) at the learning rates of steps ``first``..
    of ``schedule`` (``steps`` defaults to the rest of the schedule); returns the loss history
    and the time. ``check(student)`` (in eval mode, every ``check_every`` steps and at the
    end) adds its figures to the history: a validation curve.
    """
    steps = schedule.steps - first if steps is None else steps
    no_dropout(student)
    params = trainable(student)
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedule.factor(first + s))
    history: list[dict[str, float]] = []
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    student.train()
    for step in range(first, first + steps):
        ids, mask, targets = cache.batch(plan[step % len(plan)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=schedule.bf16):
            loss = distiller(student, ids, mask, teacher_outputs=targets)
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
        last = step == first + steps - 1
        checking = check is not None and check_every > 0 and (
            (step + 1) % check_every == 0 or last)
        if step % 10 == 0 or last or checking:
            record = {"step": step, **terms}
            postfix = {"loss": f"{terms['embedding']:.4f}"}
            if learner is not None:
                counts = width_counts(learner)
                record.update(heads=counts["heads"][0], ffn=counts["ffn"][0])
                postfix.update(heads=f"{counts['heads'][0]}/{counts['heads'][1]}",
                               ffn=f"{counts['ffn'][0]}/{counts['ffn'][1]}")
            if checking:
                assert check is not None
                student.eval()
                record.update(check(student))
                student.train()
            history.append(record)
            bar.set_postfix(postfix, refresh=False)
        bar.update(1)
    bar.close()
    student.eval()
    return {"history": history, "seconds": time.perf_counter() - start}
