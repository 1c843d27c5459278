"""One handler per layer type: how its input channels are gated, folded and sliced.

As in Torch-Pruning's ``pruner/function.py`` (one pruning function per layer type), supporting a
new layer type means adding one handler here and nothing else. A handler answers three
questions about a layer that *reads* a group's channels:

* ``gate``: where the channels sit in the layer's input activation (``channel_dim``), so a gate
  can multiply them on the way in;
* ``fold``: which weights read each input channel, so a gate's scale can be multiplied into
  them when the model is shrunk (a transposed convolution stores its input channels in weight
  dimension 0, a Linear in dimension 1, transformers' ``Conv1D`` in dimension 0);
* ``slice``: the Torch-Pruning pruning function of the type (built in, or a customised one
  registered with the dependency graph, as for ``Conv1D``).

Layers a group's channels pass *through* (BatchNorm, a depthwise convolution) are not gate sites:
Torch-Pruning slices them with the group and the gate at the next real layer makes removal exact.
A convolution with ``1 < groups < channels`` reads its input in blocks; its units are whole
blocks (see ``groups.py``). Any other layer type inside a group makes that group skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

# A layer read through its dynamic attributes (``weight``, ``out_channels``, ``groups``...):
# ``nn.Module.__getattr__`` types them ``Tensor | Module``, so layers are typed ``Any`` here.
Layer = Any


def is_hf_conv1d(module: Layer) -> bool:
    """transformers' ``Conv1D`` (GPT-2): a Linear whose weight is stored transposed, ``(in, out)``.

    Recognised by name and shape so the core package needs no transformers import.
    """
    return (
        type(module).__name__ == "Conv1D"
        and type(module).__module__.startswith("transformers")
        and getattr(module, "weight", None) is not None
        and module.weight.dim() == 2
    )


def is_depthwise(module: Layer) -> bool:
    """A convolution whose every output channel reads exactly its own input channel."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and not module.transposed
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
    )


def is_grouped(module: Layer) -> bool:
    """A (non-transposed) convolution reading its input in ``groups`` equal blocks."""
    return (
        isinstance(module, nn.modules.conv._ConvNd)
        and not module.transposed
        and module.groups > 1
        and not is_depthwise(module)
    )


@dataclass(frozen=True)
class LayerHandler:
    """How a layer that reads channels is gated and folded.

    ``channel_dim``: the dimension of the layer's input activation holding channels;
    ``weight_in_dim``: the weight dimension indexed by input channel;
    ``weight_out_dim``: the weight dimension indexed by output channel.
    """

    kind: str
    channel_dim: int
    weight_in_dim: int
    weight_out_dim: int

    def in_channels(self, module: Layer) -> int:
        return int(module.weight.shape[self.weight_in_dim])

    def out_channels(self, module: Layer) -> int:
        return int(module.weight.shape[self.weight_out_dim])

    def fold_input(self, module: Layer, channels: Sequence[int], scale: torch.Tensor) -> None:
        """Multiply the weights reading input ``channels[j]`` by ``scale[j]`` (in place)."""
        w = module.weight
        shape = [1] * w.dim()
        shape[self.weight_in_dim] = -1
        index = torch.as_tensor(list(channels), dtype=torch.long, device=w.device)
        with torch.no_grad():
            w.index_copy_(
                self.weight_in_dim, index,
                w.index_select(self.weight_in_dim, index) * scale.to(w).view(shape),
            )


LINEAR = LayerHandler("linear", channel_dim=-1, weight_in_dim=1, weight_out_dim=0)
CONV = LayerHandler("conv", channel_dim=1, weight_in_dim=1, weight_out_dim=0)
CONV_TRANSPOSE = LayerHandler("conv_transpose", channel_dim=1, weight_in_dim=0, weight_out_dim=1)
HF_CONV1D = LayerHandler("hf_conv1d", channel_dim=-1, weight_in_dim=0, weight_out_dim=1)


def handler_for(module: Layer) -> LayerHandler | None:
    """The handler of a layer that can be a gate site, or ``None``.

    >>> handler_for(nn.ConvTranspose2d(4, 6, 3)).weight_in_dim
    0
    >>> handler_for(nn.Conv2d(8, 8, 3, groups=8)) is None  # depthwise: passes gates through
    True
    """
    if isinstance(module, nn.Linear):
        return LINEAR
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.groups != 1:
            return None
        return CONV_TRANSPOSE if module.transposed else CONV
    if is_hf_conv1d(module):
        return HF_CONV1D
    return None


class HFConv1DPruner(tp.pruner.function.BasePruningFunc):
    """Torch-Pruning slicing for transformers' ``Conv1D`` (weight ``(in, out)``, bias ``(out,)``).

    Registered with the dependency graph as a customised layer, so Conv1D layers anchor and
    join groups like a Linear instead of being traced as anonymous matrix products.
    """

    TARGET_MODULES = None

    def prune_out_channels(self, layer: Layer, idxs: Sequence[int]) -> nn.Module:
        keep = _keep(layer.weight.shape[1], idxs)
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
        if layer.bias is not None:
            layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
        layer.nf = len(keep)
        return layer

    def prune_in_channels(self, layer: Layer, idxs: Sequence[int]) -> nn.Module:
        keep = _keep(layer.weight.shape[0], idxs)
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
        if hasattr(layer, "nx"):
            layer.nx = len(keep)
        return layer

    def get_out_channels(self, layer: Layer) -> int:
        return int(layer.weight.shape[1])

    def get_in_channels(self, layer: Layer) -> int:
        return int(layer.weight.shape[0])


def _keep(n: int, idxs: Sequence[int]) -> list[int]:
    drop = set(int(i) for i in idxs)
    return [i for i in range(n) if i not in drop]


def customized_pruners(model: nn.Module) -> dict[type, tp.pruner.function.BasePruningFunc]:
    """Pruners to register with Torch-Pruning for the layer types it does not know."""
    pruners: dict[type, tp.pruner.function.BasePruningFunc] = {}
    for m in model.modules():
        if is_hf_conv1d(m):
            pruners[type(m)] = HFConv1DPruner()
    return pruners


def out_pruner(module: Layer) -> Any:
    """The slicing function of a producer layer's output channels."""
    if is_hf_conv1d(module):
        return HFConv1DPruner()
    if isinstance(module, nn.Linear):
        return tp.pruner.function.LinearPruner()
    if isinstance(module, nn.modules.conv._ConvNd):
        return tp.pruner.function.ConvPruner()
    return None
