"""The Trainer used by the CLI and the experiments: weights and structure on separate optimizers.

Each epoch ends with an atomic checkpoint (temp file, fsync, rename) holding the weights, the
structure parameters and both optimizers, the RNG states and the epoch, so a killed run resumes
to the same result as an uninterrupted one. Checkpoints are read with
``torch.load(weights_only=True)``: nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from archlearn.errors import ArchlearnError
from archlearn.io import atomic_write
from archlearn.learner import Learner
from archlearn.metrics import accuracy


class TrainConfig(BaseModel):
    """Training hyper-parameters (validated; unknown keys are errors).

    ``seed`` orders the batches (a local generator); the model's initial weights are the
    caller's: build the model under your own seed.
    """

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(default=30, gt=0)
    batch_size: int = Field(default=64, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    seed: int = 0
    progress: bool = True


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``data`` (the last batch may be short).

    >>> steps_per_epoch(TensorDataset(torch.zeros(130, 1)), 64)
    3
    """
    return math.ceil(len(data) / batch_size)  # type: ignore[arg-type]


class Callback:
    """Hooks into :meth:`Trainer.fit`: override them, or pass plain functions.

    ``on_step(trainer)`` runs after every optimizer and structure step (``trainer.step`` counts
    them); ``on_epoch(trainer, record)`` after every epoch, with the epoch's history record,
    before the checkpoint is written.

    >>> seen = []
    >>> log = Callback(on_epoch=lambda trainer, record: seen.append(record["epoch"]))
    """

    def __init__(self, on_step: Callable[[Trainer], None] | None = None,
                 on_epoch: Callable[[Trainer, dict], None] | None = None) -> None:
        self._on_step, self._on_epoch = on_step, on_epoch

    def on_step(self, trainer: Trainer) -> None:
        if self._on_step is not None:
            self._on_step(trainer)

    def on_epoch(self, trainer: Trainer, record: dict) -> None:
        if self._on_epoch is not None:
            self._on_epoch(trainer, record)


class Trainer:
    """Train ``model`` (optionally with a learner's gates) and log accuracy and architecture.

    ``eval_data`` is scored after every epoch (give it validation data: the test split is for
    the end). The weights get Adam; the structure parameters their method's own optimizer.

    >>> trainer = Trainer(model, train_set, valid_set, TrainConfig(epochs=2))   # doctest: +SKIP
    >>> history = trainer.fit()                                                 # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset,
        eval_data: TensorDataset | None = None,
        config: TrainConfig | None = None,
        learner: Learner | None = None,
        checkpoint: str | os.PathLike | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model, self.learner = model, learner
        self.train_data, self.eval_data = train_data, eval_data
        self.config = config or TrainConfig()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.callbacks = list(callbacks)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self.epoch = 0
        self.step = 0  # optimizer steps taken
        self.history: list[dict[str, Any]] = []

    @property
    def total_steps(self) -> int:
        return self.config.epochs * steps_per_epoch(self.train_data, self.config.batch_size)

    def fit(self) -> list[dict[str, Any]]:
        """Train to ``config.epochs``, resuming from the checkpoint if there is one."""
        if self.checkpoint and self.checkpoint.exists():
            self.load_checkpoint(self.checkpoint)
        loss_fn = nn.CrossEntropyLoss()
        n = steps_per_epoch(self.train_data, self.config.batch_size)
        bar = tqdm(total=self.total_steps, initial=self.epoch * n, disable=not self.config.progress,
                   desc="train", leave=False)
        while self.epoch < self.config.epochs:
            self.model.train()
            loader = DataLoader(self.train_data, batch_size=self.config.batch_size, shuffle=True,
                                generator=self.generator)
            running = 0.0
            for x, y in loader:
                loss = loss_fn(self.model(x), y)
                if self.learner is not None:
                    loss = loss + self.learner.penalty()
                if not torch.isfinite(loss):
                    raise ArchlearnError(
                        f"the loss became {loss.item()} at epoch {self.epoch + 1}: "
                        "lower the learning rate or check the data"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self.learner is not None:
                    self.learner.step()
                self.step += 1
                running += loss.item()
                bar.update(1)
                for callback in self.callbacks:
                    callback.on_step(self)
            self.epoch += 1
            record: dict[str, Any] = {"epoch": self.epoch, "loss": running / n}
            if self.eval_data is not None:
                record["accuracy"] = accuracy(self.model, self.eval_data)
            if self.learner is not None:
                arch = self.learner.architecture()
                record["widths"] = [layer["width"] for layer in arch["layers"]]
                record["linear"] = [layer["linear"] for layer in arch["layers"]]
                record["params"] = arch["params"]
                bar.set_postfix(params=arch["params"], acc=record.get("accuracy"))
            self.history.append(record)
            for callback in self.callbacks:
                callback.on_epoch(self, record)
            if self.checkpoint:
                self.save_checkpoint(self.checkpoint)
        bar.close()
        return self.history

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "learner": self.learner.state_dict() if self.learner else None,
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "loader_rng": self.generator.get_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the whole training state atomically: a crash leaves the old file intact."""
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Resume from a checkpoint; a truncated or foreign file raises ``ArchlearnError``.

        All or nothing: when any part does not fit, the model, optimizers and structure
        parameters are left exactly as they were.
        """
        try:
            state = torch.load(path, weights_only=True)
        except Exception as exc:
            raise ArchlearnError(f"checkpoint {path} is unreadable or truncated: {exc}") from None
        if not isinstance(state, dict) or not _CHECKPOINT_KEYS <= state.keys():
            raise ArchlearnError(f"checkpoint {path} is not an archlearn training checkpoint")
        backup = copy.deepcopy(self.state_dict())
        try:
            self._load_state(state)
        except Exception as exc:
            self._load_state(backup)
            # load_state_dict's first line only says "Error(s) in loading": keep the next too
            msg = " ".join(line.strip() for line in str(exc).splitlines()[:2]) or repr(exc)
            raise ArchlearnError(f"checkpoint {path} does not fit this model: {msg}") from None

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.learner is not None:
            if state.get("learner") is None:
                raise ArchlearnError("it has no structure parameters")
            self.learner.load_state_dict(state["learner"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.step = int(state.get("step", self.epoch * steps_per_epoch(
            self.train_data, self.config.batch_size)))
        torch.set_rng_state(state["torch_rng"])  # the run's own state: dropout resumes exactly
        self.generator.set_state(state["loader_rng"])


_CHECKPOINT_KEYS = {"model", "optimizer", "learner", "epoch", "history", "torch_rng", "loader_rng"}
