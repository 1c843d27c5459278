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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from archlearn.errors import ArchlearnError
from archlearn.learner import Learner


class TrainConfig(BaseModel):
    """Training hyper-parameters (validated; unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0
    progress: bool = True


def evaluate(model: nn.Module, data: Dataset, batch_size: int = 1000) -> float:
    """Accuracy (fraction) of ``model`` in eval mode on a labelled dataset."""
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in DataLoader(data, batch_size=batch_size):
            correct += (model(x).argmax(-1) == y).sum().item()
            total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    return math.ceil(len(data) / batch_size)


class Trainer:
    """Train ``model`` (optionally with a learner's gates) and log accuracy and architecture.

    >>> trainer = Trainer(model, train_set, test_set, TrainConfig(epochs=2))   # doctest: +SKIP
    >>> history = trainer.fit()                                                # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset,
        test_data: Dataset | None = None,
        config: TrainConfig | None = None,
        learner: Learner | None = None,
        checkpoint: str | os.PathLike | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> None:
        self.model, self.learner = model, learner
        self.train_data, self.test_data = train_data, test_data
        self.config = config or TrainConfig()
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.on_epoch = on_epoch
        torch.manual_seed(self.config.seed)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.step_log: list[dict[str, Any]] = []  # architecture against iterations

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
                running += loss.item()
                bar.update(1)
            self.epoch += 1
            record = {"epoch": self.epoch, "loss": running / n}
            if self.test_data is not None:
                record["accuracy"] = evaluate(self.model, self.test_data)
            if self.learner is not None:
                arch = self.learner.architecture()
                record["widths"] = [layer["width"] for layer in arch["layers"]]
                record["linear"] = [layer["linear"] for layer in arch["layers"]]
                record["params"] = arch["params"]
                bar.set_postfix(params=arch["params"], acc=record.get("accuracy"))
            self.history.append(record)
            if self.on_epoch:
                self.on_epoch(record)
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
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "loader_rng": self.generator.get_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the whole training state atomically: a crash leaves the old file intact."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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
        torch.set_rng_state(state["torch_rng"])
        self.generator.set_state(state["loader_rng"])


_CHECKPOINT_KEYS = {"model", "optimizer", "learner", "epoch", "history", "torch_rng", "loader_rng"}
