"""SVD low-rank replacement of Linear layers."""

import pytest
import torch
from torch import nn

from archlearn.prune import param_count, svd_compress, svd_linear


@pytest.mark.parametrize(("in_f", "out_f"), [(12, 7), (5, 9)])
def test_full_rank_is_exact(in_f: int, out_f: int) -> None:
    torch.manual_seed(0)
    lin = nn.Linear(in_f, out_f)
    low = svd_linear(lin, min(in_f, out_f))
    x = torch.randn(16, in_f)
    torch.testing.assert_close(low(x), lin(x), atol=1e-5, rtol=0)
    assert low[0].bias is None and torch.equal(low[1].bias, lin.bias)


def test_rank_r_error_matches_truncated_svd() -> None:
    torch.manual_seed(1)
    lin, r = nn.Linear(10, 8), 3
    x = torch.randn(32, 10)
    u, s, vh = torch.linalg.svd(lin.weight.detach().double())
    w_r = (u[:, :r] * s[:r]) @ vh[:r]
    expected = (x.double() @ (w_r - lin.weight.double()).T).float()
    with torch.no_grad():
        got = svd_linear(lin, r)(x) - lin(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # Eckart-Young: the weight error is the norm of the dropped singular values.
    low = svd_linear(lin, r)
    w_low = (low[1].weight @ low[0].weight).detach().double()
    err = torch.linalg.matrix_norm(w_low - lin.weight.double())
    assert err.item() == pytest.approx(s[r:].norm().item(), rel=1e-5)


def test_param_counts() -> None:
    lin = nn.Linear(100, 50)
    assert param_count(lin) == 100 * 50 + 50
    assert param_count(svd_linear(lin, 10)) == 10 * (100 + 50) + 50
    assert param_count(svd_linear(nn.Linear(100, 50, bias=False), 10)) == 10 * 150


def test_svd_compress_by_name_and_copy() -> None:
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Sequential(nn.Linear(20, 16), nn.ReLU()), nn.Linear(16, 16), nn.Linear(16, 4)
    )
    small = svd_compress(net, {"0.0": 4, "2": 4})
    assert isinstance(net[0][0], nn.Linear) and isinstance(small[0][0], nn.Sequential)
    assert isinstance(small[1], nn.Linear) and small[1].weight is not net[1].weight
    expected = param_count(net) - (20 * 16 + 16 * 4) + 4 * (20 + 16) + 4 * (16 + 4)
    assert param_count(small) == expected
    full = svd_compress(net, {"0.0": 16, "1": 16, "2": 4})
    x = torch.randn(8, 20)
    torch.testing.assert_close(full(x), net(x), atol=1e-5, rtol=0)


def test_svd_validation() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    for rank in (0, 4, 2.0):
        with pytest.raises(ValueError, match="rank"):
            svd_linear(net[0], rank)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ReLU"):
        svd_compress(net, {"1": 1})
    with pytest.raises(ValueError, match="'5'"):
        svd_compress(net, {"5": 1})
