"""The coverage metric counts removable channels: the model's output layers are left out.

A classifier's logits (or any layer whose outputs the model returns) can never be removed, so
``coverage()["channels"]`` is the share of the *other* layers' output channels that are gated;
``channels_all`` keeps the raw share of every layer's output channels.
"""

import torch
from torch import nn

import archlearn as al
from archlearn.structure.coverage import coverage, output_layers

torch.set_grad_enabled(True)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def test_the_classifier_is_not_counted_as_ungated():
    share = coverage(al.attach(_mlp(), torch.randn(2, 4), total_steps=10))
    assert share["channels"] == 1.0  # 8 + 6 gated of 14 removable
    assert share["channels_all"] == 14 / 17  # the 3 logits counted too


def test_an_ignored_layer_is_removable_but_not_gated():
    learner = al.attach(_mlp(), torch.randn(2, 4), total_steps=10, ignore=["0"])
    share = coverage(learner)
    assert share["channels"] == 6 / 14 and share["channels_all"] == 6 / 17


class TwoHeads(nn.Module):
    """A trunk and two heads whose outputs the model returns, one through a ReLU."""

    def __init__(self):
        super().__init__()
        self.trunk, self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(8, 5)

    def forward(self, x):
        h = torch.relu(self.trunk(x))
        return self.a(h), torch.relu(self.b(h))


def test_every_layer_whose_outputs_are_returned_is_an_output_layer():
    model = TwoHeads()
    x = torch.randn(2, 4)
    assert output_layers(model, (x,), ["trunk", "a", "b"]) == {"a", "b"}
    share = coverage(al.attach(model, x, total_steps=10))
    assert share["channels"] == 1.0 and share["channels_all"] == 8 / 16
