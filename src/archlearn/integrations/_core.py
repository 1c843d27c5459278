"""What the training-framework callbacks share: options, attach, penalty, step, widths, shrink."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.io import save
from archlearn.learner import Learner, attach
from archlearn.methods import REGISTRY


class StructureLearning:
    """The framework-independent half of an ``ArchLearning`` callback (state, no hooks).

    ``module`` names the submodule to learn (an attribute path such as ``"net"``; default:
    the whole model); ``method``, ``ignore`` and ``**options`` are :func:`archlearn.attach`'s;
    ``save_dir`` gets the shrunk model (:func:`archlearn.save`) when training ends.
    """

    def __init__(
        self,
        example_inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
        method: str = "tsrelu",
        *,
        module: str | None = None,
        save_dir: str | os.PathLike | None = None,
        ignore: list[str] | None = None,
        log_widths: bool = True,
        **options: Any,
    ) -> None:
        self.example_inputs = example_inputs
        self.method, self.module, self.ignore, self.options = method, module, ignore, options
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.log_widths = log_widths
        self.learner: Learner | None = None
        self.small: nn.Module | None = None
        self._penalty_used = False

    def _attach(self, model: nn.Module, inputs: Any, total_steps: float) -> Learner:
        target = model
        if self.module:
            try:
                target = model.get_submodule(self.module)
            except AttributeError as exc:
                raise ArchlearnError(f"ArchLearning(module={self.module!r}): {exc}") from None
        options = dict(self.options)
        method = REGISTRY.get(self.method)
        if method is not None and "total_steps" in method.Options.model_fields:
            if "total_steps" not in options and not float(total_steps) < float("inf"):
                raise ArchlearnError("ArchLearning: the trainer cannot tell how many optimizer "
                                     "steps the run has; pass total_steps=")
            options.setdefault("total_steps", int(total_steps))
        self.learner = attach(target, inputs, method=self.method, ignore=self.ignore, **options)
        return self.learner

    def penalty(self) -> torch.Tensor:
        """The method's penalty, to add to the training loss."""
        if self.learner is None:
            raise ArchlearnError("ArchLearning has not attached yet: the penalty is for the "
                                 "training loss, while the trainer fits")
        self._penalty_used = True
        return self.learner.penalty()

    def _step(self, hint: str) -> None:
        """``learner.step()`` after an optimizer step; ``hint`` says how to add the penalty."""
        if self.learner is None:
            return
        if not self._penalty_used:
            raise ArchlearnError(f"ArchLearning: the loss has no structure penalty; {hint}")
        self.learner.step()

    def _metrics(self) -> dict[str, float]:
        """Widths, params and MACs of the model shrinking would give now, for a logger."""
        if self.learner is None or not self.log_widths:
            return {}
        arch = self.learner.architecture()
        metrics = {f"archlearn/width/{layer['name']}": float(layer["width"])
                   for layer in arch["layers"]}
        metrics["archlearn/params"] = float(arch["params"])
        metrics["archlearn/macs"] = float(arch["macs"])
        return metrics

    def _finish(self, main_process: bool) -> None:
        """Shrink; the main process saves to ``save_dir``."""
        if self.learner is None:
            return
        self.small = self.learner.shrink()
        if self.save_dir is not None and main_process:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            save(self.small, self.save_dir)
