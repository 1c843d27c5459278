"""Calibration data: the user's own model inputs, as given, with one way to call the model.

A batch is what the user would pass to their model: a tensor (``model(x)``), a tuple or list of
tensors (``model(*xs)``) or a dict of keyword tensors (``model(**batch)``, e.g.
``dict(tokenizer(sentences, return_tensors="pt", padding=True))``). No labels are needed.

Tracing (Torch-Pruning's dependency graph, the cost model) takes positional tensors; a dict
batch is traced through the leading positional parameters of ``model.forward`` that it holds
(``input_ids``, ``attention_mask``... for a transformers model).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archlearn.errors import ArchlearnError

Batch = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]

#: fewer examples than this cannot score units or re-fit a layer meaningfully
MIN_EXAMPLES = 16


@dataclass
class Call:
    """One calibration batch as positional and keyword arguments."""

    args: tuple[torch.Tensor, ...]
    kwargs: dict[str, torch.Tensor]

    @property
    def size(self) -> int:
        """Examples in the batch (the first dimension of its first tensor)."""
        first = self.args[0] if self.args else next(iter(self.kwargs.values()))
        return int(first.shape[0]) if first.dim() else 1

    def run(self, model: nn.Module) -> Any:
        return model(*self.args, **self.kwargs)

    def token_mask(self) -> torch.Tensor | None:
        """The batch's keyword ``attention_mask`` ``[batch, tokens]``, if any: positions of
        padding are left out of scores and re-fits."""
        mask = self.kwargs.get("attention_mask")
        return mask if mask is not None and mask.dim() == 2 else None

    def to(self, device: torch.device) -> Call:
        return Call(tuple(t.to(device) for t in self.args),
                    {k: v.to(device) for k, v in self.kwargs.items()})


def calls(calibration: Iterable[Batch] | torch.Tensor) -> list[Call]:
    """The calibration batches as :class:`Call` objects; one ``ArchlearnError`` for bad input.

    A single tensor is one batch (split into batches of 64 examples).

    >>> [c.size for c in calls(torch.zeros(100, 3))]
    [64, 36]
    >>> calls([{"input_ids": torch.zeros(2, 5, dtype=torch.long)}] * 8)[0].kwargs.keys()
    dict_keys(['input_ids'])
    """
    source: Any = calibration
    if isinstance(source, torch.Tensor):
        source = list(source.split(64))
    if isinstance(source, Mapping):
        source = [source]  # one dict is one batch, not an iterable of its keys
    try:
        batches = list(source)
    except TypeError:
        raise ArchlearnError(f"calibration must be an iterable of model inputs (tensors, tuples "
                             f"of tensors or dicts of tensors), got "
                             f"{type(calibration).__name__}") from None
    out = [_call(b, i) for i, b in enumerate(batches)]
    total = sum(c.size for c in out)
    if total < MIN_EXAMPLES:
        raise ArchlearnError(f"the calibration set has {total} example(s); give at least "
                             f"{MIN_EXAMPLES} (a few hundred is typical) from the training data")
    return out


def _call(batch: Any, i: int) -> Call:
    if isinstance(batch, torch.Tensor):
        return Call((batch,), {})
    if isinstance(batch, Mapping) and batch and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in batch.items()):
        return Call((), dict(batch))
    if isinstance(batch, (tuple, list)) and batch and all(
            isinstance(t, torch.Tensor) for t in batch):
        return Call(tuple(batch), {})
    raise ArchlearnError(f"calibration batch {i} is a {type(batch).__name__}; each batch must be "
                         "a tensor, a tuple of tensors or a dict of keyword tensors")


def example_inputs(model: nn.Module, call: Call) -> tuple[torch.Tensor, ...]:
    """Positional inputs for tracing: the call's own, or the leading ``forward`` parameters its
    keyword tensors name (one example each)."""
    if call.args and not call.kwargs:
        return tuple(t[:1] for t in call.args)
    params = list(inspect.signature(model.forward).parameters.values())
    given = dict(zip((p.name for p in params), call.args)) | call.kwargs
    out = []
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name not in given:
            break
        out.append(given[p.name][:1])
    missing = sorted(set(given) - {p.name for p in params[:len(out)]})
    if not out or (missing and _required_after(params, len(out))):
        raise ArchlearnError(
            f"the calibration batches' keys {sorted(given)} do not fill {type(model).__name__}."
            f"forward's leading parameters; pass example_inputs= (a tuple of tensors) to trace it")
    return tuple(out)


def _required_after(params: list[inspect.Parameter], n: int) -> bool:
    return any(p.default is inspect.Parameter.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params[n:])


__all__ = ["MIN_EXAMPLES", "Batch", "Call", "calls", "example_inputs"]
