"""Magnitude pruning: the three classes of Stier et al. on hand-set weights, masks, validation."""

import statistics

import pytest
import torch
from torch import nn

from archlearn.prune import magnitude

T, F = True, False
A = [[1.0, -2.0], [3.0, 0.5]]  # small scale, 4 weights
B = [[10.0, 0.1], [-20.0, 5.0], [0.2, -30.0], [40.0, -0.3]]  # large scale, 8 weights


def two_layer() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 4))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(A))
        net[2].weight.copy_(torch.tensor(B))
        net[0].bias.fill_(0.01)  # tiny biases: would be pruned first if biases were considered
        net[2].bias.fill_(0.01)
    return net


def pruned_fraction(mask: torch.Tensor) -> float:
    return float((~mask).sum()) / mask.numel()


def test_blind_one_global_ranking() -> None:
    # |w| over both layers: .1 .2 .3 .5 1 2 | 3 5 10 20 30 40 -> the 6 smallest go.
    masks = magnitude(two_layer(), 0.5, "blind")
    assert masks["0.weight"].tolist() == [[F, F], [T, F]]
    assert masks["2.weight"].tolist() == [[T, F], [T, T], [F, T], [T, F]]
    # Different fraction per layer: the small-scale layer loses more.
    assert pruned_fraction(masks["0.weight"]) == 0.75
    assert pruned_fraction(masks["2.weight"]) == 0.375


def test_uniform_same_fraction_per_layer() -> None:
    # A: 2 of 4 go (.5, 1); B: 4 of 8 go (.1 .2 .3 5).
    masks = magnitude(two_layer(), 0.5, "uniform")
    assert masks["0.weight"].tolist() == [[F, T], [T, F]]
    assert masks["2.weight"].tolist() == [[T, F], [T, F], [F, T], [T, F]]
    assert pruned_fraction(masks["0.weight"]) == pruned_fraction(masks["2.weight"]) == 0.5


def test_distributed_global_ranking_of_saliency() -> None:
    # sigma_A = 2.0565, sigma_B = 20.778 (sample std). |w|/sigma, ascending:
    # B.1 .0048, B.2 .0096, B.3 .0144, B5 .2406, A.5 .2431, B10 .4813 | A1 .4863, ...
    masks = magnitude(two_layer(), 0.5, "distributed")
    assert masks["0.weight"].tolist() == [[T, T], [T, F]]
    assert masks["2.weight"].tolist() == [[F, F], [T, F], [F, T], [T, F]]
    # Equivalent to one global threshold on |w|/sigma_layer.
    sal = {n: torch.tensor(w).abs() / statistics.stdev(sum(w, [])) for n, w in
           {"0.weight": A, "2.weight": B}.items()}
    kept = torch.cat([sal[n][masks[n]] for n in sal])
    gone = torch.cat([sal[n][~masks[n]] for n in sal])
    assert gone.max() < kept.min()


def test_distributed_threshold_is_t_sigma_per_layer() -> None:
    # t = 0.5: A prunes |w| < 1.028 (1, .5); B prunes |w| < 10.389 (10 .1 5 .2 .3).
    masks = magnitude(two_layer(), scope="distributed", threshold=0.5)
    assert masks["0.weight"].tolist() == [[F, T], [T, F]]
    assert masks["2.weight"].tolist() == [[F, F], [T, F], [F, T], [T, F]]
    for name, w in {"0.weight": A, "2.weight": B}.items():
        sigma = statistics.stdev(sum(w, []))
        assert masks[name].tolist() == [[abs(v) >= 0.5 * sigma for v in row] for row in w]


def test_weights_zeroed_biases_untouched_no_extra_keys() -> None:
    net = two_layer()
    keys = set(net.state_dict())
    masks = magnitude(net, 0.5, "blind")
    assert set(masks) == {"0.weight", "2.weight"}
    for name, mask in masks.items():
        w = net.get_parameter(name).detach()
        assert (w[~mask] == 0).all() and (w[mask] != 0).all()
    assert (net[0].bias == 0.01).all() and (net[2].bias == 0.01).all()
    assert set(net.state_dict()) == keys  # no weight_orig / weight_mask


def test_iterative_prunes_only_remaining_and_never_revives() -> None:
    net = two_layer()
    first = magnitude(net, 0.5, "blind")  # 6 of 12 gone
    with torch.no_grad():  # pruned weights grow back big, as if retrained without a keeper
        for name, mask in first.items():
            net.get_parameter(name)[~mask] = 100.0
    second = magnitude(net, 0.5, "blind", masks=first)  # 3 of the 6 remaining
    assert sum(int((~m).sum()) for m in second.values()) == 9
    for name in first:
        assert not (second[name] & ~first[name]).any()  # nothing revived
        assert (net.get_parameter(name)[~second[name]] == 0).all()
    # Remaining |w| 3 5 10 20 30 40: 3, 5, 10 go.
    assert second["0.weight"].tolist() == [[F, F], [F, F]]
    assert second["2.weight"].tolist() == [[F, F], [T, F], [F, T], [T, F]]


def test_params_restricts_layers_and_keeps_other_masks() -> None:
    net = two_layer()
    first = magnitude(net, 0.5, "uniform", params=["0.weight"])
    assert set(first) == {"0.weight"}
    assert (net[2].weight != 0).all()
    second = magnitude(net, 0.25, "uniform", params=["2.weight"], masks=first)
    assert second["0.weight"].equal(first["0.weight"])
    assert int((~second["2.weight"]).sum()) == 2
    with pytest.raises(ValueError, match="0.bias"):
        magnitude(net, 0.5, params=["0.bias"])


def test_conv_weights_are_pruned() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    masks = magnitude(net, 0.3, "blind")
    assert masks["0.weight"].shape == (4, 3, 3, 3)
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.3 * (108 + 8))


def test_ties_are_deterministic() -> None:
    net = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert magnitude(net, 0.5, "blind")["weight"].tolist() == [[F, F, T, T]]


def test_amount_zero_prunes_nothing() -> None:
    masks = magnitude(two_layer(), 0.0, "distributed")
    assert all(m.all() for m in masks.values())


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, float("nan")])
def test_amount_out_of_range(amount: float) -> None:
    with pytest.raises(ValueError, match="amount"):
        magnitude(two_layer(), amount, "blind")


def test_unknown_scope_lists_the_three() -> None:
    with pytest.raises(ValueError, match="scope") as err:
        magnitude(two_layer(), 0.5, "global")  # type: ignore[arg-type]
    assert all(s in str(err.value) for s in ("blind", "uniform", "distributed"))


def test_threshold_validation() -> None:
    with pytest.raises(ValueError, match="threshold"):
        magnitude(two_layer(), scope="blind", threshold=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        magnitude(two_layer(), 0.5, "distributed", threshold=0.5)
    with pytest.raises(ValueError, match="threshold"):
        magnitude(two_layer(), scope="distributed", threshold=-1.0)


def test_bad_masks_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        magnitude(two_layer(), 0.5, masks={"0.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="nope"):
        magnitude(two_layer(), 0.5, masks={"nope": torch.ones(1, dtype=torch.bool)})
