"""Device and precision on the CPU, for every registered method: the structure parameters live
where the model lives (and in its dtype), follow it when it moves, train under autocast and a
GradScaler, and the gated model runs under ``torch.compile``. The same checks on a GPU, with
NCCL, are in test_gpu.py (skipped without CUDA)."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models
from archlearn.methods import names

METHODS = names()


def setup(method, seed=0, **options):
    torch.manual_seed(seed)
    model = models.mlp(16, [12, 8], 4, batchnorm=True)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(seed))
    learner = al.attach(model, x[:1], method=method, total_steps=40, steps_per_epoch=4,
                        **options)
    return model, learner, x, y


def train(model, learner, x, y, steps=3, autocast=None, scaler=None, forward=None):
    forward = forward or model
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        model.train()
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = nn.functional.cross_entropy(forward(x).float(), y) + learner.penalty()
        opt.zero_grad()
        if scaler is None:
            loss.backward()
            opt.step()
            learner.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            learner.step(scaler)  # before scaler.update(): unscale with the scale used
            scaler.update()


def assert_shrink_exact(model, learner, x, atol=1e-5):
    model.eval()
    with torch.no_grad():
        gated = model(x)
        small = learner.shrink().eval()
        assert torch.allclose(small(x), gated, atol=atol), (small(x) - gated).abs().max()


def optimizer_tensors(learner):
    opt = learner.method.optimizer
    if opt is None:
        return []
    return [v for state in opt.state.values() for k, v in state.items()
            if torch.is_tensor(v) and k != "step"]


@pytest.mark.parametrize("method", METHODS)
def test_learner_to_moves_model_gates_and_optimizer_state(method):
    model, learner, x, y = setup(method)
    train(model, learner, x, y)
    assert learner.to(torch.float64) is learner
    assert model[1].weight.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in learner.parameters())
    assert all(v.dtype == torch.float64 for v in optimizer_tensors(learner))
    x64 = x.double()
    train(model, learner, x64, y)  # the optimizer's references survived the move
    assert all(p.dtype == torch.float64 for p in learner.parameters())
    assert_shrink_exact(model, learner, x64, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_gates_follow_the_model_when_it_moves(method):
    model, learner, x, y = setup(method)
    model.double()
    train(model, learner, x.double(), y, steps=2)
    assert learner.method.dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in learner.parameters())
    assert_shrink_exact(model, learner, x.double(), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_a_half_precision_model_keeps_float32_structure_parameters(method):
    model, learner, x, y = setup(method)
    model.bfloat16()
    train(model, learner, x.bfloat16(), y, steps=2)
    assert all(p.dtype == torch.float32 for p in learner.parameters())
    assert all(torch.isfinite(p).all() for p in learner.parameters())
    small = learner.shrink()  # traced with example inputs cast to the model's dtype
    assert next(small.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("method", METHODS)
def test_training_under_bfloat16_autocast(method):
    model, learner, x, y = setup(method)
    start = [p.detach().clone() for p in learner.parameters()]
    train(model, learner, x, y, steps=4, autocast=torch.bfloat16)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all()
               for p in learner.parameters())
    if start:
        assert any(not torch.equal(p, q) for p, q in zip(learner.parameters(), start))
    assert learner.method.t == 4
    assert_shrink_exact(model, learner, x)


@pytest.mark.parametrize("method", METHODS)
def test_grad_scaler_gives_the_unscaled_update_and_skips_non_finite_steps(method):
    plain_model, plain, x, y = setup(method)
    train(plain_model, plain, x, y, steps=3)
    model, learner, _, _ = setup(method)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    train(model, learner, x, y, steps=3, scaler=scaler)
    for p, q in zip(learner.parameters(), plain.parameters()):
        assert torch.allclose(p, q, atol=1e-6), (p - q).abs().max()
    if not learner.parameters():
        return
    before = [p.detach().clone() for p in learner.parameters()]
    model.train()
    loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
    scaler.scale(loss).backward()
    learner.parameters()[0].grad.fill_(float("inf"))  # an overflow in the structure gradients
    learner.step(scaler)
    assert all(torch.equal(p, q) for p, q in zip(learner.parameters(), before))
    assert learner.method.t == 4  # skipped, but counted: the schedule follows the run


@pytest.mark.parametrize("method", METHODS)
def test_torch_compile_on_the_gated_model(method):
    """Dynamo traces the gate hooks (graph breaks where a method needs Python) and AOT autograd
    the backward: training through the compiled module equals eager training."""
    model, learner, x, y = setup(method)
    eager_model, eager, _, _ = setup(method)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    train(model, learner, x, y, steps=3, forward=compiled)
    train(eager_model, eager, x, y, steps=3)
    for p, q in zip(learner.parameters(), eager.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-6)
    assert_shrink_exact(model, learner, x)
    torch._dynamo.reset()
