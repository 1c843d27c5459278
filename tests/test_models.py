"""archlearn.models: parameter counts, structure and forward shapes of the reference nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archlearn.models import (
    available,
    build,
    concat_net,
    functional_relu_net,
    lenet5,
    lenet5_deep,
    lenet300,
    mlp,
    tiny_resnet,
    tiny_vgg_bn,
)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# name -> (build kwargs, input shape, output shape)
CASES = {
    "lenet5": ({}, (2, 1, 28, 28), (2, 10)),
    "lenet5-deep": ({"depth": 6}, (2, 1, 28, 28), (2, 10)),
    "lenet300": ({}, (2, 1, 28, 28), (2, 10)),
    "mlp": ({"in_features": 40, "hidden": [16, 8], "out_features": 3}, (2, 1, 40), (2, 3)),
    "tiny-vgg-bn": ({}, (2, 3, 16, 16), (2, 10)),
    "tiny-resnet": ({}, (2, 3, 16, 16), (2, 10)),
    "concat-net": ({}, (2, 3, 16, 16), (2, 10)),
    "functional-relu-net": ({}, (2, 3, 16, 16), (2, 10)),
}


def test_registry_lists_every_case() -> None:
    assert sorted(available()) == sorted(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_forward_shapes(name: str) -> None:
    kw, xshape, yshape = CASES[name]
    torch.manual_seed(0)
    net = build(name, **kw)
    assert isinstance(net, nn.Module)
    net.train()
    assert tuple(net(torch.randn(xshape)).shape) == yshape
    net.eval()
    with torch.no_grad():
        assert tuple(net(torch.randn(xshape)).shape) == yshape


def test_build_errors() -> None:
    with pytest.raises(ValueError, match="lenet5, lenet5-deep, lenet300, mlp, tiny-vgg-bn"):
        build("resnet50")
    with pytest.raises(ValueError, match="lenet5-deep"):
        build("lenet5-deep")  # depth missing
    with pytest.raises(ValueError, match=">= 3"):
        lenet5_deep(2)
    with pytest.raises(ValueError, match="needs 4 widths"):
        lenet5_deep(5, widths=[20, 50, 75])
    with pytest.raises(ValueError, match="conv1, conv2, fc"):
        lenet5(widths=(20, 50))


def test_param_counts() -> None:
    assert n_params(lenet5()) == 431080
    assert n_params(lenet300()) == 266610
    assert n_params(lenet5_deep(3)) == 33580
    assert n_params(lenet5_deep(4)) == 86405
    assert n_params(lenet5_deep(8)) == 86405 + 4 * 5700
    assert n_params(mlp(4, [3], 2)) == 23
    assert n_params(mlp(4, [3], 2, batchnorm=True)) == 29
    assert n_params(tiny_vgg_bn()) == 6362
    assert n_params(tiny_resnet()) == 6450
    assert n_params(concat_net()) == 2154
    assert n_params(functional_relu_net()) == 2266


def test_lenet5_layout_and_widths() -> None:
    kinds = [type(m).__name__ for m in lenet5()]
    assert kinds == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
        "Flatten", "Linear", "ReLU", "Linear",
    ]  # fmt: skip
    small = lenet5(widths=(6, 16, 120), num_classes=3)
    assert [m.out_channels for m in small if isinstance(m, nn.Conv2d)] == [6, 16]
    assert small[7].in_features == 16 * 16 and small[7].out_features == 120
    assert small(torch.zeros(1, 1, 28, 28)).shape == (1, 3)
    cifar = lenet5(in_channels=3, input_size=32)
    assert cifar(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("depth", [3, 4, 7])
def test_lenet5_deep_chain(depth: int) -> None:
    net = lenet5_deep(depth)
    mods = list(net)
    convs = [m for m in mods if isinstance(m, nn.Conv2d)]
    lins = [m for m in mods if isinstance(m, nn.Linear)]
    assert len(convs) + len(lins) == depth and [c.out_channels for c in convs] == [20, 50]
    assert [lin.out_features for lin in lins] == [75] * (depth - 3) + [10]
    fc = mods[mods.index(lins[0]) :]
    # after Flatten: Linear, ReLU, Linear, ReLU, ..., Linear, nothing in between
    assert [type(m).__name__ for m in fc] == ["Linear", "ReLU"] * (depth - 3) + ["Linear"]
    learned = lenet5_deep(depth, widths=[4, 9, *range(5, 5 + depth - 3)], num_classes=4)
    assert [m.out_features for m in learned if isinstance(m, nn.Linear)][-1] == 4
    assert learned(torch.zeros(3, 1, 28, 28)).shape == (3, 4)


def test_lenet300_accepts_flat_and_image_inputs() -> None:
    net = lenet300()
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(net(x), net(x.reshape(5, 784)))


def test_relu_modules_can_be_hooked() -> None:
    for net, x, n_relu in [
        (lenet5(), torch.zeros(1, 1, 28, 28), 3),
        (tiny_vgg_bn(), torch.zeros(1, 3, 16, 16), 3),
        (tiny_resnet(), torch.zeros(1, 3, 16, 16), 1 + 3 * 2),
        (concat_net(), torch.zeros(1, 3, 16, 16), 3),
    ]:
        seen: list[nn.Module] = []
        relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
        assert len(relus) == n_relu and len({id(r) for r in relus}) == n_relu
        for r in relus:
            r.register_forward_hook(lambda m, i, o, seen=seen: seen.append(m))
        net(x)
        assert len(seen) == n_relu
    assert not any(isinstance(m, nn.ReLU) for m in functional_relu_net().modules())


def test_tiny_resnet_shortcuts() -> None:
    net = tiny_resnet()
    assert net.layer1[0].downsample is None and net.layer1[1].downsample is None
    down = net.layer2.downsample
    assert isinstance(down[0], nn.Conv2d) and down[0].kernel_size == (1, 1)
    # identity block really adds its input: zeroing bn2 leaves relu(x)
    block = net.layer1[0].eval()
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.randn(2, 8, 16, 16)
    assert torch.allclose(block(x), torch.relu(x))


def test_concat_net_channels() -> None:
    net = concat_net(widths=(5, 3, 7))
    assert net.conv.in_channels == 8 and net.fc.in_features == 7
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
