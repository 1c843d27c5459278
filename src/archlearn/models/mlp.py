"""Plain multilayer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from archlearn.errors import ArchlearnError

__all__ = ["mlp", "lenet300"]


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    batchnorm: bool = False,
) -> nn.Sequential:
    """``Flatten`` then ``Linear [-> BatchNorm1d] -> ReLU`` per hidden width, then ``Linear``.

    Params: ``sum((a + 1) * b)`` over consecutive widths ``[in, *hidden, out]``, plus ``2 * h``
    per hidden layer with ``batchnorm``.

    >>> m = mlp(4, [3], 2)
    >>> [type(l).__name__ for l in m]
    ['Flatten', 'Linear', 'ReLU', 'Linear']
    >>> sum(p.numel() for p in m.parameters())
    23
    """
    widths = [int(in_features), *(int(h) for h in hidden), int(out_features)]
    if min(widths) < 1:
        raise ArchlearnError(f"mlp widths must all be >= 1, got {widths}")
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers.append(nn.Linear(a, b))
        if batchnorm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def lenet300(num_classes: int = 10, widths: Sequence[int] = (300, 100)) -> nn.Sequential:
    """LeNet-300-100: the 784-300-100-10 MLP; takes ``(N, 1, 28, 28)`` or ``(N, 784)``.

    Params: 784*300+300 + 300*100+100 + 100*10+10 = 266,610 (with default widths).

    >>> sum(p.numel() for p in lenet300().parameters())
    266610
    """
    return mlp(784, widths, num_classes)
