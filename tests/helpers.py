"""Helpers shared by the shrinking tests."""

import torch
from torch import nn


def settle_batchnorm(model: nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    """Give BatchNorm layers non-trivial running statistics (a zeroed channel then maps to a
    non-zero constant, the case that breaks naive gating)."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x * 2 + 0.5)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()


def random_gates(learner, generator: torch.Generator, all_off: int | None = 0) -> None:
    """Set tri-state gates to a random 0/1 pattern; group ``all_off`` gets every unit off."""
    method = learner.method
    with torch.no_grad():
        for i, w in method.w.items():
            w.copy_((torch.rand(w.shape, generator=generator) > 0.4).float())
            if i == all_off:
                w.zero_()
        for d in method.d.values():
            d.fill_(float(torch.rand((), generator=generator) > 0.5))


def train_in_user_loop(model: nn.Module, splits, method: str, epochs: int = 30,
                       sgd_lr: float | None = None, **options):
    """The user's own loop (attach, add penalty(), step() after the unchanged optimizer step);
    returns the learner, the shrunk model's test accuracy and the learned widths, after checking
    that the shrunk model's outputs equal the gated model's. The weights train with Adam (lr
    1e-3), or with plain SGD at ``sgd_lr``."""
    import archlearn as al

    loader = torch.utils.data.DataLoader(splits.train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    if "steps_per_epoch" in options:
        options["steps_per_epoch"] = len(loader)
    if "total_steps" in options:
        options["total_steps"] = epochs * len(loader)
    learner = al.attach(model, splits.train.tensors[0][:1], method=method, **options)
    optimizer = (torch.optim.SGD(model.parameters(), lr=sgd_lr) if sgd_lr
                 else torch.optim.Adam(model.parameters(), lr=1e-3))
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    model.eval()
    small = learner.shrink().eval()
    x, y = splits.test.tensors
    with torch.no_grad():
        accuracy = (small(x).argmax(1) == y).float().mean().item()
        assert torch.allclose(small(x), model(x), atol=1e-5)
    widths = [layer["width"] for layer in learner.architecture()["layers"]]
    return learner, accuracy, widths


def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, steps: int = 4) -> None:
    """Recompute BatchNorm running statistics under the current gates (cumulative average).

    A forced gate pattern changes what each BatchNorm sees; stale statistics can blow outputs
    up (research/PITFALLS.md), which would make any tolerance meaningless.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was = model.training
    model.train()
    with torch.no_grad():
        for i in range(steps):
            model(x * (1 + 0.1 * i))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was)


def assert_shrinks_exactly(learner, build, x: torch.Tensor, tmp_path=None) -> nn.Module:
    """The shrunk model's eval outputs equal the gated model's (relative 1e-4), its parameter
    count is the one ``architecture()`` reports, and save/load rebuilds it on ``build()``."""
    import archlearn as al
    from archlearn.structure.graph import flatten_tensors

    model = learner.model
    model.eval()
    with torch.no_grad():
        gated = flatten_tensors(model(x))
        small = learner.shrink().eval()
        shrunk = flatten_tensors(small(x))
    assert len(gated) == len(shrunk)
    for a, b in zip(gated, shrunk):
        scale = max(1.0, float(a.abs().max()))
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4 * scale), (
            float((a - b).abs().max()), scale)
    params = sum(p.numel() for p in small.parameters())
    assert params == learner.architecture()["params"]
    if tmp_path is not None:
        loaded = al.load(al.save(small, tmp_path), model=build()).eval()
        with torch.no_grad():
            for a, b in zip(shrunk, flatten_tensors(loaded(x))):
                assert torch.allclose(a, b, atol=1e-6)
    return small


def sgd_steps(learner, model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` plain SGD steps on cross entropy plus the learner's penalty (lr 0.05)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        learner.step()


def resumed_copy(learner, model: nn.Module, build, x: torch.Tensor, **attach):
    """A fresh ``build()`` attached with ``attach`` and loaded from a checkpoint of ``model``
    and ``learner`` written to bytes (``weights_only``, as a user resumes):
    ``(learner, model)``."""
    import io

    import archlearn as al

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "learner": learner.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    clone = build()
    clone.load_state_dict(state["model"])
    other = al.attach(clone, x[:1], **attach)
    other.load_state_dict(state["learner"])
    return other, clone
