"""The contract every registered method keeps, checked once for all of them (one row each).

Nothing here names a method: a new module in ``archlearn/methods`` is picked up by the registry
and runs every test below. Method-specific semantics (formulas, schedules) stay in the
method's own test file. The behavioural tests also run each variant a method declares
(``Method.variants``, e.g. gating single weights instead of units: an unstructured result
whose zeros are checked instead of removed units).
"""

import io
import typing

import annotated_types
import pytest
import torch
from helpers import settle_batchnorm
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.methods import REGISTRY, Method, Options, names, register, variants
from archlearn.methods.base import parse_options

METHODS = names()
ROWS = variants()  # (label, method, options): every method's defaults, then its variants
ROW_IDS = [label for label, _, _ in ROWS]
RUN = {"total_steps": 40, "steps_per_epoch": 10}  # what a run supplies (the schedule lengths)


def concat_bn() -> nn.Module:
    """Two conv-BN-ReLU branches concatenated on channels, then conv-BN-ReLU, pool, Linear."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
            self.c = nn.Sequential(nn.Conv2d(10, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

        def forward(self, x):
            return self.head(self.c(torch.cat([self.a(x), self.b(x)], 1)))

    return Net()


# every family has BatchNorm after its gated layers, so every method can attach to it
FAMILIES = {
    "mlp_bn": (lambda: models.mlp(64, [32, 24], 10, batchnorm=True), (8, 64)),
    "vgg_bn": (lambda: models.tiny_vgg_bn(), (8, 3, 16, 16)),
    "resnet": (lambda: models.tiny_resnet(), (8, 3, 16, 16)),
    "concat_bn": (concat_bn, (8, 3, 16, 16)),
}


def attach(model, x, method, **options):
    return al.attach(model, x[:1], method=method, **{**RUN, **options})


def weight_zeros(learner) -> int:
    """Single weights an unstructured decision switches off (0 for unit-gating methods)."""
    return sum(int((s == 0).sum()) for d in learner.decisions() for s in (d.weights or {}).values())


def randomise_structure(learner, seed: int) -> None:
    """Random structure parameters: any method's gates then decide a mixed pattern. Methods
    that read the model's own BatchNorm scales (slimming, morphnet) get some of them near 0.

    A meta-network's own parameters (a method's modules) are perturbed, not replaced: random
    weights through a deep U-Net give gates of 1e15, where float32 sums differ in the 5th digit.
    """
    in_modules = {id(p) for m in learner.method.modules.values() for p in m.parameters()}
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in learner.parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(p * (1 + 0.3 * noise) if id(p) in in_modules else noise * 2)
        for m in learner.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.mul_(torch.where(torch.rand(m.weight.shape, generator=gen) < 0.3,
                                          1e-3, 1.0))


def _refresh_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm's running statistics recomputed over ``x`` (one pass, a plain average)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def outputs(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


# -- the registry ----------------------------------------------------------------------------
def test_register_refuses_a_taken_name_and_an_incomplete_method():
    with pytest.raises(al.ArchlearnError, match="already registered"):
        register(REGISTRY[METHODS[0]])

    class Incomplete(Method):
        name = "incomplete-method"
        Options = Options

    with pytest.raises(al.ArchlearnError, match="does not implement"):
        register(Incomplete)
    assert "incomplete-method" not in REGISTRY


@pytest.mark.parametrize("method", METHODS)
def test_method_is_documented_and_takes_the_base_schedule(method):
    cls = REGISTRY[method]
    assert cls.__doc__ and cls.Options.__mro__[1:].count(Options) == 1
    assert {"total_steps", "steps_per_epoch", "warmup", "freeze"} <= set(cls.Options.model_fields)
    module = __import__(cls.__module__, fromlist=["_"])
    assert module.__doc__ and len(module.__doc__) > 200  # what it does and why, in its module


# -- bad options: every constrained field of every method, derived from its declaration -------
def _bad_values(field) -> list:
    """Values that break a field's declared constraints (range, choices, type)."""
    bad = []
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            bad.append(meta.gt)
        elif isinstance(meta, annotated_types.Ge):
            bad.append(meta.ge - 1)
        elif isinstance(meta, annotated_types.Lt):
            bad.append(meta.lt)
        elif isinstance(meta, annotated_types.Le):
            bad.append(meta.le + 1)
    args = typing.get_args(field.annotation) or (field.annotation,)
    literal = [a for a in args if typing.get_origin(a) is typing.Literal]
    if literal or field.annotation is bool:
        bad.append("no-such-choice")
    if not bad:
        bad.append(object())  # no declared range: a value of no accepted type
    return bad


