"""ONNX export of a (shrunk) model with torch's exporter, checked by onnxruntime in the tests.

``torch.onnx.export(..., dynamo=True)`` (torch's current exporter, built on onnxscript) does the
work; this adds what a shrunk model's user wants by default: eval mode restored afterwards, a
dynamic batch dimension, named inputs and outputs, an atomic write and one clear error.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from archlearn.errors import ArchlearnError
from archlearn.extras import require
from archlearn.io import atomic_write
from archlearn.structure.graph import as_tuple, preserved_mode, run_model


@contextmanager
def _quiet_exporter():
    # the exporter logs a warning per torchvision op it cannot register; nothing to act on here
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | os.PathLike,
    *,
    dynamic_batch: bool = True,
) -> Path:
    """Write ``model`` (in eval mode) to the ONNX file ``path``; return the path.

    Inputs are named ``input0, input1, ...`` and outputs ``output0, ...``; with
    ``dynamic_batch`` the first dimension of every input may differ from the example's.
    The model's train/eval flags are left as they were. Needs ``pip install 'archlearn[onnx]'``.

    >>> import tempfile, archlearn as al
    >>> path = al.export_onnx(nn.Linear(4, 2), torch.zeros(1, 4), tempfile.mkdtemp() + "/m.onnx")
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> session.run(None, {"input0": torch.ones(3, 4).numpy()})[0].shape
    (3, 2)
    """
    require("onnx", "onnx", feature="ONNX export")
    require("onnxscript", "onnx", feature="ONNX export")
    if not isinstance(model, nn.Module):
        raise ArchlearnError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_tuple(example_inputs)
    path = Path(path)
    if not path.parent.is_dir():
        raise ArchlearnError(f"cannot write {path}: folder {path.parent} does not exist")
    names = [f"input{i}" for i in range(len(inputs))]
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in inputs) if dynamic_batch else None
    with preserved_mode(model), torch.no_grad(), _quiet_exporter():
        model.eval()
        n_outputs = len(tree_leaves(run_model(model, inputs)))
        try:
            program = torch.onnx.export(model, inputs, dynamo=True, input_names=names,
                                        output_names=[f"output{i}" for i in range(n_outputs)],
                                        dynamic_shapes=dynamic, verbose=False)
        except Exception as exc:  # the exporter raises many types; the user needs the reason
            reason = " ".join(str(exc).split())[:500]
            raise ArchlearnError(f"ONNX export of {type(model).__name__} failed: {reason}") from exc
    if program is None:
        raise ArchlearnError(f"ONNX export of {type(model).__name__} returned no program")
    atomic_write(path, program.save)
    return path
