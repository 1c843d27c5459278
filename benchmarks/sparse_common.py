"""What the switcher and diffsparse benchmarks share: the user's loop, weight sparsity, and the
class-blind magnitude-pruning baseline at a given sparsity.

The magnitude baseline gets the same epochs and optimizer as the learned row it stands beside:
a dense run is snapshotted halfway (``Run.half``), pruned class-blind (one global |w| threshold
over every Linear/Conv weight, ``archlearn.prune.magnitude``) to the learned row's weight
sparsity, and trains the remaining epochs with the schedule the dense run would have had, the
zeros kept by ``archlearn.prune.MaskKeeper`` after every step.
"""

from __future__ import annotations

import copy
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import archlearn as al
import archlearn.prune as P
from archlearn.metrics import accuracy
from archlearn.prune.magnitude import PRUNABLE

BATCH = 64


@dataclass
class Schedule:
    """The weights' optimizer: ``"sgd"`` (no momentum) or ``"adam"``; lr x0.1 at each milestone
    (fractions of the epochs); ``clip``: the weights' gradient norm is clipped to it."""

    optimizer: str
    lr: float
    milestones: tuple[float, ...] = ()
    clip: float | None = None

    def make(self, params, epochs: int, start_epoch: int = 0):
        opt = (torch.optim.SGD(params, lr=self.lr) if self.optimizer == "sgd"
               else torch.optim.Adam(params, lr=self.lr))
        marks = [round(m * epochs) - start_epoch for m in self.milestones]
        # a milestone already passed at start_epoch lowers the rate from the first epoch on
        passed = sum(m <= 0 for m in marks)
        for group in opt.param_groups:
            group["lr"] = self.lr * 0.1**passed
        later = [m for m in marks if m > 0]
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, later, 0.1) if later else None


def loader(data: Dataset, seed: int) -> DataLoader:
    return DataLoader(data, batch_size=BATCH, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def train(model: nn.Module, data: Dataset, epochs: int, seed: int, schedule: Schedule, *,
          total_epochs: int | None = None, start_epoch: int = 0, learner=None,
          keeper: P.MaskKeeper | None = None,
          at_epoch: Callable[[int], None] | None = None) -> None:
    """The user's loop: task loss (+ the learner's penalty), the unchanged optimizer step, then
    ``learner.step()`` or the mask keeper."""
    total_epochs = total_epochs or epochs
    opt, sched = schedule.make(model.parameters(), total_epochs, start_epoch)
    batches = loader(data, seed)
    for epoch in range(epochs):
        if at_epoch is not None:
            at_epoch(start_epoch + epoch)
        model.train()
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y)
            if learner is not None:
                loss = loss + learner.penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if schedule.clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), schedule.clip)
            opt.step()
            if learner is not None:
                learner.step()
            if keeper is not None:
                keeper.step()
        if sched is not None:
            sched.step()


def weights_of(model: nn.Module) -> list[torch.Tensor]:
    """The (effective) weights of every Linear/Conv layer."""
    return [m.weight.detach() for m in model.modules() if isinstance(m, PRUNABLE)]


def weight_count(model: nn.Module) -> tuple[int, int]:
    """``(non-zero, all)`` entries of the Linear/Conv weights."""
    ws = weights_of(model)
    return sum(int(w.ne(0).sum()) for w in ws), sum(w.numel() for w in ws)


def magnitude_at(half: nn.Module, data: Dataset, test: TensorDataset, nonzero: int, epochs: int,
                 start_epoch: int, seed: int, schedule: Schedule) -> dict:
    """Class-blind magnitude pruning of ``half`` down to ``nonzero`` weights, then training
    the remaining ``epochs``; returns the test accuracy and sizes."""
    model = copy.deepcopy(half)
    _, total = weight_count(model)
    masks = P.magnitude(model, amount=1 - nonzero / total, scope="blind")
    keeper = P.MaskKeeper(model, masks)
    train(model, data, epochs, seed + 7, schedule, total_epochs=start_epoch + epochs,
          start_epoch=start_epoch, keeper=keeper)
    kept, _ = weight_count(model)
    return {"accuracy": accuracy(model, test), "nonzero_weights": kept,
            "weight_sparsity": 1 - kept / total,
            "nonzero_params": al.measure(model, test.tensors[0][:2], repeats=1)["nonzero_params"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: list[dict], against: dict[str, str]) -> dict:
    """Per row, mean and std over seeds; for each ``row -> baseline`` of ``against``, the mean
    accuracy margin in points and whether it is within 1 point or better."""
    summary = {}
    for row in runs[0]:
        acc = mean_std([r[row]["accuracy"] for r in runs])
        summary[row] = {
            "accuracy_mean": acc[0], "accuracy_std": acc[1],
            "weight_sparsity_mean": mean_std([r[row].get("weight_sparsity", 0.0)
                                              for r in runs])[0],
            "nonzero_weights_mean": mean_std([r[row]["nonzero_weights"] for r in runs])[0],
        }
    for row, base in against.items():
        margin = 100 * mean_std([r[row]["accuracy"] - r[base]["accuracy"] for r in runs])[0]
        summary[row]["vs_magnitude_pp"] = margin
        summary[row]["within_1pp_or_better"] = margin >= -1.0
    return summary


def command(module: str, argv: list[str] | None) -> str:
    """The command line as run, for the provenance of a results file."""
    return f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
