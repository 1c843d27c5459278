"""Keeping masks while retraining, iterative / one-shot schedules, the sparsity report."""

import pytest
import torch
from torch import nn

from archlearn.prune import MaskKeeper, apply_masks, iterative, magnitude, one_shot, sparsity


def net_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return net, torch.randn(32, 6), torch.randint(0, 3, (32,))


def make_train_fn(x: torch.Tensor, y: torch.Tensor, use_attach: bool = False):
    calls = []

    def train_fn(model: nn.Module, epochs: int, keeper: MaskKeeper) -> float:
        # Momentum + weight decay: gradient zeroing alone would let pruned weights drift.
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        handle = keeper.attach(opt) if use_attach else None
        for _ in range(epochs * 3):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if handle is None:
                keeper.step()
            assert all((model.get_parameter(n)[~m] == 0).all() for n, m in keeper.masks.items())
        if handle is not None:
            handle.remove()
        calls.append(epochs)
        return loss.item()

    train_fn.calls = calls  # type: ignore[attr-defined]
    return train_fn


@pytest.mark.parametrize("use_attach", [False, True])
def test_masked_weights_stay_zero_while_retraining(use_attach: bool) -> None:
    net, x, y = net_and_data()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(3):  # optimizer state built before pruning
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    masks = magnitude(net, 0.6, "uniform")
    before = {n: net.get_parameter(n).detach().clone() for n in masks}
    keeper = MaskKeeper(net, masks)
    handle = keeper.attach(opt) if use_attach else None
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        if handle is None:
            keeper.step()
    for name, mask in masks.items():
        w = net.get_parameter(name).detach()
        assert (w[~mask] == 0).all()
        assert not torch.equal(w[mask], before[name][mask])  # kept weights did train


def test_without_keeper_pruned_weights_drift() -> None:
    # The reason MaskKeeper exists: Adam's moments move zeroed weights back.
    net, x, y = net_and_data()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    masks = magnitude(net, 0.5, "blind")
    opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    assert any((net.get_parameter(n)[~m] != 0).any() for n, m in masks.items())


def test_apply_masks_zeroes_in_place() -> None:
    net = nn.Linear(3, 2, bias=False)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    apply_masks(net, {"weight": mask})
    assert (net.weight[~mask] == 0).all() and (net.weight[mask] != 0).all()
    with pytest.raises(ValueError, match="bool"):
        apply_masks(net, {"weight": mask.float()})


def test_iterative_history_and_cumulative_sparsity() -> None:
    net, x, y = net_and_data()
    train_fn = make_train_fn(x, y)
    masks, hist = iterative(
        net, train_fn, amount_per_step=0.5, steps=3, scope="blind", retrain_epochs=2
    )
    assert [h["step"] for h in hist] == [1, 2, 3]
    n = 6 * 8 + 8 * 3
    pruned = [round(0.5 * n)]
    for _ in range(2):
        pruned.append(pruned[-1] + round(0.5 * (n - pruned[-1])))
    assert [h["total"] for h in hist] == [p / n for p in pruned]
    assert set(hist[-1]["layers"]) == {"0.weight", "2.weight"}
    assert all(isinstance(h["train"], float) for h in hist)
    assert train_fn.calls == [2, 2, 2]
    for name, mask in masks.items():
        assert (net.get_parameter(name)[~mask] == 0).all()
    for earlier, later in zip(hist, hist[1:]):  # sparsity never decreases, per layer
        assert all(later["layers"][k] >= v for k, v in earlier["layers"].items())


def test_one_shot_and_no_retraining() -> None:
    net, x, y = net_and_data()
    train_fn = make_train_fn(x, y, use_attach=True)
    masks, hist = one_shot(net, train_fn, 0.8, "uniform", 1)
    assert len(hist) == 1 and train_fn.calls == [1]
    assert hist[0]["layers"] == pytest.approx({"0.weight": 38 / 48, "2.weight": 19 / 24})
    net2, _, _ = net_and_data()
    _, hist2 = one_shot(net2, train_fn, 0.5, "distributed", 0)
    assert train_fn.calls == [1] and hist2[0]["train"] is None


def test_schedule_validation() -> None:
    net, x, y = net_and_data()
    fn = make_train_fn(x, y)
    with pytest.raises(ValueError, match="steps"):
        iterative(net, fn, amount_per_step=0.5, steps=0, scope="blind", retrain_epochs=1)
    with pytest.raises(ValueError, match="retrain_epochs"):
        one_shot(net, fn, 0.5, "blind", -1)
    with pytest.raises(ValueError, match="amount"):
        one_shot(net, fn, 1.2, "blind", 0)


def test_sparsity_counts_unmasked_layers_as_dense() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Conv1d(1, 1, 2))
    report = sparsity(net, {"0.weight": torch.tensor([[False, False], [True, False]])})
    assert report == {"layers": {"0.weight": 0.75}, "total": 3 / 6}
