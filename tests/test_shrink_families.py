"""Shrinking gives equal outputs and fewer parameters on the six model families of the design."""

import pytest
import torch
from helpers import random_gates, settle_batchnorm

import archlearn as al
from archlearn import models

FAMILIES = {
    "lenet5": (lambda: models.lenet5(), (8, 1, 28, 28)),
    "mlp": (lambda: models.mlp(64, [32, 24, 16], 10), (8, 64)),
    "vgg_bn": (lambda: models.tiny_vgg_bn(), (8, 3, 16, 16)),
    "resnet": (lambda: models.tiny_resnet(), (8, 3, 16, 16)),
    "concat": (lambda: models.concat_net(), (8, 3, 16, 16)),
    "functional_relu": (lambda: models.functional_relu_net(), (8, 3, 16, 16)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("all_off", [None, 0])
def test_shrunk_outputs_equal_gated_outputs(family, all_off):
    build, shape = FAMILIES[family]
    model = build()
    x = torch.randn(*shape)
    settle_batchnorm(model, x)
    learner = al.attach(model, x[:1], total_steps=10, depth="all")
    random_gates(learner, torch.Generator().manual_seed(1), all_off=all_off)
    before = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        shrunk = small(x)
    assert torch.allclose(shrunk, gated, atol=1e-5), (shrunk - gated).abs().max()
    params = sum(p.numel() for p in small.parameters())
    assert params < before
    assert params == learner.architecture()["params"]


def test_every_family_gates_some_layer():
    for family, (build, shape) in FAMILIES.items():
        learner = al.attach(build(), torch.zeros(1, *shape[1:]), total_steps=1)
        assert learner.groups, family


def test_residual_channels_share_one_gate():
    model = models.tiny_resnet()
    learner = al.attach(model, torch.zeros(1, 3, 16, 16), total_steps=1)
    # the stem's channels are added to both identity blocks' outputs: one group gates them all
    stem = [g for g in learner.groups if len(g.members) > 6]
    assert stem, [g.members for g in learner.groups]


def test_model_state_is_untouched_by_attach():
    model = models.lenet5()
    keys = list(model.state_dict())
    n_params = len(list(model.parameters()))
    model.train()
    learner = al.attach(model, torch.zeros(1, 1, 28, 28), total_steps=10)
    assert list(model.state_dict()) == keys
    assert len(list(model.parameters())) == n_params
    assert model.training
    assert learner.parameters() and all(
        all(p is not q for q in model.parameters()) for p in learner.parameters()
    )


def test_linear_chain_merges_into_one_layer():
    model = models.mlp(20, [16, 12], 3)
    x = torch.randn(5, 20)
    learner = al.attach(model, x[:1], total_steps=10, depth="all")
    with torch.no_grad():
        for d in learner.method.d.values():
            d.fill_(1.0)
    model.eval()
    small = learner.shrink().eval()
    linears = [m for m in small.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 3)]
    assert torch.allclose(small(x), model(x), atol=1e-5)
    assert all(layer["linear"] for layer in learner.architecture()["layers"])


def test_bottleneck_is_not_merged():
    model = models.mlp(100, [4], 100)  # 100*4 + 4*100 < 100*100: merging would cost more
    x = torch.randn(3, 100)
    learner = al.attach(model, x[:1], total_steps=10, depth="all")
    with torch.no_grad():
        next(iter(learner.method.d.values())).fill_(1.0)
    model.eval()
    small = learner.shrink().eval()
    assert sum(isinstance(m, torch.nn.Linear) for m in small.modules()) == 2
    assert torch.allclose(small(x), model(x), atol=1e-5)
