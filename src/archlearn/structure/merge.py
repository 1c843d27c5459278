"""Collapsing producer -> [BatchNorm] -> identity -> consumer into one layer.

When a layer's activation became linear, ``B(A(x))`` is one affine map. For Linear layers that is
``W = W_B W_A``; for a convolution followed by a 1x1 convolution (stride 1, no padding) it is a
convolution with the same kernel as A and weights ``einsum(W_B, W_A)``. BatchNorm in between is
folded first (exact in eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

from archlearn.structure.handlers import Layer


def fold_batchnorm(layer: Layer, bn: Layer):
    """Weights and bias of ``bn(layer(x))`` in eval mode, as one layer's (weight, bias)."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    weight = layer.weight * factor.view(-1, *([1] * (layer.weight.dim() - 1)))
    return weight, (bias - bn.running_mean) * factor + beta


def merged_cost(a: Layer, b: Layer) -> tuple[int, int]:
    """MACs per output position of (A then B, merged layer): merge only when the second is lower."""
    if isinstance(a, nn.Linear):
        h = a.out_features
        return a.in_features * h + h * b.out_features, a.in_features * b.out_features
    k = a.weight[0, 0].numel()
    h = a.out_channels
    return a.in_channels * k * h + h * b.out_channels, a.in_channels * k * b.out_channels


def merge(a: Layer, bn: Layer | None, b: Layer) -> nn.Module:
    """One layer computing ``b(bn(a(x)))`` with the activation in between removed.

    >>> a, b = nn.Linear(4, 3), nn.Linear(3, 2)
    >>> x = torch.randn(5, 4)
    >>> torch.allclose(merge(a, None, b)(x), b(a(x)), atol=1e-6)
    True
    """
    with torch.no_grad():
        if bn is not None:
            w_a, b_a = fold_batchnorm(a, bn)
        else:
            w_a = a.weight
            b_a = a.bias if a.bias is not None else torch.zeros(w_a.shape[0])
        w_b = b.weight.reshape(b.weight.shape[0], -1)  # a 1x1 conv is a matrix
        bias = w_b @ b_a + (b.bias if b.bias is not None else 0)
        new: Layer = empty_merged(a, b)  # built with a bias
        if isinstance(a, nn.Linear):
            new.weight.copy_(w_b @ w_a)
        else:
            new.weight.copy_(torch.einsum("oh,hikl->oikl", w_b, w_a))
        new.bias.copy_(bias)
    return new.to(a.weight.dtype)


def empty_merged(a: Layer, b: Layer) -> nn.Linear | nn.Conv2d:
    """A layer of the merged shape (weights to be loaded), used when replaying a recipe."""
    if isinstance(a, nn.Linear):
        return nn.Linear(a.in_features, b.out_features)
    return nn.Conv2d(
        a.in_channels, b.out_channels, a.kernel_size, stride=a.stride, padding=a.padding,
        dilation=a.dilation, padding_mode=a.padding_mode,
    )
