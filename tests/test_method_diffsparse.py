"""Differentiable sparsification: gate formula, penalty, exact zeros from plain training; the
unstructured mode (per weight) and the cell mode (per node input) with its learned graph (the
shared contract is in test_method_contract.py)."""

import tempfile

import pytest
import torch
from helpers import settle_batchnorm, train_in_user_loop
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.graphs import cell_net, complete_dag


@pytest.mark.parametrize("renorm", ["max", "sum"])
def test_gate_formula_and_dense_start(renorm):
    model = models.mlp(3, [4], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", threshold=0.5,
                        renorm=renorm)
    m = learner.method
    assert torch.allclose(m.unit_scale(0), torch.ones(4))  # attaching changes nothing
    with torch.no_grad():
        m.beta[0].copy_(torch.tensor([0.0, 1.0, -2.0, 0.5]))
    a = torch.softmax(m.beta[0].detach(), 0)
    g = torch.relu(a - 0.5 / 4)
    expected = g / g.max() if renorm == "max" else 4 * g / g.sum()
    assert torch.allclose(m.unit_scale(0), expected)
    assert m.unit_scale(0)[2] == 0  # share 0.03 < tau = 0.125: exactly zero
    assert torch.equal(learner.decisions()[0].scale, expected.detach())


def test_penalty_is_lp_of_the_shares():
    model = models.mlp(3, [4, 9], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", lam=2.0, p=0.5,
                        normalize=False)
    m = learner.method
    with torch.no_grad():
        m.beta[0].copy_(torch.tensor([0.0, 1.0, -2.0, 0.5]))
    expected = 2.0 * (torch.softmax(m.beta[0], 0).sqrt().sum() + 9 ** 0.5)
    assert torch.allclose(learner.penalty(), expected)
    norm = al.attach(models.mlp(3, [4, 9], 2), torch.zeros(1, 3), method="diffsparse", lam=2.0)
    assert norm.penalty().item() == pytest.approx(4.0)  # each uniform group contributes 1


def test_a_group_never_loses_every_unit():
    model = models.mlp(3, [6], 2)
    learner = al.attach(model, torch.zeros(1, 3), method="diffsparse", threshold=0.99)
    with torch.no_grad():
        learner.method.beta[0].copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.1]))
    scale = learner.decisions()[0].scale
    assert scale.tolist() == [0, 0, 0, 0, 0, 1]


