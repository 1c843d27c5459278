"""Save/load without pickle: safetensors + a JSON recipe replayed on a fresh instance."""

import json

import pytest
import torch
from helpers import random_gates, settle_batchnorm

import archlearn as al
from archlearn import models


def _shrunk(build, shape, depth="all"):
    model = build()
    x = torch.randn(*shape)
    settle_batchnorm(model, x)
    learner = al.attach(model, x[:1], total_steps=1, depth=depth)
    random_gates(learner, torch.Generator().manual_seed(3), all_off=None)
    return learner.shrink().eval(), x


@pytest.mark.parametrize("name,shape", [("tiny-resnet", (4, 3, 16, 16)), ("lenet5", (4, 1, 28, 28)),
                                        ("mlp", (4, 30))])
def test_save_load_roundtrip(tmp_path, name, shape):
    kwargs = {"in_features": 30, "hidden": [20, 16], "out_features": 5} if name == "mlp" else {}
    small, x = _shrunk(lambda: models.build(name, **kwargs), shape)
    al.save(small, tmp_path)
    loaded = al.load(tmp_path, model=models.build(name, **kwargs)).eval()
    assert torch.equal(loaded(x), small(x))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in small.parameters())


def test_no_pickle_in_saved_files(tmp_path):
    small, _ = _shrunk(models.lenet5, (2, 1, 28, 28))
    al.save(small, tmp_path)
    assert json.loads((tmp_path / "recipe.json").read_text())["recipe"]["steps"]
    head = (tmp_path / "model.safetensors").read_bytes()[:8]
    assert head[:2] != b"\x80\x04"  # not a pickle stream


def test_corrupt_weights_give_clear_error(tmp_path):
    small, _ = _shrunk(models.lenet5, (2, 1, 28, 28))
    al.save(small, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(al.ArchlearnError, match="corrupt"):
        al.load(tmp_path, model=models.lenet5())


def test_mismatched_model_gives_clear_error(tmp_path):
    small, _ = _shrunk(models.lenet5, (2, 1, 28, 28))
    al.save(small, tmp_path)
    with pytest.raises(al.ArchlearnError, match="does not fit|do not fit"):
        al.load(tmp_path, model=models.lenet300())


def test_missing_folder_gives_clear_error(tmp_path):
    with pytest.raises(al.ArchlearnError, match="does not exist"):
        al.load(tmp_path / "nope", model=models.lenet5())


def test_measure_counts(tmp_path):
    r = al.measure(models.lenet5(), torch.zeros(2, 1, 28, 28), repeats=2)
    assert r["params"] == 431080
    # multiply-accumulates of the weights only (no bias adds, no ReLU or pooling)
    conv1, conv2 = 20 * 24 * 24 * 1 * 25, 50 * 8 * 8 * 20 * 25
    assert r["macs"] == conv1 + conv2 + 800 * 500 + 500 * 10 == 2_293_000
    assert r["latency_ms"] > 0
