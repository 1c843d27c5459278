"""Tracing a model: Torch-Pruning's dependency graph plus a record of which module fed which.

Torch-Pruning's ``DependencyGraph`` does the hard part for us: it follows autograd from example
inputs and knows which output channels are coupled (residual adds, concatenation, flatten into a
Linear, BatchNorm). It has a few sharp edges, handled once here (see research/PITFALLS.md): a bare
tensor input is split along the batch, the model is left in eval mode, and it needs autograd on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.handlers import Layer, customized_pruners


def as_tuple(example_inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Normalise example inputs to a tuple of tensors, with a clear error otherwise.

    >>> as_tuple(torch.zeros(1, 3))[0].shape
    torch.Size([1, 3])
    """
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)) and example_inputs and all(
        isinstance(t, torch.Tensor) for t in example_inputs
    ):
        return tuple(example_inputs)
    raise ArchlearnError(
        "example_inputs must be a tensor or a non-empty tuple of tensors, "
        f"got {type(example_inputs).__name__}"
    )


@contextmanager
def preserved_mode(model: nn.Module):
    """Restore every submodule's train/eval flag afterwards (Torch-Pruning calls eval())."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def run_model(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Any:
    """Forward with a clear error when the example inputs do not fit the model."""
    try:
        return model(*inputs)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
        raise ArchlearnError(
            f"the model cannot run on example_inputs of shape {shapes}: {exc}"
        ) from exc


def flatten_tensors(obj: Any, _seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor in a model's output, in order: tuples, dicts (transformers' ``ModelOutput``),
    dataclasses and plain objects such as a key/value cache are searched recursively.

    >>> [t.shape for t in flatten_tensors({"a": torch.zeros(2), "b": (torch.ones(3), None)})]
    [torch.Size([2]), torch.Size([3])]
    """
    seen = set() if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        return [obj]
    if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return []
    seen.add(id(obj))
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        items = list(obj)
    elif dataclasses.is_dataclass(obj):
        items = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif hasattr(obj, "__dict__") and not isinstance(obj, nn.Module):
        items = list(vars(obj).values())
    else:
        return []
    return [t for item in items for t in flatten_tensors(item, seen)]


def _traced_outputs(out: Any) -> list[torch.Tensor]:
    # only outputs with autograd history are graph ends (an integer mask passed through is not)
    return [t for t in flatten_tensors(out) if t.grad_fn is not None]


def dependency_graph(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tp.DependencyGraph:
    """Build Torch-Pruning's dependency graph without changing the model's mode.

    Outputs of any structure (a transformers ``ModelOutput``, a key/value cache object) are
    flattened to their tensors (their autograd nodes are kept as ``dg.archlearn_returned``),
    and layer types Torch-Pruning does not know but we handle (see ``handlers.py``) are
    registered as customised layers. A failing trace is one :class:`ArchlearnError`, never a
    traceback from inside Torch-Pruning.
    """
    returned: list[Any] = []  # the outputs' autograd nodes (a returned LayerNorm, stream.py)

    def outputs(out: Any) -> list[torch.Tensor]:
        tensors = _traced_outputs(out)
        returned.extend(t.grad_fn for t in tensors)
        return tensors

    with preserved_mode(model), torch.enable_grad(), _all_trainable(model):
        try:
            dg = tp.DependencyGraph().build_dependency(
                model, example_inputs=inputs, verbose=False, output_transform=outputs,
                customized_pruners=customized_pruners(model),
            )
            setattr(dg, "archlearn_returned", returned)  # noqa: B010 (not a tp attribute)
            return dg
        except Exception as exc:  # explained below, without Torch-Pruning's traceback
            error = exc
    with preserved_mode(model), torch.no_grad():
        # inputs that do not fit get their own message; in eval mode, so BatchNorm's running
        # statistics stay untouched and a batch of one example works
        model.eval()
        out = run_model(model, inputs)
    hint = ""
    if _returns_cache(out):
        hint = (": the model returns a key/value cache; build or call it without one "
                "(e.g. config.use_cache=False) to learn its structure")
    raise ArchlearnError(
        f"the model's channels cannot be traced by Torch-Pruning "
        f"({type(error).__name__}: {error}){hint}; nothing was changed"
    ) from error


@contextmanager
def _all_trainable(model: nn.Module):
    """Every parameter traced, frozen or not: a frozen embedding table has no autograd node, and
    the graph built at shrink time (after a user froze it) must equal the one built at attach."""
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


def _returns_cache(out: Any) -> bool:
    """Whether a model output holds a key/value cache object (transformers' ``*Cache``)."""
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    return any("Cache" in type(v).__name__ for v in items)


@dataclass
class CallTrace:
    """Which leaf module consumed which tensor, from one forward pass.

    Torch-Pruning's graph shows a ReLU module only as an anonymous element-wise op, so the depth
    gates (which act on activation *modules*) need this second, lighter record.
    """

    produced_by: dict[int, str] = field(default_factory=dict)  # id(tensor) -> module name
    inputs_of: dict[str, list[int]] = field(default_factory=dict)  # module name -> id(inputs)
    output_of: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def trace_calls(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> CallTrace:
    """Record, for every leaf module, the identity of its input and output tensors."""
    trace = CallTrace()
    keep: list[torch.Tensor] = []  # holding references keeps id()s unique during the pass

    def hook(name: str):
        def record(module, args, output):
            trace.calls[name] = trace.calls.get(name, 0) + 1
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            keep.extend(tensors)
            trace.inputs_of[name] = [id(t) for t in tensors]
            if isinstance(output, torch.Tensor):
                keep.append(output)
                trace.output_of[name] = id(output)
                trace.produced_by[id(output)] = name

        return record

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if name and not list(m.children())
    ]
    try:
        with preserved_mode(model), torch.no_grad():
            model.eval()
            run_model(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return trace


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule at a dotted path."""
    return model.get_submodule(name)


def layer(model: nn.Module, name: str) -> Layer:
    """The submodule at a dotted path, typed for reading its attributes (``handlers.Layer``)."""
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at a dotted path (works inside Sequential, ModuleList, attributes)."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
