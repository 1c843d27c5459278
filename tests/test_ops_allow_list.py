"""The allow-list of operations between layers (``structure/ops.py``): an as_strided view."""

import torch
import torch.nn.functional as F
from torch import nn

import archlearn as al
from archlearn.structure.ops import _as_strided_problem

torch.set_grad_enabled(True)


def test_pooling_a_channels_last_tensor_is_per_channel():
    """adaptive_avg_pool2d of a channels-last input restrides the pooled (N, C, 1, 1) result
    with as_strided (ConvNeXt's head): the same values at every index."""
    x = torch.randn(2, 8, 3, 3, requires_grad=True).to(memory_format=torch.channels_last)
    pooled = F.adaptive_avg_pool2d(x * 1, 1)
    assert pooled.grad_fn.name().startswith("AsStrided")
    assert _as_strided_problem(pooled.grad_fn, channel_dim=1) is None


def test_an_as_strided_view_of_anything_else_is_refused():
    z = (torch.randn(8, 2, requires_grad=True) * 1).t()  # strides (1, 2): storage order c, n
    view = z.as_strided((2, 8, 1, 1), (8, 1, 8, 8))  # reads the storage as if n, c
    assert "as_strided" in str(_as_strided_problem(view.grad_fn, channel_dim=1))


class ChannelsLastHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x)).contiguous(memory_format=torch.channels_last)
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


def test_a_channels_last_pooled_head_is_gated_exactly():
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(0)
    model = ChannelsLastHead()
    learner = al.attach(model, x, total_steps=10)
    assert [g.name for g in learner.groups] == ["conv"], learner.skipped
    with torch.no_grad():
        learner.method.w[0][[1, 4, 6]] = 0.0
    small = learner.shrink()
    assert small.conv.out_channels == 5
    model.eval()
    with torch.no_grad():
        assert torch.allclose(small.eval()(x), model(x), atol=1e-5)
