"""L0 hard-concrete gates: gate semantics, penalty, noise (the shared contract is in
test_method_contract.py)."""

import math

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models


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
    assert torch.equal(learner.method.gate(0), learner.method.eval_gate(0).detach())
    for _ in range(2):
        nn.functional.cross_entropy(model(x), y).backward()
        learner.step()
    assert torch.equal(learner.method.log_alpha[0], frozen)


def test_noise_has_its_own_generator_and_leaves_torchs_rng_alone():
    x = torch.randn(4, 4)
    a = al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="l0", seed=5)
    b = al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="l0", seed=5)
    a.model.train()
    b.model.train()
    state = torch.get_rng_state()
    a.model(x)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(10)  # the global RNG moves between the two: the noise does not care
    b.model(x)
    assert torch.equal(a.method.gate(0), b.method.gate(0))
