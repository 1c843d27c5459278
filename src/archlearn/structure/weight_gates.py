"""Per-weight gates: a layer computes with ``W * G``, and a shrunk layer keeps its zeros.

Unstructured methods (the switcher's "connections", differentiable sparsification per weight)
give each Linear/Conv layer an elementwise scale ``G``: the weight's shape, or ``[out, in]`` for a
convolution (one scale per kernel, broadcast over its positions).

*Forward.* A forward hook recomputes the layer's output with ``W * G``. We chose it over the
alternatives because it changes nothing the user can see: ``torch.nn.utils.parametrize`` and
``torch.nn.utils.prune`` rename the weight in ``state_dict()`` (``...original``,
``weight_orig``); assigning ``module.forward`` on the instance survives ``copy.deepcopy`` and
then computes with the *original* module's weight (the hook, :class:`WeightGate`, reads the
weight of the module it is called with, and pickles); ``torch.func.functional_call`` needs to own
the model's call, which the user's loop does. The price is one discarded forward of the layer
(no backward runs through it). The hook sees the inputs after any forward pre-hook (the unit
gates of ``gating.py``), so both kinds of gate compose.

*Shrinking.* ``fold`` multiplies the scales into the weights (exact zeros are stored), and
``keep_zeros`` fixes each folded layer's non-zero pattern with a ``torch.nn.utils.parametrize``
mask: the layer computes with ``original * mask``, both saved in the safetensors file
(``<layer>.parametrizations.weight.original`` and ``...weight.0.mask``), so fine-tuning the
shrunk or loaded model, with any fresh optimizer, leaves the pruned weights at exactly zero
(their gradient is zero). ``torch.nn.utils.prune`` does the same but its model can no longer be
deep-copied after a forward pass. The recipe step ``{"op": "mask"}`` re-creates the
parametrizations on a fresh model before the weights are loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from archlearn.structure.gating import GateHooks

WeightScale = Callable[[str], "torch.Tensor | None"]
GATEABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def gateable_layers(model: nn.Module, ignored: Iterable[str] = ()) -> list[str]:
    """Names of the Linear/Conv layers (not transposed) that may carry weight gates.

    >>> gateable_layers(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))
    ['0', '2']
    """
    skip = set(ignored)
    return [n for n, m in model.named_modules()
            if isinstance(m, GATEABLE) and n not in skip and isinstance(m.weight, nn.Parameter)]


def weight_of(model: nn.Module, name: str) -> torch.Tensor:
    """The weight of layer ``name`` (as the forward computes it, masked or not).

    >>> weight_of(nn.Sequential(nn.Linear(2, 3)), "0").shape
    torch.Size([3, 2])
    """
    weight = model.get_submodule(name).weight
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"layer {name!r} has no weight tensor")
    return weight


def broadcast(scale: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``scale`` shaped to multiply ``weight`` (a ``[out, in]`` scale spans a kernel)."""
    return scale.reshape(*scale.shape, *([1] * (weight.dim() - scale.dim())))


def forward_with(module: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The layer's output with ``weight`` in place of its own."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, module.bias)
    return module._conv_forward(x, weight, module.bias)


class WeightGateHooks:
    """Layers named in ``modules`` compute with ``W * weight_scale(name)`` (``None``: plain W)."""

    def __init__(self, model: nn.Module, modules: list[str], weight_scale: WeightScale) -> None:
        self.model, self.modules, self.weight_scale = model, list(modules), weight_scale
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for name in self.modules:
            if not isinstance(model.get_submodule(name), GATEABLE):
                raise ValueError(f"weight gates need a Linear or Conv layer, {name!r} is not")
        self.install()

    def install(self) -> None:
        if self._handles:
            return
        for name in self.modules:
            module = self.model.get_submodule(name)
            gate = WeightGate(self.weight_scale, name)
            self._handles.append(module.register_forward_hook(gate))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def suspended(self) -> AbstractContextManager[None]:
        """Take the hooks off for a moment (deep copies must not carry them): GateHooks' own,
        which needs only ``install``, ``remove`` and ``_handles``."""
        return GateHooks.suspended(self)  # pyright: ignore[reportArgumentType]


class WeightGate:
    """Forward hook: the layer's output recomputed with ``W * weight_scale(name)``.

    A picklable object reading the weight of the ``module`` it is called with, so a deep copy
    of the model computes with the copy's own weights (and a copy of the gate source).

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> _ = layer.register_forward_hook(WeightGate(lambda name: torch.tensor([[1.0, 0.0]]), ""))
    >>> bool(layer(torch.tensor([[0.0, 5.0]])) == 0)
    True
    """

    def __init__(self, weight_scale: WeightScale, name: str) -> None:
        self.weight_scale, self.name = weight_scale, name

    def __call__(self, module: Any, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        scale = self.weight_scale(self.name)
        if scale is None:
            return out
        w = module.weight
        return forward_with(module, args[0], w * broadcast(scale.to(w), w))


@torch.no_grad()
def fold(model: nn.Module, scales: dict[str, torch.Tensor]) -> None:
    """Multiply each named layer's weight by its elementwise scale, in place."""
    for name, scale in scales.items():
        w = weight_of(model, name)
        w.mul_(broadcast(scale.to(w), w))
        w.masked_fill_(w == 0, 0.0)  # -0.0 -> 0.0: the stored zeros are plain zeros


class ZeroMask(nn.Module):
    """Parametrization ``weight = original * mask`` (a fixed 0/1 buffer, saved with the model)."""

    mask: torch.Tensor

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def keep_zeros(model: nn.Module, modules: Iterable[str], *, placeholder: bool = False) -> None:
    """Fix the zero pattern of each named layer's weight (a ``ZeroMask`` parametrization).

    ``placeholder=True`` (replaying a recipe) makes a mask of the right shape whose values come
    with the weights that are loaded next.

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad():
    ...     layer.weight[0, 0] = 0.0
    >>> keep_zeros(layer, [""])
    >>> layer.parametrizations.weight[0].mask.tolist()
    [[0.0, 1.0]]
    """
    for name in modules:
        module = model.get_submodule(name)
        w = weight_of(model, name).detach()
        mask = torch.ones_like(w) if placeholder else (w != 0).to(w.dtype)
        parametrize.register_parametrization(module, "weight", ZeroMask(mask))
