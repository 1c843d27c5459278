"""Binary weight masks: apply them once, and keep them applied while retraining.

A mask dict maps a parameter name (as in ``model.named_parameters()``) to a boolean tensor of the
same shape, ``True`` = kept. Masks live beside the model, never inside it: the state dict keeps
its plain ``weight`` keys (unlike ``torch.nn.utils.prune``, which adds ``weight_orig``).

Keeping masks during retraining is done one way only: re-zero the pruned weights right after every
optimizer step (``MaskKeeper.step()``, or ``MaskKeeper.attach(optimizer)`` to have the optimizer
do it). Zeroing gradients instead is not enough: momentum, Adam moments or weight decay computed
before pruning would still move a pruned weight away from zero.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

Masks = dict[str, torch.Tensor]


def resolve(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    """Return the parameters named in ``masks``, after checking names, dtype and shapes.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> list(resolve(net, {"weight": torch.ones(2, 2, dtype=torch.bool)}))
        ['weight']
    """
    named = dict(model.named_parameters())
    unknown = sorted(set(masks) - set(named))
    if unknown:
        raise ValueError(f"masks name parameters the model does not have: {unknown}")
    for name, mask in masks.items():
        if mask.dtype != torch.bool:
            raise ValueError(f"mask {name!r} must be a bool tensor, got {mask.dtype}")
        if mask.shape != named[name].shape:
            raise ValueError(
                f"mask {name!r} has shape {tuple(mask.shape)}, "
                f"parameter has {tuple(named[name].shape)}"
            )
    return {name: named[name] for name in masks}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero, in place, every weight whose mask entry is ``False``.

    Example:
        >>> net = nn.Linear(2, 1, bias=False)
        >>> apply_masks(net, {"weight": torch.tensor([[True, False]])})
        >>> net.weight[0, 1].item()
        0.0
    """
    for name, param in resolve(model, masks).items():
        # masked_fill, not mul: mul leaves -0.0 behind for negative weights.
        param.masked_fill_(~masks[name].to(param.device), 0.0)


class MaskKeeper:
    """Keeps pruned weights at zero during retraining; call ``step()`` after ``optimizer.step()``.

    Example:
        >>> net = nn.Linear(2, 1, bias=False)
        >>> keeper = MaskKeeper(net, {"weight": torch.tensor([[True, False]])})
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        >>> net(torch.ones(1, 2)).sum().backward()
        >>> opt.step()
        >>> keeper.step()
        >>> net.weight[0, 1].item()
        0.0
    """

    def __init__(self, model: nn.Module, masks: Masks) -> None:
        params = resolve(model, masks)
        # Resolve names and move masks to the weights' device once, so step() is a bare multiply.
        self._pairs = [(p, ~masks[n].to(p.device)) for n, p in params.items()]
        self.masks = masks
        self.step()

    @torch.no_grad()
    def step(self) -> None:
        """Re-zero the pruned weights (idempotent and cheap)."""
        for param, pruned in self._pairs:
            param.masked_fill_(pruned, 0.0)

    def attach(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Run ``step()`` after every ``optimizer.step()``; returns a removable handle.

        Example:
            >>> net = nn.Linear(2, 1, bias=False)
            >>> opt = torch.optim.Adam(net.parameters())
            >>> handle = MaskKeeper(net, {"weight": torch.tensor([[True, False]])}).attach(opt)
            >>> handle.remove()
        """
        return optimizer.register_step_post_hook(lambda *_: self.step())
