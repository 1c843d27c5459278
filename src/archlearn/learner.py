"""``al.attach``: a method's gates on the user's own model, and the verbs around them."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import archlearn.methods  # noqa: F401  (fills the registry)
from archlearn.errors import ArchlearnError
from archlearn.methods.base import REGISTRY, Method, parse_options
from archlearn.structure.gating import GateHooks
from archlearn.structure.graph import as_tuple
from archlearn.structure.groups import Skipped, UnitGroup, find_groups
from archlearn.structure.measure import count_macs, count_params
from archlearn.structure.shrink import Decision, shrink


class Learner:
    """Gates attached to a model. Build it with :func:`attach`."""

    def __init__(
        self,
        model: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        method: Method,
        groups: list[UnitGroup],
        skipped: list[Skipped],
    ) -> None:
        self.model, self.inputs, self.method = model, inputs, method
        self.groups, self.skipped = groups, skipped
        self.hooks = GateHooks(model, groups, method.unit_scale, method.depth_scale)
        self._arch_cache: tuple[bytes, dict] | None = None

    def penalty(self) -> torch.Tensor:
        """The method's regularizers, a scalar tensor to add to the task loss."""
        return self.method.penalty()

    def step(self) -> None:
        """Update the structure parameters (call after the user's ``optimizer.step()``)."""
        params = [p for p in self.method.parameters() if p.grad is not None]
        if dist.is_available() and dist.is_initialized() and params:
            # structure parameters are not in the DDP-wrapped module: average their gradients
            world = dist.get_world_size()
            for p in params:
                dist.all_reduce(p.grad)
                p.grad /= world
        self.method.after_step()
        for p in self.method.parameters():
            p.grad = None

    def parameters(self) -> list[torch.Tensor]:
        """The structure parameters (not part of ``model.parameters()``)."""
        return self.method.parameters()

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.name, **self.method.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.method.name:
            raise ArchlearnError(
                f"structure state is for method {state.get('method')!r}, not {self.method.name!r}"
            )
        self.method.load_state_dict(state)

    def decisions(self) -> list[Decision]:
        return self.method.decision()

    def shrink(self) -> nn.Module:
        """A new, smaller model whose eval outputs equal the gated model's.

        The recipe that rebuilds it from a fresh instance is kept on it for :func:`archlearn.save`.
        """
        with self.hooks.suspended():
            small, recipe = shrink(self.model, self.groups, self.decisions(), self.inputs)
        small.archlearn_recipe = recipe
        return small

    def architecture(self) -> dict[str, Any]:
        """Kept width of each group, which layers became linear, and the shrunk model's size.

        ``params`` and ``macs`` are counted on the model :meth:`shrink` would return.
        """
        decisions = self.decisions()
        key = b"".join(d.scale.numpy().tobytes() + bytes([d.linear]) for d in decisions)
        if self._arch_cache is None or self._arch_cache[0] != key:
            small = self.shrink()
            layers = [
                {"name": g.name, "width": int(d.kept.numel()), "of": g.size, "linear": d.linear}
                for g, d in zip(self.groups, decisions)
            ]
            arch = {
                "layers": layers,
                "params": count_params(small),
                "macs": count_macs(small, self.inputs),
                "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
            }
            self._arch_cache = (key, arch)
        return self._arch_cache[1]

    def detach(self) -> nn.Module:
        """Remove the gates' hooks; the model is back to what it was before ``attach``."""
        self.hooks.remove()
        return self.model


def attach(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[torch.Tensor, ...],
    method: str = "tsrelu",
    *,
    ignore: list[str] | None = None,
    **options: Any,
) -> Learner:
    """Attach a structure-learning method's gates to ``model`` (changed in place, hooks only).

    ``ignore`` names root layers whose units must not be gated. Options are the method's
    hyper-parameters; unknown or out-of-range values raise :class:`ArchlearnError`.

    >>> import archlearn as al
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> learner = al.attach(net, torch.zeros(1, 4), total_steps=100)
    >>> learner.architecture()["layers"][0]["width"]
    8
    """
    if not isinstance(model, nn.Module):
        raise ArchlearnError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        raise ArchlearnError(
            f"the model is wrapped in {type(model).__name__}: attach to its .module, or before "
            "wrapping (gates are hooks on the model's own layers; see archlearn.distributed)"
        )
    if count_params(model) == 0:
        raise ArchlearnError("the model has no parameters: nothing to learn")
    inputs = as_tuple(example_inputs)
    opts = parse_options(method, options)
    groups, skipped = find_groups(model, inputs, ignored=set(ignore or ()))
    if not groups:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped) or "no hidden layer"
        raise ArchlearnError(f"no layer of this model can be gated ({reasons})")
    return Learner(model, inputs, REGISTRY[method](model, groups, opts), groups, skipped)
