"""The switcher's meta-networks: weights in, non-negative scales out (exact zeros from BN + ReLU).

Built after the official code of Han et al. (``hanmengqiaoyx/Mining_Knowledge_of_Weights``),
written anew and generalised to any layer size:

* :class:`UNet` reads a weight map as a one-channel image ``[1, 1, H, W]`` and returns a map of
  the same size: 3x3 conv + BatchNorm + ReLU blocks with ``base * 2**l`` channels (the code:
  8, 16, ..., 256), 2x2 max-pooling between them, then transposed-conv upsampling, each followed
  by a concatenation with the skip of its level and a 3x3 conv block; last a 3x3 conv to one
  channel + BatchNorm + ReLU. The code picks a transposed kernel of 2 or 3 per side by hand so
  that odd sizes come back exactly (24 -> 49 needs 3, 9 -> 18 needs 2); here it is computed,
  ``2 + size % 2``, and a side of length 1 is neither pooled nor upsampled. BatchNorm layers see
  one image, so their statistics run over its positions (as in the code).
* :class:`KernelReducer` is the code's front end for convolutions: the weight ``[out, in, kh,
  kw]`` is read as ``out`` images of ``in`` channels, a ``kh x kw`` conv (to ``hidden``
  channels) and two 1x1 convs (back to ``in``), each with BatchNorm + ReLU, reduce every
  filter to ``in`` numbers: an ``out x in`` map, one value per kernel, for the U-Net.
* :class:`RowHead` turns a ``[1, 1, units, L]`` map into one scale per unit (the code's
  "Neurons" variant): a ``1 x L`` conv with 32 channels + BN + ReLU, a 1x1 conv to one channel
  + BN + ReLU.
* :class:`UnitMLP` is the simplified per-unit meta-network this package shipped first (see
  ``switcher.py``): ``Linear -> BN -> ReLU -> Linear -> BN -> ReLU`` over each unit's row.

Every conv is bias-free and Kaiming-initialised (fan-out), as in the code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["UNet", "KernelReducer", "RowHead", "UnitMLP", "auto_depth"]


def _block(cin: int, cout: int, kernel: Any = 3, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


def _kaiming(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def auto_depth(shape: tuple[int, int]) -> int:
    """Pooling levels for a ``H x W`` map: 3 below 32 rows/columns, 4 below 600, else 5.

    These are the code's hand-picked depths for all seven of its MNIST layers: 5 for 784x300
    and 800x500; 4 for 300x100, 100x10, 500x10 and 50x20; 3 for 20x1.

    >>> auto_depth((784, 300)), auto_depth((100, 10)), auto_depth((20, 1))
    (5, 4, 3)
    """
    side = max(shape)
    return 3 if side < 32 else 4 if side < 600 else 5


class UNet(nn.Module):
    """Weight map ``[1, 1, H, W]`` -> gate map ``[1, 1, H, W]`` (>= 0, exact zeros possible).

    >>> net = UNet((30, 7), depth=2)
    >>> net(torch.randn(1, 1, 30, 7)).shape
    torch.Size([1, 1, 30, 7])
    """

    def __init__(self, shape: tuple[int, int], depth: int | None = None, base: int = 8) -> None:
        super().__init__()
        depth = auto_depth(shape) if depth is None else depth
        sizes = [tuple(shape)]
        pools = []
        for _ in range(depth):
            h, w = sizes[-1]
            k = (2 if h > 1 else 1, 2 if w > 1 else 1)
            if (h // k[0]) * (w // k[1]) < 2:  # BatchNorm needs two values per channel
                break
            pools.append(k)
            sizes.append((h // k[0], w // k[1]))
        channels = [base * 2**level for level in range(len(sizes))]
        self.down = nn.ModuleList(
            _block(1 if level == 0 else channels[level - 1], channels[level])
            for level in range(len(sizes))
        )
        self.pools = nn.ModuleList(nn.MaxPool2d(k, k) for k in pools)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in reversed(range(len(pools))):
            (h, w), k = sizes[level], pools[level]
            kernel = (2 + h % 2 if k[0] == 2 else 1, 2 + w % 2 if k[1] == 2 else 1)
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(channels[level + 1], channels[level], kernel, stride=k,
                                   bias=False),
                nn.BatchNorm2d(channels[level]),
                nn.ReLU(),
            ))
            self.merge.append(_block(2 * channels[level], channels[level]))
        self.out = _block(channels[0], 1)
        self.shape = tuple(shape)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < len(self.pools):
                skips.append(x)
                x = self.pools[level](x)
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat((skips.pop(), up(x)), dim=1))
        return self.out(x)


class KernelReducer(nn.Module):
    """Conv weight ``[out, in, *kernel]`` -> ``[1, 1, out, in]``: one value per (out, in) kernel.

    >>> KernelReducer(3, (5, 5))(torch.randn(8, 3, 5, 5)).shape
    torch.Size([1, 1, 8, 3])
    """

    def __init__(self, in_channels: int, kernel: tuple[int, ...], hidden: int | None = None):
        super().__init__()
        kernel = tuple(kernel) if len(kernel) == 2 else (1, *kernel)  # Conv1d: a 1 x k image
        hidden = hidden or max(16, 2 * in_channels)  # the code: 16 for 1 input, 2 * in else
        self.net = nn.Sequential(
            _block(in_channels, hidden, kernel, 0),
            _block(hidden, hidden, 1, 0),
            _block(hidden, in_channels, 1, 0),
        )
        _kaiming(self)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        out, cin = weight.shape[:2]
        x = weight.reshape(out, cin, *([1] * (4 - weight.dim())), *weight.shape[2:])
        return self.net(x).reshape(1, 1, out, cin)


class RowHead(nn.Module):
    """``[1, 1, units, L]`` -> ``[units]``: the "Neurons" head (row conv, 1x1 conv, BN + ReLU).

    >>> RowHead(6)(torch.randn(1, 1, 4, 6)).shape
    torch.Size([4])
    """

    def __init__(self, length: int, channels: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(_block(1, channels, (1, length), 0), _block(channels, 1, 1, 0))
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class UnitMLP(nn.Module):
    """``[units, L]`` -> ``[units]``: the simplified meta-network (units form the batch).

    >>> UnitMLP(6, 4)(torch.randn(5, 6)).shape
    torch.Size([5])
    """

    def __init__(self, length: int, hidden: int = 32, init_bias: float = 0.0) -> None:
        super().__init__()
        final = nn.BatchNorm1d(1)
        self.net = nn.Sequential(
            nn.Linear(length, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1, bias=False),
            final,
            nn.ReLU(),
        )
        with torch.no_grad():
            final.bias.fill_(init_bias)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.net(rows).flatten()
