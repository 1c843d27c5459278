"""Small nets with the layer patterns a structural shrinker must handle (BN, residual, concat...).

All take ``(N, 3, 16, 16)`` by default (``in_channels`` / ``num_classes`` adjustable).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["tiny_vgg_bn", "tiny_resnet", "concat_net", "functional_relu_net", "BasicBlock"]


def _cbr(cin: int, cout: int, bias: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=bias), nn.BatchNorm2d(cout), nn.ReLU()]


def tiny_vgg_bn(
    num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (8, 16, 16)
) -> nn.Sequential:
    """VGG-style: (Conv3x3-BN-ReLU, MaxPool2) x2, Conv3x3-BN-ReLU, Flatten, Linear.

    For ``(N, 3, 16, 16)`` inputs the last conv map is 4x4, so each of its channels feeds 16
    inputs of the Linear (a channel -> flattened-features dependency). Params (defaults): 6,362.

    >>> tiny_vgg_bn()(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """
    c1, c2, c3 = (int(w) for w in widths)
    return nn.Sequential(
        *_cbr(in_channels, c1),
        nn.MaxPool2d(2),
        *_cbr(c1, c2),
        nn.MaxPool2d(2),
        *_cbr(c2, c3),
        nn.Flatten(),
        nn.Linear(c3 * 4 * 4, num_classes),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``shortcut`` is the identity, or ``Conv1x1(stride) -> BN`` (``self.downsample``) when the
    stride or channel count changes. Each ReLU is its own module (``relu1``, ``relu2``).

    >>> BasicBlock(4, 8, stride=2)(torch.zeros(1, 4, 8, 8)).shape
    torch.Size([1, 8, 4, 4])
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + identity)


class TinyResNet(nn.Module):
    """Stem conv-bn-relu, two identity basic blocks, one downsampling block, avg-pool, Linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_cbr(in_channels, width, bias=False))
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = BasicBlock(width, 2 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(self.flatten(self.pool(x)))


def tiny_resnet(num_classes: int = 10, in_channels: int = 3, width: int = 8) -> TinyResNet:
    """Tiny ResNet: identity shortcuts (``layer1``: 2 blocks) and a 1x1-conv shortcut (``layer2``).

    Channels tied by the residual adds must be shrunk together. Params (defaults): 6,450.

    >>> tiny_resnet()(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """
    return TinyResNet(num_classes, in_channels, width)


class ConcatNet(nn.Module):
    """Two conv branches ``torch.cat``'ed on channels, then conv, pool, Linear."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (8, 4, 16)
    ) -> None:
        super().__init__()
        a, b, c = (int(w) for w in widths)
        self.branch_a = nn.Sequential(nn.Conv2d(in_channels, a, 3, padding=1), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Conv2d(in_channels, b, 1), nn.ReLU())
        self.conv = nn.Conv2d(a + b, c, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def concat_net(
    num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (8, 4, 16)
) -> ConcatNet:
    """Branches of ``widths[0]`` (3x3) and ``widths[1]`` (1x1) channels concatenated, so the
    next conv's input channels are split at an offset. Params (defaults): 2,154.

    >>> concat_net()(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """
    return ConcatNet(num_classes, in_channels, widths)


class FunctionalReluNet(nn.Module):
    """CNN whose forward calls ``F.relu`` / ``F.max_pool2d`` (no activation modules to hook)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (8, 16, 32)
    ) -> None:
        super().__init__()
        c1, c2, f = (int(w) for w in widths)
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2, f)
        self.fc2 = nn.Linear(f, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc2(F.relu(self.fc1(x)))


def functional_relu_net(
    num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (8, 16, 32)
) -> FunctionalReluNet:
    """Conv-relu-pool, conv-relu, global avg-pool, Linear-relu, Linear; relus via ``F.relu``.

    Params (defaults): 2,266.

    >>> functional_relu_net()(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """
    return FunctionalReluNet(num_classes, in_channels, widths)
