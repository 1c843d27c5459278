"""Bad input through the public API: one ArchlearnError whose message names the problem."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import models
from archlearn.train import TrainConfig, Trainer

X = torch.zeros(1, 8)


def _mlp():
    return models.mlp(8, [6, 4], 2)


@pytest.mark.parametrize(
    "options, names",
    [
        ({"total_steps": 10, "colour": "red"}, "colour"),
        ({"total_steps": 10, "lambda_1": 0.1}, "lambda_1"),
        ({"total_steps": "many"}, "total_steps"),
        ({"total_steps": 10, "lambda1": "strong"}, "lambda1"),
        ({"total_steps": 10, "width": 3}, "width"),
        ({"total_steps": 10, "lambda1": -1.0}, "lambda1"),
        ({"total_steps": 10, "lambda3": -0.5}, "lambda3"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": 10, "k": 1.5}, "k"),
        ({"total_steps": 10, "freeze": 0}, "freeze"),
        ({}, "total_steps"),
        ({"total_steps": 10, "width": ["nope"]}, "nope"),
        ({"total_steps": 10, "depth": ["nope"]}, "nope"),
    ],
)
def test_bad_options(options, names):
    with pytest.raises(al.ArchlearnError, match=names):
        al.attach(_mlp(), X, method="tsrelu", **options)


def test_unknown_method():
    with pytest.raises(al.ArchlearnError, match="unknown method 'magic'"):
        al.attach(_mlp(), X, method="magic", total_steps=10)


def test_not_a_model():
    with pytest.raises(al.ArchlearnError, match="must be a torch.nn.Module, got dict"):
        al.attach({"weight": torch.zeros(3)}, X, total_steps=10)


@pytest.mark.parametrize("empty", [nn.Sequential(), nn.Sequential(nn.ReLU(), nn.Flatten())])
def test_empty_model(empty):
    with pytest.raises(al.ArchlearnError, match="no parameters"):
        al.attach(empty, X, total_steps=10)


@pytest.mark.parametrize(
    "model, inputs",
    [
        (_mlp(), torch.zeros(1, 9)),
        (_mlp(), torch.zeros(1, 2, 3)),
        (models.lenet5(widths=(2, 3, 4)), torch.zeros(1, 1, 8, 8)),
        (models.lenet5(widths=(2, 3, 4)), torch.zeros(1, 3, 28, 28)),
    ],
)
def test_example_inputs_of_the_wrong_shape(model, inputs):
    shape = str(tuple(inputs.shape))
    with pytest.raises(al.ArchlearnError, match=r"cannot run on example_inputs of shape") as err:
        al.attach(model, inputs, total_steps=10)
    assert shape in str(err.value)


@pytest.mark.parametrize("inputs", [[1.0, 2.0], (), None, "x", [torch.zeros(1, 8), 3]])
def test_example_inputs_that_are_not_tensors(inputs):
    with pytest.raises(al.ArchlearnError, match="example_inputs must be a tensor"):
        al.attach(_mlp(), inputs, total_steps=10)


def test_group_with_groupnorm_is_skipped_and_reported():
    # (a LayerNorm here is gated as hidden dimensions: tests/test_hidden_dims.py)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.GroupNorm(4, 16), nn.ReLU(),
        nn.Linear(16, 6), nn.ReLU(),
        nn.Linear(6, 2),
    )
    learner = al.attach(model, X, total_steps=10)
    arch = learner.architecture()
    assert [layer["name"] for layer in arch["layers"]] == ["3"]
    assert len(arch["skipped"]) == 1
    skipped = arch["skipped"][0]
    assert skipped["name"] == "0" and "GroupNorm" in skipped["reason"]
    # the skipped layer keeps its width after shrinking
    with torch.no_grad():
        learner.method.w[0].zero_()
    small = learner.shrink().eval()
    assert small[0].out_features == 16 and small[3].out_features == 1


@pytest.mark.parametrize(
    "model, what",
    [
        (nn.Sequential(nn.Linear(8, 16), nn.GroupNorm(4, 16), nn.ReLU(), nn.Linear(16, 2)),
         "GroupNorm"),
        (nn.Sequential(nn.Linear(8, 2)), "no hidden layer"),
        (nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)), "ignored by the user"),
    ],
    ids=["groupnorm", "single-layer", "all-ignored"],
)
def test_model_with_nothing_gateable(model, what):
    ignore = ["0"] if what == "ignored by the user" else None
    with pytest.raises(al.ArchlearnError, match="no layer of this model can be gated") as err:
        al.attach(model, X, total_steps=10, ignore=ignore)
    assert what in str(err.value)


@pytest.mark.parametrize("poison", ["nan-input", "inf-input", "exploding-weights"])
def test_nan_loss_in_trainer(poison):
    x = torch.randn(32, 8)
    if poison == "nan-input":
        x[5, 3] = float("nan")
    elif poison == "inf-input":
        x[7, 0] = float("inf")
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 2, (32,)))
    model = _mlp()
    learner = al.attach(model, X, total_steps=10)
    if poison == "exploding-weights":
        with torch.no_grad():
            for layer in (model[1], model[3]):
                layer.weight.fill_(3e37)
    trainer = Trainer(model, data, config=TrainConfig(epochs=2, batch_size=8, progress=False),
                      learner=learner)
    with pytest.raises(al.ArchlearnError, match=r"the loss became (nan|inf) at epoch 1"):
        trainer.fit()


def test_nan_loss_writes_no_checkpoint(tmp_path):
    x = torch.full((16, 8), float("nan"))
    data = torch.utils.data.TensorDataset(x, torch.zeros(16, dtype=torch.long))
    model = _mlp()
    trainer = Trainer(model, data, config=TrainConfig(epochs=1, progress=False),
                      learner=al.attach(model, X, total_steps=1), checkpoint=tmp_path / "c.pt")
    with pytest.raises(al.ArchlearnError, match="loss"):
        trainer.fit()
    assert list(tmp_path.iterdir()) == []
