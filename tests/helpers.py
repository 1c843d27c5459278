"""Helpers shared by the shrinking tests."""

import torch
from torch import nn


def settle_batchnorm(model: nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    """Give BatchNorm layers non-trivial running statistics (a zeroed channel then maps to a
    non-zero constant, the case that breaks naive gating)."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x * 2 + 0.5)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()


def random_gates(learner, generator: torch.Generator, all_off: int | None = 0) -> None:
    """Set tri-state gates to a random 0/1 pattern; group ``all_off`` gets every unit off."""
    method = learner.method
    with torch.no_grad():
        for i, w in method.w.items():
            w.copy_((torch.rand(w.shape, generator=generator) > 0.4).float())
            if i == all_off:
                w.zero_()
        for d in method.d.values():
            d.fill_(float(torch.rand((), generator=generator) > 0.5))
