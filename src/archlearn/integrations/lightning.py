"""Lightning: the ``ArchLearning`` callback learns a LightningModule's widths while it trains.

The callback owns the learner and hooks into Lightning's loop; the LightningModule adds the
penalty to its loss with :func:`penalty`, the one line the user's own loop has too:

    class Net(L.LightningModule):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self(x), y) + penalty(self)

    arch = ArchLearning(torch.zeros(1, 1, 28, 28), module="net", save_dir="small/")
    L.Trainer(max_epochs=10, callbacks=[arch]).fit(Net(), loader)
    small = arch.small                       # the shrunk network, also saved with al.save

Hooks: ``setup`` attaches (before ``configure_optimizers``, so the gates stay out of the
weights' optimizer; ``total_steps`` defaults to ``trainer.estimated_stepping_batches``);
``on_train_batch_end`` calls ``learner.step()`` once per optimizer step (``trainer.global_step``
moved: gradient accumulation steps the gates with the weights); ``on_train_epoch_end`` logs the
widths, params and MACs; ``on_fit_end`` shrinks and, with ``save_dir``, saves. The penalty is
added to the loss rather than through ``on_before_backward``, which cannot change the loss: the
loss Lightning scales (AMP, accumulation) and logs is then the loss that is optimised.
``state_dict``/``load_state_dict`` put the gates and their optimizer into Lightning checkpoints.
``precision="16-mixed"`` (a GradScaler) is refused for now; ``bf16-mixed`` needs no scaler.
Needs ``pip install 'archlearn[lightning]'``.
"""

from __future__ import annotations

from typing import Any

import torch

from archlearn.errors import ArchlearnError
from archlearn.extras import require
from archlearn.integrations._core import StructureLearning

L = require("lightning", "lightning", feature="archlearn.integrations.lightning")

_HINT = "return loss + archlearn.integrations.lightning.penalty(self) from training_step"


class ArchLearning(StructureLearning, L.Callback):
    """Attach a structure-learning method in ``setup``, step it, log it, shrink at the end.

    ``ArchLearning(example_inputs=None, method="tsrelu", *, module=None, save_dir=None,
    ignore=None, log_widths=True, **options)``: ``example_inputs`` default to the
    LightningModule's ``example_input_array``; ``module`` names the submodule to learn (e.g.
    ``"net"``; default: the whole LightningModule); ``method``, ``ignore`` and ``**options``
    are :func:`archlearn.attach`'s. After ``fit``: ``learner`` and ``small`` (the shrunk model).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._steps_seen = 0
        self._pending_state: dict[str, Any] | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit" or self.learner is not None:
            return
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            # the GradScaler has updated its scale by the time the gates step; their gradients
            # would be unscaled with the wrong factor
            raise ArchlearnError("ArchLearning does not support precision='16-mixed' (a "
                                 "GradScaler) yet; use 'bf16-mixed' or '32-true'")
        inputs = self.example_inputs
        if inputs is None:
            inputs = getattr(pl_module, "example_input_array", None)
        if inputs is None:
            raise ArchlearnError("ArchLearning needs example_inputs, or the LightningModule's "
                                 "example_input_array")
        learner = self._attach(pl_module, inputs, trainer.estimated_stepping_batches)
        if self._pending_state is not None:
            learner.load_state_dict(self._pending_state)
            self._pending_state = None
        self._steps_seen = trainer.global_step

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == self._steps_seen:
            return  # accumulating gradients: the weights did not step, nor do the gates
        self._steps_seen = trainer.global_step
        self._step(_HINT)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        metrics = self._metrics()
        if metrics:
            pl_module.log_dict(metrics, on_step=False, on_epoch=True)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._finish(trainer.is_global_zero)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.learner is None else {"learner": self.learner.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("learner")
        if state is None:
            return
        if self.learner is None:
            self._pending_state = state  # restored before setup: applied when attached
        else:
            self.learner.load_state_dict(state)


def penalty(pl_module: Any) -> torch.Tensor:
    """The structure penalty of the :class:`ArchLearning` callback of ``pl_module``'s trainer.

    Add it to the loss in ``training_step``: ``return loss + penalty(self)``.
    """
    trainer = getattr(pl_module, "_trainer", None)
    found = [c for c in (trainer.callbacks if trainer is not None else [])
             if isinstance(c, ArchLearning)]
    if len(found) != 1:
        raise ArchlearnError(
            f"penalty() needs exactly one ArchLearning callback in the Trainer, found {len(found)}")
    return found[0].penalty()