def test_plain_training_reaches_exact_zeros_and_a_smaller_accurate_net():
    """No pruning step anywhere: the gates themselves become exactly 0 during training."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10)
    epochs = 30
    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], method="diffsparse")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    zeros = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
        with torch.no_grad():  # the training-mode gates the forward pass used
            zeros.append(sum(int((learner.method.unit_scale(i) == 0).sum())
                             for i in range(len(learner.groups))))
    assert zeros[0] < zeros[-1] and zeros[-1] > 0, zeros
    model.eval()
    small = learner.shrink().eval()
    x, y = splits.test.tensors
    with torch.no_grad():
        accuracy = (small(x).argmax(1) == y).float().mean().item()
        assert torch.allclose(small(x), model(x), atol=1e-5)
    widths = [layer["width"] for layer in learner.architecture()["layers"]]
    assert sum(widths) == 192 - zeros[-1]
    assert accuracy > 0.93, accuracy
    assert sum(widths) < 0.8 * (128 + 64), widths


def test_bad_mode_is_refused_and_cell_mode_needs_a_cell():
    with pytest.raises(al.ArchlearnError, match="mode"):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="diffsparse", mode="edges")
    with pytest.raises(al.ArchlearnError, match="node_inputs"):
        al.attach(models.mlp(4, [8], 2), torch.zeros(1, 4), method="diffsparse", mode="cell")


def test_weights_mode_scales_each_row_and_each_filter_on_its_own():
    model = models.lenet5(widths=(3, 4, 6))
    learner = al.attach(model, torch.zeros(1, 1, 28, 28), method="diffsparse", mode="weights",
                        threshold=0.5)
    m = learner.method
    assert m.weight_modules == ["0", "3", "7", "9"]  # every Linear/Conv, the output included
    for name in m.weight_modules:  # attaching changes nothing
        assert torch.equal(m.weight_scale(name), torch.ones_like(model.get_submodule(name).weight))
    conv = m.index["3"]
    assert m.beta[conv].shape == (4, 3 * 5 * 5)  # one group per filter: its inputs
    with torch.no_grad():
        m.beta[conv].normal_(generator=torch.Generator().manual_seed(0))
    scale = m.weight_scale("3")
    a = torch.softmax(m.beta[conv].detach()[1], 0)
    g = torch.relu(a - 0.5 / 75)
    assert torch.allclose(scale[1].flatten(), g / g.max())
    assert (scale == 0).any()
    assert torch.equal(scale.amax(dim=(1, 2, 3)), torch.ones(4))  # every filter keeps a weight


def _sparse_weights(learner, seed=5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in learner.method.beta:
            b.copy_(torch.randn(b.shape, generator=gen))


def test_weights_mode_on_convs_shrinks_to_exact_kept_zeros():
    model = models.lenet5(widths=(4, 6, 12))
    x = torch.randn(8, 1, 28, 28)
    learner = al.attach(model, x[:1], method="diffsparse", mode="weights")
    _sparse_weights(learner)
    scales = learner.decisions()[0].weights
    zeros = sum(int((s == 0).sum()) for s in scales.values())
    assert zeros > 0 and scales["3"].shape == model[3].weight.shape  # one scale per weight
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        assert torch.allclose(small(x), gated, atol=1e-5)
    for name, s in scales.items():
        assert torch.equal(small.get_submodule(name).weight == 0, s == 0)
    arch = learner.architecture()
    assert arch["params"] == sum(p.numel() for p in model.parameters())
    assert arch["nonzero_params"] == arch["params"] - zeros


def test_weights_mode_round_trip_and_fine_tuning_keep_the_zeros():
    torch.manual_seed(0)
    model = models.mlp(12, [10], 3)
    x = torch.randn(16, 12)
    learner = al.attach(model, x[:1], method="diffsparse", mode="weights")
    _sparse_weights(learner)
    small = learner.shrink()
    nonzero = al.measure(small, x, repeats=1)["nonzero_params"]
    with tempfile.TemporaryDirectory() as d:
        al.save(small, d)
        loaded = al.load(d, model=models.mlp(12, [10], 3))
    assert torch.equal(loaded(x), small(x))
    zeros = [m.weight == 0 for m in loaded.modules() if isinstance(m, nn.Linear)]
    optimizer = torch.optim.SGD(loaded.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        nn.functional.cross_entropy(loaded(x), torch.randint(0, 3, (16,))).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = [m.weight == 0 for m in loaded.modules() if isinstance(m, nn.Linear)]
    assert all(torch.equal(a, b) for a, b in zip(zeros, after))
    assert al.measure(loaded, x, repeats=1)["nonzero_params"] == nonzero


@pytest.mark.parametrize(("beta", "options", "nonzero", "accuracy_floor"), [
    ("adam", {"lr": 3e-2}, 0.5, 0.9),  # measured: 24% of the weights left, 93.1% (dense 94.0%)
    ("sgd", {"lr": 1.0, "lam": 20.0}, 0.95, 0.8),  # measured: 89% left, 83.1%
])
def test_weights_mode_reaches_exact_zeros_under_plain_sgd(beta, options, nonzero,
                                                          accuracy_floor):
    """No pruning step: the weights train with plain SGD, and single weights' scales become
    exactly 0 (beta with the method's Adam, or with plain SGD too, which is slower to tune)."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    learner, accuracy, _ = train_in_user_loop(models.mlp(64, [32], 10), splits, "diffsparse",
                                              epochs=20, sgd_lr=0.1, mode="weights",
                                              optimizer=beta, **options)
    arch = learner.architecture()
    assert arch["nonzero_params"] < nonzero * arch["params"], arch
    assert accuracy > accuracy_floor, accuracy


def test_cell_mode_cuts_edges_and_the_cell_reads_them_back():
    torch.manual_seed(0)
    net = cell_net(complete_dag(4), length=12, num_classes=3, channels=2)
    x = torch.randn(6, 1, 12)
    settle_batchnorm(net, x)
    learner = al.attach(net, x[:1], method="diffsparse", mode="cell", threshold=0.5)
    m = learner.method
    assert m.weight_modules == ["0.ops.n1.0", "0.ops.n2.0", "0.ops.n3.0"]  # node 0 reads x
    assert [b.numel() for b in m.beta] == [1, 2, 3]  # in-degrees
    with torch.no_grad():
        m.beta[2].copy_(torch.tensor([2.0, -3.0, 0.5]))  # node 3: the edge 1 -> 3 goes
    scale = m.weight_scale("0.ops.n3.0")
    assert scale.shape == (2, 6) and torch.equal(scale[:, 2:4], torch.zeros(2, 2))
    assert (scale[:, :2] == 1).all() and (scale[:, 4:] > 0).all()
    net.eval()
    with torch.no_grad():
        gated = net(x)
        small = learner.shrink().eval()
        assert torch.allclose(small(x), gated, atol=1e-5)
    assert sorted(small[0].learned_graph().edges) == [(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)]
