"""The switcher network: what it reads, epoch alternation, eval gates (the shared contract is in
test_method_contract.py)."""


import torch
from torch import nn

import archlearn as al
from archlearn import models


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
                        steps_per_epoch=1)
    assert learner.method.ungated == [learner.groups[0].name]
    assert torch.equal(learner.decisions()[0].scale, torch.ones(1))


def test_epochs_alternate_and_the_frozen_side_does_not_move():
    torch.manual_seed(0)
    model = models.mlp(4, [8], 2)
    learner = al.attach(model, torch.zeros(1, 4), method="switcher", steps_per_epoch=2,
                        total_steps=8, warmup=0.25, init_bias=1.0)
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
        active = not m.warming_up
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
    learner = al.attach(model, torch.zeros(1, 6), method="switcher", steps_per_epoch=1)
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


