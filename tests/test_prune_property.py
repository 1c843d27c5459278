"""Property tests: magnitude pruning prunes exactly round(amount * n) weights."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from archlearn.prune import magnitude

widths = st.lists(st.integers(1, 7), min_size=2, max_size=4)
amounts = st.floats(0.0, 1.0, exclude_max=True)


def mlp(sizes: list[int], seed: int, ties: bool) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])
    if ties:  # coarse values force many equal magnitudes
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randint(-2, 3, p.shape).float())
    return net


def pruned(masks: dict[str, torch.Tensor]) -> dict[str, int]:
    return {n: int((~m).sum()) for n, m in masks.items()}


@settings(max_examples=40, deadline=None)
@given(widths, amounts, amounts, st.integers(0, 2**16), st.booleans())
def test_counts_blind_distributed_global(sizes, a1, a2, seed, ties) -> None:
    for scope in ("blind", "distributed"):
        net = mlp(sizes, seed, ties)
        n = sum(l.weight.numel() for l in net)
        first = magnitude(net, a1, scope)
        k1 = sum(pruned(first).values())
        assert k1 == round(a1 * n)
        second = magnitude(net, a2, scope, masks=first)
        assert sum(pruned(second).values()) == k1 + round(a2 * (n - k1))
        assert all(not (second[k] & ~first[k]).any() for k in first)


@settings(max_examples=40, deadline=None)
@given(widths, amounts, amounts, st.integers(0, 2**16), st.booleans())
def test_counts_uniform_per_layer(sizes, a1, a2, seed, ties) -> None:
    net = mlp(sizes, seed, ties)
    first = magnitude(net, a1, "uniform")
    for i, layer in enumerate(net):
        assert pruned(first)[f"{i}.weight"] == round(a1 * layer.weight.numel())
    second = magnitude(net, a2, "uniform", masks=first)
    for name, k1 in pruned(first).items():
        alive = first[name].numel() - k1
        assert pruned(second)[name] == k1 + round(a2 * alive)
