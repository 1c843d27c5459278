"""Accuracy of a classifier on a labelled ``TensorDataset``: the one helper every caller uses."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import TensorDataset


def accuracy(model: nn.Module, data: TensorDataset, batch_size: int = 1000,
             batches: Iterable[torch.Tensor | slice] | None = None) -> float:
    """Fraction of ``data`` that ``model`` classifies right, in eval mode (mode restored after).

    ``data`` holds the inputs then the labels, ``(x, y)`` or ``(x1, x2, ..., y)``: the model is
    called on the inputs of a batch. ``batches`` (index tensors) replaces the default
    consecutive batches of ``batch_size``, e.g. sequences grouped by length.

    >>> net = nn.Linear(3, 2)
    >>> 0.0 <= accuracy(net, TensorDataset(torch.zeros(4, 3), torch.zeros(4).long())) <= 1.0
    True
    """
    *inputs, y = data.tensors
    if batches is None:
        batches = [slice(i, i + batch_size) for i in range(0, len(y), batch_size)]
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for idx in batches:
                pred = model(*(t[idx] for t in inputs)).argmax(-1)
                correct += int((pred == y[idx].to(pred.device)).sum())
    finally:
        model.train(was_training)
    return correct / max(len(y), 1)