CASES = [(m, key, value) for m in METHODS
         for key, field in REGISTRY[m].Options.model_fields.items() for value in _bad_values(field)]


@pytest.mark.parametrize(("method", "key", "value"), CASES,
                         ids=[f"{m}-{k}-{i}" for i, (m, k, _) in enumerate(CASES)])
def test_a_bad_option_is_one_error_naming_the_key(method, key, value):
    with pytest.raises(al.ArchlearnError, match=f"{method} option '{key}"):
        parse_options(method, {**RUN, key: value})


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_and_a_fraction_without_total_steps_are_refused(method):
    x = torch.zeros(1, 64)
    with pytest.raises(al.ArchlearnError, match="no option 'no_such_option'"):
        attach(models.mlp(64, [8], 2, batchnorm=True), x, method, no_such_option=1)
    with pytest.raises(al.ArchlearnError, match="total_steps is required when freeze"):
        al.attach(models.mlp(64, [8], 2, batchnorm=True), x, method=method,
                  steps_per_epoch=5, freeze=0.5)


# -- shrinking is exact -----------------------------------------------------------------------
@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(("label", "method", "options"), ROWS, ids=ROW_IDS)
def test_shrunk_model_equals_gated_model(label, method, options, family):
    build, shape = FAMILIES[family]
    model = build()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    settle_batchnorm(model, x)
    learner = attach(model, x, method, **options)
    randomise_structure(learner, seed=3)
    model.train()
    for _ in range(3):  # BatchNorm statistics of a method's own modules, if it has any
        model(x)
    scales = torch.cat([d.scale for d in learner.decisions()])
    unstructured = bool(learner.method.weight_modules)
    if unstructured:
        assert weight_zeros(learner) > 0, "random structure parameters switched no weight off"
    else:
        assert (scales == 0).any(), "random structure parameters switched no unit off"
    gated = outputs(model, x)
    small = learner.shrink()
    assert torch.allclose(outputs(small, x), gated, atol=1e-5)
    arch, total = learner.architecture(), sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in small.parameters()) == arch["params"]
    assert al.measure(small, x, repeats=1)["nonzero_params"] == arch["nonzero_params"]
    if unstructured:  # the same shapes, exact zeros where the decision put them
        assert arch["params"] == total and arch["nonzero_params"] < total
        for name, s in learner.decisions()[0].weights.items():
            w = small.get_submodule(name).weight
            assert torch.equal((w == 0).flatten(2).all(-1) if s.dim() < w.dim() else w == 0,
                               s == 0)
    else:
        assert arch["params"] < total


