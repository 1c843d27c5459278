"""L0 hard-concrete gates: options, gate semantics, penalty, exact shrinking, real training."""

import math

import pytest
import torch
from helpers import settle_batchnorm, train_in_user_loop
from torch import nn

import archlearn as al
from archlearn import data, models

FAMILIES = {
    "mlp": (lambda: models.mlp(64, [32, 24], 10), (8, 64)),
    "mlp_bn": (lambda: models.mlp(64, [32, 24], 10, batchnorm=True), (8, 64)),
    "vgg_bn": (lambda: models.tiny_vgg_bn(), (8, 3, 16, 16)),
    "resnet": (lambda: models.tiny_resnet(), (8, 3, 16, 16)),
    "concat": (lambda: models.concat_net(), (8, 3, 16, 16)),
}


def random_log_alpha(learner, generator, all_off=None):
    """Eval gates with exact zeros, exact ones and values in between."""
    with torch.no_grad():
        for i, la in enumerate(learner.method.log_alpha):
            la.copy_(torch.rand(la.shape, generator=generator) * 8 - 4)
            if i == all_off:
                la.fill_(-5.0)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"lam": -1.0}, "lam"),
        ({"droprate_init": 1.0}, "droprate_init"),
        ({"gamma": 0.1}, "gamma"),
        ({"zeta": 0.9}, "zeta"),
        ({"normalize": "layer"}, "normalize"),
        ({"freeze": 0.5}, "total_steps"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(al.ArchlearnError, match=key):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="l0", **options)


def test_eval_gate_and_penalty_follow_the_paper():
    model = models.mlp(3, [4], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="l0", lam=0.5)
    la = learner.method.log_alpha[0]
    with torch.no_grad():
        la.copy_(torch.tensor([-3.0, 0.0, 1.0, 4.0]))
    model.eval()
    expected = (torch.sigmoid(la) * 1.2 - 0.1).clamp(0, 1)
    assert torch.allclose(learner.method.unit_scale(0), expected)
    assert learner.method.unit_scale(0)[0] == 0 and learner.method.unit_scale(0)[3] == 1
    p = torch.sigmoid(la - 2 / 3 * math.log(0.1 / 1.1))
    assert torch.allclose(learner.penalty(), 0.5 * p.sum())
    assert torch.equal(learner.decisions()[0].scale, expected.detach())


def test_penalty_normalisation():
    model = models.mlp(3, [4, 6], 2)
    plain = al.attach(model, torch.zeros(1, 3), method="l0", lam=1.0).penalty().item()
    group = al.attach(models.mlp(3, [4, 6], 2), torch.zeros(1, 3), method="l0", lam=1.0,
                      normalize="group").penalty().item()
    total = al.attach(models.mlp(3, [4, 6], 2), torch.zeros(1, 3), method="l0", lam=1.0,
                      normalize="all").penalty().item()
    q = plain / 10  # every unit starts with the same probability of being non-zero
    assert group == pytest.approx(2 * q)
    assert total == pytest.approx(q)


def test_training_gates_are_sampled_once_per_step_and_shared_by_consumers():
    model = models.tiny_resnet()
    x = torch.randn(2, 3, 16, 16)
    learner = al.attach(model, x[:1], method="l0", droprate_init=0.5)
    stem = max(range(len(learner.groups)), key=lambda i: len(learner.groups[i].sites))
    assert len(learner.groups[stem].sites) > 1
    seen = []
    for module in {s.module for s in learner.groups[stem].sites}:
        def grab(mod, args):
            seen.append(learner.method.unit_scale(stem).detach())
        model.get_submodule(module).register_forward_pre_hook(grab)
    model.train()
    model(x)
    assert all(torch.equal(s, seen[0]) for s in seen)
    first = seen[0]
    assert ((first > 0) & (first < 1)).any() or (first == 0).any()
    (model(x).sum() + learner.penalty()).backward()
    assert learner.method.log_alpha[stem].grad is not None
    learner.step()
    seen.clear()
    model(x)
    assert not torch.equal(seen[0], first)  # fresh noise after the step


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("all_off", [None, 0])
def test_shrunk_model_equals_gated_model(family, all_off):
    build, shape = FAMILIES[family]
    model = build()
    x = torch.randn(*shape)
    settle_batchnorm(model, x)
    learner = al.attach(model, x[:1], method="l0")
    random_log_alpha(learner, torch.Generator().manual_seed(3), all_off=all_off)
    scales = torch.cat([d.scale for d in learner.decisions()])
    assert (scales == 0).any() and ((scales > 0) & (scales < 1)).any()
    before = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        shrunk = small(x)
    assert torch.allclose(shrunk, gated, atol=1e-5), (shrunk - gated).abs().max()
    assert sum(p.numel() for p in small.parameters()) < before


def test_freeze_stops_gates_and_noise():
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="l0", total_steps=4, freeze=0.5)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    for _ in range(2):
        (nn.functional.cross_entropy(model(x), y) + learner.penalty()).backward()
        learner.step()
    frozen = learner.method.log_alpha[0].detach().clone()
    assert float(learner.penalty()) == 0.0
    model.train()
    assert torch.equal(learner.method.unit_scale(0), learner.method.eval_gate(0).detach())
    for _ in range(2):
        nn.functional.cross_entropy(model(x), y).backward()
        learner.step()
    assert torch.equal(learner.method.log_alpha[0], frozen)


def test_state_dict_round_trip():
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="l0")
    x = torch.randn(5, 4)
    model(x).sum().add(learner.penalty()).backward()
    learner.step()
    state = learner.state_dict()
    other = al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="l0")
    other.load_state_dict(state)
    assert torch.equal(other.method.log_alpha[0], learner.method.log_alpha[0])
    assert other.method.t == 1


def test_users_own_loop_learns_a_smaller_accurate_net():
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10)
    learner, accuracy, widths = train_in_user_loop(model, splits, "l0")
    assert accuracy > 0.93, accuracy
    assert sum(widths) < 0.9 * (128 + 64), widths
