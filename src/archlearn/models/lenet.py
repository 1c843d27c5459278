"""LeNet-5-style convolutional nets (20-50-500-10 and the deep 20-50-(75 x n)-10 family)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from archlearn.errors import ArchlearnError

__all__ = ["lenet5", "lenet5_deep"]


def _flat_size(input_size: int) -> int:
    side = ((input_size - 4) // 2 - 4) // 2  # conv5 -> pool2 -> conv5 -> pool2
    if side < 1:
        raise ArchlearnError(f"LeNet needs inputs of at least 16x16 pixels, got {input_size}")
    return side * side


def _conv_stack(in_channels: int, c1: int, c2: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, c1, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    ]


def _check(widths: Sequence[int]) -> list[int]:
    w = [int(x) for x in widths]
    if min(w, default=1) < 1:
        raise ArchlearnError(f"layer widths must all be >= 1, got {w}")
    return w


def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    widths: Sequence[int] = (20, 50, 500),
    input_size: int = 28,
) -> nn.Sequential:
    """LeNet-5-like 20-50-500-10 (Caffe's LeNet): two 5x5 convs with max-pool, two FC layers.

    ``Conv(1,20,5) ReLU MaxPool2 Conv(20,50,5) ReLU MaxPool2 Flatten Linear(800,500) ReLU
    Linear(500,10)``. Params (defaults): 520 + 25,050 + 400,500 + 5,010 = 431,080. ``widths``
    = (conv1 channels, conv2 channels, fc units) rebuilds the same net at other widths.

    >>> sum(p.numel() for p in lenet5().parameters())
    431080
    >>> sum(p.numel() for p in lenet5(widths=(5, 10, 20)).parameters())
    4820
    """
    if len(widths) != 3:
        raise ArchlearnError(f"lenet5 widths must be (conv1, conv2, fc), got {tuple(widths)}")
    c1, c2, f = _check(widths)
    return nn.Sequential(
        *_conv_stack(in_channels, c1, c2),
        nn.Linear(c2 * _flat_size(input_size), f),
        nn.ReLU(),
        nn.Linear(f, num_classes),
    )


def lenet5_deep(
    depth: int,
    num_classes: int = 10,
    widths: Sequence[int] | None = None,
    in_channels: int = 1,
    input_size: int = 28,
) -> nn.Sequential:
    """The depth-selection net 20-50-(75 x n)-10; ``depth`` counts all weight layers.

    2 convs (as in :func:`lenet5`) + n = depth - 3 hidden ``Linear(.,75) -> ReLU`` + the output
    Linear, nothing else between them. ``widths`` (length depth - 1: conv1, conv2, then the n fc
    widths) rebuilds a learned architecture. Params (defaults): 33,580 for depth 3, else
    86,405 + 5,700 * (depth - 4), e.g. 109,205 for depth 8.

    >>> sum(p.numel() for p in lenet5_deep(3).parameters())
    33580
    >>> sum(p.numel() for p in lenet5_deep(8).parameters())
    109205
    """
    if depth < 3:
        raise ArchlearnError(
            f"lenet5_deep depth counts 2 convs + the output layer, so must be >= 3, got {depth}"
        )
    if widths is None:
        widths = [20, 50, *([75] * (depth - 3))]
    w = _check(widths)
    if len(w) != depth - 1:
        raise ArchlearnError(
            f"lenet5_deep(depth={depth}) needs {depth - 1} widths (conv1, conv2, {depth - 3} fc), "
            f"got {len(w)}: {w}"
        )
    layers = _conv_stack(in_channels, w[0], w[1])
    prev = w[1] * _flat_size(input_size)
    for h in w[2:]:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)