# -- the schedule: warm-up and freeze mean the same for every method ---------------------------
def _train_steps(model, learner, x, y, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        model.train()
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()


@pytest.mark.parametrize(("label", "method", "options"), ROWS, ids=ROW_IDS)
def test_warmup_and_freeze(label, method, options):
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    model = models.mlp(64, [16, 12], 10, batchnorm=True)
    learner = al.attach(model, x[:1], method=method, total_steps=8, steps_per_epoch=2,
                        warmup=0.25, freeze=0.75, **options)
    start = [p.detach().clone() for p in learner.parameters()]
    assert float(learner.penalty()) == 0.0 and learner.method.warming_up
    _train_steps(model, learner, x, y, 2)  # the warm-up: the structure does not move
    assert all(torch.equal(p, q) for p, q in zip(learner.parameters(), start))
    assert learner.method.phase == "active"
    _train_steps(model, learner, x, y, 4)
    assert learner.method.frozen and float(learner.penalty()) == 0.0
    fixed = [p.detach().clone() for p in learner.parameters()]
    decided = [d.scale.clone() for d in learner.decisions()]
    weights = learner.decisions()[0].weights or {}
    _train_steps(model, learner, x, y, 2)  # frozen: fixed gates, the weights fine-tune
    assert all(torch.equal(p, q) for p, q in zip(learner.parameters(), fixed))
    model.train()
    for i, d in enumerate(decided):
        assert torch.equal(learner.method.gate(i), d)
        assert torch.equal(learner.decisions()[i].scale, d)
    for name, s in weights.items():
        assert torch.equal(learner.method.weight_gate(name), s)
        assert torch.equal(learner.decisions()[0].weights[name], s)
    assert learner.method.t == 8


# -- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize(("label", "method", "options"), ROWS, ids=ROW_IDS)
def test_state_dict_round_trip_continues_like_the_original(label, method, options):
    """Saved mid-run (weights_only), loaded into a fresh attach: the same next steps follow."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    model = models.mlp(64, [16, 12], 10, batchnorm=True)
    options = {"total_steps": 12, "steps_per_epoch": 3, "freeze": 0.5, **options}
    learner = attach(model, x, method, **options)
    _train_steps(model, learner, x, y, 4)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "learner": learner.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    clone = models.mlp(64, [16, 12], 10, batchnorm=True)
    clone.load_state_dict(state["model"])
    other = attach(clone, x, method, **options)
    other.load_state_dict(state["learner"])
    assert other.method.t == learner.method.t == 4
    assert torch.allclose(outputs(clone, x), outputs(model, x))
    for a, b in ((model, learner), (clone, other)):  # past the freeze: the frozen decision too
        _train_steps(a, b, x, y, 4)
    for p, q in zip(learner.parameters(), other.parameters()):
        assert torch.equal(p, q)
    assert [d.scale.tolist() for d in learner.decisions()] == [
        d.scale.tolist() for d in other.decisions()]
    mine, theirs = learner.decisions()[0].weights or {}, other.decisions()[0].weights or {}
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert other.method.frozen and learner.method.frozen


@pytest.mark.parametrize("method", METHODS)
def test_state_of_another_model_is_refused_whole(method):
    x = torch.zeros(1, 64)
    learner = attach(models.mlp(64, [16, 12], 10, batchnorm=True), x, method)
    other = attach(models.mlp(64, [16, 8], 10, batchnorm=True), x, method)
    before = [p.detach().clone() for p in other.parameters()]
    with pytest.raises(al.ArchlearnError, match="does not fit|shape"):
        other.load_state_dict(learner.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(other.parameters(), before))
    assert other.method.t == 0


# -- the user's own loop, on real data --------------------------------------------------------
@pytest.mark.parametrize(("label", "method", "options"), ROWS, ids=ROW_IDS)
def test_users_own_loop_learns_a_smaller_accurate_net(label, method, options):
    """attach, add penalty(), step() after the unchanged optimizer step; shrink is exact."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [128, 64], 10, batchnorm=True)
    epochs = 30
    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], method=method,
                        total_steps=epochs * len(loader), steps_per_epoch=len(loader), **options)
    keys = list(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    assert list(model.state_dict()) == keys  # gates live in the learner, not the model
    x, y = splits.test.tensors
    small = learner.shrink()
    gated, shrunk = outputs(model, x), outputs(small, x)
    assert torch.allclose(shrunk, gated, atol=1e-5)
    # what a user does after pruning: BatchNorm's running averages trail weights that changed
    # up to the last step (diffsparse's exact zeros of single weights flip on and off), which
    # left the weights variant anywhere from 38% to 93% on an AVX2 CPU, by rounding alone
    _refresh_batchnorm(small, splits.train.tensors[0])
    accuracy = (outputs(small, x).argmax(1) == y).float().mean().item()
    arch = learner.architecture()
    widths = [layer["width"] for layer in arch["layers"]]
    assert accuracy > 0.9, accuracy
    if learner.method.weight_modules:  # unstructured: the same shapes, fewer non-zero weights
        assert arch["nonzero_params"] < 0.9 * arch["params"], arch
    else:
        assert sum(widths) < 0.9 * (128 + 64), widths


# -- budgets: every method lands on one (see archlearn/budget.py) -----------------------------
@pytest.mark.parametrize("method", METHODS)
def test_every_method_lands_on_a_macs_budget(method):
    """With budget={"macs": 0.4} the shrunk model has 95-100% of 40% of the MACs, whether the
    method's own penalty is steered by the controller or only its decision lands at the freeze."""
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [64, 32], 10, batchnorm=True)
    epochs = 4
    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    learner = al.attach(model, splits.train.tensors[0][:1], method=method, budget={"macs": 0.4},
                        total_steps=epochs * len(loader), steps_per_epoch=len(loader))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    arch = learner.architecture()
    target = 0.4 * arch["budget"]["full"]
    assert 0.95 * target <= arch["macs"] <= target, (arch["macs"], target)
    assert arch["budget"]["reached_count"] == arch["macs"]
    x = splits.test.tensors[0]
    assert torch.allclose(outputs(learner.shrink(), x), outputs(model, x), atol=1e-5)
