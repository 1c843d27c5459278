"""The switcher network: options, what it reads, epoch alternation, exact shrinking, training."""

import io

import pytest
import torch
from helpers import settle_batchnorm, train_in_user_loop
from torch import nn

import archlearn as al
from archlearn import data, models

FAMILIES = {
    "mlp": (lambda: models.mlp(64, [32, 24], 10), (8, 64)),
    "vgg_bn": (lambda: models.tiny_vgg_bn(), (8, 3, 16, 16)),
    "resnet": (lambda: models.tiny_resnet(), (8, 3, 16, 16)),
    "concat": (lambda: models.concat_net(), (8, 3, 16, 16)),
}


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "steps_per_epoch"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"steps_per_epoch": 5, "bogus": 1}, "bogus"),
        ({"steps_per_epoch": 5, "warmup_epochs": -1}, "warmup_epochs"),
        ({"steps_per_epoch": 5, "lr": 0.0}, "lr"),
        ({"steps_per_epoch": 5, "momentum": 1.0}, "momentum"),
        ({"steps_per_epoch": 5, "hidden": 0}, "hidden"),
    ],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(al.ArchlearnError, match=key):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="switcher", **options)


def test_reads_fan_out_weights_of_the_consumer():
    model = models.tiny_vgg_bn()  # last conv (16 channels) -> flatten (x16) -> Linear(256, 10)
    learner = al.attach(model, torch.zeros(1, 3, 16, 16), method="switcher", steps_per_epoch=1)
    m = learner.method
    last = len(learner.groups) - 1
    features = m.readers[last]()
    fc = model[-1].weight  # [10, 256], channel c feeds features 16c .. 16c+15
    assert features.shape == (16, 10 * 16)
    assert torch.equal(features[3], fc[:, 48:64].reshape(-1))
    conv = model[4].weight  # consumer of the first group: [16, 8, 3, 3]
    assert torch.equal(m.readers[0]()[2], conv[:, 2].reshape(-1))
    assert all(p is not q for p in learner.parameters() for q in model.parameters())


def test_single_unit_groups_stay_ungated():
    learner = al.attach(models.mlp(4, [1, 8], 2), torch.zeros(1, 4), method="switcher",
                        steps_per_epoch=1, warmup_epochs=0)
    assert learner.method.ungated == [learner.groups[0].name]
    assert torch.equal(learner.decisions()[0].scale, torch.ones(1))


def test_epochs_alternate_and_the_frozen_side_does_not_move():
    torch.manual_seed(0)
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="switcher", steps_per_epoch=2,
                        warmup_epochs=1, init_bias=1.0)
    m = learner.method
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def snapshot():
        return ([p.detach().clone() for p in model.parameters()],
                [p.detach().clone() for p in learner.parameters()])

    def moved(a, b):
        return any(not torch.equal(u, v) for u, v in zip(a, b))

    phases = []
    for _ in range(8):
        weights, switch = snapshot()
        active = m.active()
        model.train()
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()
        after_w, after_s = snapshot()
        phases.append((active, moved(weights, after_w), moved(switch, after_s)))
    assert phases[:2] == [(False, True, False)] * 2  # warm-up: plain training, no gates
    assert phases[2:4] == [(True, False, True)] * 2  # switcher epoch: weights frozen
    assert phases[4:6] == [(True, True, False)] * 2  # weight epoch: switcher frozen
    assert phases[6:8] == [(True, False, True)] * 2
    assert float(learner.penalty()) == 0.0


def test_eval_gates_use_running_statistics_and_are_the_decision():
    model = models.mlp(6, [16], 3)
    learner = al.attach(model, torch.zeros(1, 6), method="switcher", steps_per_epoch=1,
                        warmup_epochs=0)
    m = learner.method
    model.train()
    train_scale = m.unit_scale(0).detach()
    assert (train_scale == 0).any() and (train_scale > 0).any()  # BN + ReLU: exact zeros
    assert m.nets[0].training
    model.eval()
    eval_scale = m.unit_scale(0).detach()
    assert not m.nets[0].training
    assert not torch.equal(eval_scale, train_scale)  # one running-stat update differs
    assert torch.equal(learner.decisions()[0].scale, eval_scale)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_shrunk_model_equals_gated_model(family):
    build, shape = FAMILIES[family]
    model = build()
    x = torch.randn(*shape)
    settle_batchnorm(model, x)
    learner = al.attach(model, x[:1], method="switcher", steps_per_epoch=1, warmup_epochs=0)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for net in learner.method.nets.values():
            net[4].bias.copy_(torch.randn(1, generator=gen) * 0.3)
    model.train()
    for _ in range(30):  # running statistics of the switchers' BatchNorms
        for i in learner.method.nets:
            learner.method.unit_scale(i)
    scales = torch.cat([d.scale for d in learner.decisions()])
    assert (scales == 0).any() and (scales > 0).any()
    before = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        shrunk = small(x)
    assert torch.allclose(shrunk, gated, atol=1e-5), (shrunk - gated).abs().max()
    assert sum(p.numel() for p in small.parameters()) < before


def test_state_dict_round_trip_includes_batchnorm_buffers():
    model = models.mlp(6, [16], 3)
    learner = al.attach(model, torch.zeros(1, 6), method="switcher", steps_per_epoch=1,
                        warmup_epochs=0)
    model.train()
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    learner.step()
    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    buffer.seek(0)
    clone = models.mlp(6, [16], 3)
    clone.load_state_dict(model.state_dict())
    other = al.attach(clone, torch.zeros(1, 6), method="switcher", steps_per_epoch=1,
                      warmup_epochs=0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(other.decisions()[0].scale, learner.decisions()[0].scale)
    assert other.method.t == 1


def test_users_own_loop_learns_a_smaller_accurate_net():
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10)
    learner, accuracy, widths = train_in_user_loop(model, splits, "switcher", steps_per_epoch=0,
                                                   total_steps=0)
    assert accuracy > 0.93, accuracy
    assert sum(widths) < 0.9 * (128 + 64), widths
