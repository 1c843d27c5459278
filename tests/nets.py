"""Small nets with the layer types of real architectures, for the shrinking property tests.

Each takes a generator-free spec (widths, kernel, groups...) so hypothesis can draw them:
Conv1d stacks, a transposed-convolution decoder, inverted residuals with depthwise convolutions
(MobileNetV2), grouped convolutions with squeeze-excitation (ResNeXt/RegNet), transformer
blocks (``nn.MultiheadAttention`` and separate Q/K/V Linears with SDPA, as in BERT), and a
ShuffleNet unit whose channel shuffle cannot be followed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv1dNet(nn.Module):
    """(N, C, L): Conv1d-BN-ReLU blocks, pooled, Linear."""

    def __init__(self, cin: int, widths: tuple[int, ...], kernel: int, out: int = 3) -> None:
        super().__init__()
        layers, prev = [], cin
        for w in widths:
            layers += [nn.Conv1d(prev, w, kernel, padding=kernel // 2), nn.BatchNorm1d(w),
                       nn.ReLU()]
            prev = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, out)

    def forward(self, x):
        return self.head(self.body(x).mean(-1))


class DecoderNet(nn.Module):
    """Conv -> ReLU -> ConvTranspose (upsampling) -> BN -> ReLU -> Conv: an encoder-decoder."""

    def __init__(self, cin: int, mid: int, up: int, stride: int, groups_out: int = 2) -> None:
        super().__init__()
        self.enc = nn.Conv2d(cin, mid, 3, stride=stride, padding=1)
        self.up = nn.ConvTranspose2d(mid, up, stride, stride=stride)
        self.bn = nn.BatchNorm2d(up)
        self.out = nn.Conv2d(up, groups_out, 1)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.up(F.relu(self.enc(x))))))


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand -> BN -> ReLU6 -> depthwise 3x3 -> BN -> ReLU6 -> 1x1 -> BN (+x)."""

    def __init__(self, c: int, expand: int, residual: bool) -> None:
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h),
                                    nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False),
                                       nn.BatchNorm2d(h), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))
        self.residual = residual

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, cin: int, c: int, expands: tuple[int, ...], out: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(*[InvertedResidual(c, e, residual=i > 0)
                                      for i, e in enumerate(expands)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class GroupedBlock(nn.Module):
    """ResNeXt/RegNet: 1x1 -> BN -> ReLU -> grouped 3x3 -> BN -> ReLU [-> SE] -> 1x1 -> BN, + x."""

    def __init__(self, c: int, width: int, groups: int, se: bool) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False),
                               nn.BatchNorm2d(width), nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, 2, 1), nn.ReLU(),
                                nn.Conv2d(2, width, 1), nn.Sigmoid()) if se else None
        self.c = nn.Sequential(nn.Conv2d(width, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        h = self.b(self.a(x))
        if self.se is not None:
            h = h * self.se(h)
        return F.relu(x + self.c(h))


class GroupedNet(nn.Module):
    def __init__(self, cin: int, c: int, width: int, groups: int, se: bool, out: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.block = GroupedBlock(c, width, groups, se)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out))

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


class SelfAttention(nn.Module):
    """BERT-style: separate query/key/value Linears, heads by reshape, SDPA or eager softmax."""

    def __init__(self, dim: int, heads: int, eager: bool) -> None:
        super().__init__()
        self.num_attention_heads = heads
        self.attention_head_size = dim // heads
        self.all_head_size = dim
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.eager = eager

    def forward(self, x):
        shape = (*x.shape[:-1], -1, self.attention_head_size)
        q, k, v = (f(x).view(shape).transpose(1, 2) for f in (self.query, self.key, self.value))
        if self.eager:
            w = torch.softmax(q @ k.transpose(-1, -2) / self.attention_head_size ** 0.5, -1)
            ctx = w @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v)
        return ctx.transpose(1, 2).reshape(*x.shape[:-1], -1)


class EncoderBlock(nn.Module):
    """Post-LN transformer block: attention + output Linear, FFN with GELU."""

    def __init__(self, dim: int, heads: int, ffn: int, eager: bool, mha: bool) -> None:
        super().__init__()
        if mha:
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.dense = None
        else:
            self.attn = SelfAttention(dim, heads, eager)
            self.dense = nn.Linear(dim, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def forward(self, x):
        a = self.attn(x, x, x, need_weights=False)[0] if self.dense is None else self.dense(
            self.attn(x))
        x = self.ln1(x + a)
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


class Encoder(nn.Module):
    """(N, T, dim) -> (N, classes): blocks, mean over tokens, Linear."""

    def __init__(self, dim: int, heads: int, ffn: int, layers: int, eager: bool, mha: bool,
                 out: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([EncoderBlock(dim, heads, ffn, eager, mha)
                                     for _ in range(layers)])
        self.head = nn.Linear(dim, out)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(1))


class ShuffleUnit(nn.Module):
    """ShuffleNet: grouped 1x1 -> BN -> ReLU -> channel shuffle -> depthwise -> grouped 1x1."""

    def __init__(self, c: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.g1 = nn.Conv2d(c, c, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.g2 = nn.Conv2d(c, c, 1, groups=groups, bias=False)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.g1(F.relu(self.stem(x)))))
        b, c, hh, ww = h.shape
        h = h.view(b, self.groups, c // self.groups, hh, ww).transpose(1, 2).reshape(b, c, hh, ww)
        h = self.g2(self.dw(h))
        return self.head(h.mean((2, 3)))


class ShuffleNet(nn.Module):
    """Two plain convs around a channel shuffle: the shuffled group cannot be followed."""

    def __init__(self, c: int = 8, groups: int = 2) -> None:
        super().__init__()
        self.groups = groups
        self.a = nn.Conv2d(3, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.head = nn.Linear(c, 3)

    def forward(self, x):
        h = F.relu(self.a(x))
        b, c, hh, ww = h.shape
        h = h.view(b, self.groups, c // self.groups, hh, ww).transpose(1, 2).reshape(b, c, hh, ww)
        return self.head(F.relu(self.b(h)).mean((2, 3)))
