"""Hugging Face ``Trainer``: a callback and a Trainer subclass that learn a model's widths.

    from archlearn.integrations.hf import ArchLearning, ArchLearningTrainer

    arch = ArchLearning(example_input_ids, save_dir="small/")
    trainer = ArchLearningTrainer(model=model, args=args, train_dataset=train, archlearning=arch)
    trainer.train()
    small = arch.small                       # the shrunk model, also saved with al.save

``ArchLearningTrainer.compute_loss`` adds the structure penalty to the Trainer's loss while
training (a subclass of it with its own ``compute_loss`` keeps that by calling
``super().compute_loss``; any other Trainer subclass adds :func:`penalty`). The callback attaches
in ``on_train_begin`` (``total_steps`` defaults to ``state.max_steps``; the gates are hooks, not
model parameters, so the Trainer's optimizer is unchanged), calls ``learner.step()`` in
``on_optimizer_step`` (after ``optimizer.step()``, before the scheduler and ``zero_grad``),
logs widths, params and MACs through ``Trainer.log`` at each epoch's end (so every reporting
integration gets them) and shrinks, and saves with ``save_dir``, in ``on_train_end``.
Gradient accumulation is refused: whether the Trainer divides the loss, and so the penalty,
by the accumulation steps depends on the model and the transformers version.
Needs ``pip install 'archlearn[hf]'``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archlearn.compat import torchvision_importable
from archlearn.errors import ArchlearnError
from archlearn.extras import require
from archlearn.integrations._core import StructureLearning

torchvision_importable()  # transformers imports torchvision where it is installed
transformers = require("transformers", "hf", feature="archlearn.integrations.hf")

_HINT = "train with ArchLearningTrainer, or add archlearn.integrations.hf.penalty(self) to the loss"


class ArchLearning(StructureLearning, transformers.TrainerCallback):
    """Attach a structure-learning method when training begins, step it, log it, shrink it.

    ``ArchLearning(example_inputs, method="tsrelu", *, module=None, save_dir=None, ignore=None,
    log_widths=True, **options)``: ``example_inputs`` are positional inputs of the model (e.g. a
    batch of ``input_ids``); ``module`` names the submodule to learn (default: the whole model);
    ``method``, ``ignore`` and ``**options`` are :func:`archlearn.attach`'s. After training:
    ``learner`` (the :class:`archlearn.Learner`) and ``small`` (the shrunk model).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trainer: Any = None  # set by ArchLearningTrainer, to log through Trainer.log

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        if self.learner is not None:
            return
        if model is None or self.example_inputs is None:
            raise ArchlearnError("ArchLearning needs example_inputs and the Trainer's model")
        if args.gradient_accumulation_steps != 1:
            # whether the Trainer divides the loss (and so the penalty added to it) by the
            # accumulation steps depends on the model and the transformers version
            raise ArchlearnError("ArchLearning supports gradient_accumulation_steps=1 only, got "
                                 f"{args.gradient_accumulation_steps}")
        if args.fp16:
            raise ArchlearnError("ArchLearning does not support fp16 (a GradScaler) yet; "
                                 "use bf16 or float32")
        self._attach(model, self.example_inputs, state.max_steps)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step(_HINT)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        metrics = self._metrics()
        if metrics and self.trainer is not None:
            self.trainer.log(metrics)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._finish(state.is_world_process_zero)


def penalty(trainer: Any) -> torch.Tensor:
    """The structure penalty of the :class:`ArchLearning` callback registered with ``trainer``.

    For a Trainer subclass with its own loss: ``loss = loss + penalty(self)`` while training.
    """
    found = [c for c in trainer.callback_handler.callbacks if isinstance(c, ArchLearning)]
    if len(found) != 1:
        raise ArchlearnError("penalty() needs exactly one ArchLearning callback in the Trainer, "
                             f"found {len(found)}")
    return found[0].penalty()


class ArchLearningTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` whose training loss includes ``archlearning``'s penalty."""

    def __init__(self, *args: Any, archlearning: ArchLearning, **kwargs: Any) -> None:
        if not isinstance(archlearning, ArchLearning):
            raise ArchlearnError("ArchLearningTrainer(archlearning=...) must be an "
                                 "archlearn.integrations.hf.ArchLearning callback")
        super().__init__(*args, **kwargs)
        self.archlearning = archlearning
        archlearning.trainer = self
        self.add_callback(archlearning)

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if not model.training:  # evaluation: the task loss alone
            return result
        if return_outputs:
            loss, outputs = result
            return loss + self.archlearning.penalty(), outputs
        return result + self.archlearning.penalty()
