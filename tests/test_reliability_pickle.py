"""Nothing is ever unpickled: a booby-trapped pickle is refused and its code never runs."""

import io
import pickle
import zipfile

import pytest
import torch

import archlearn as al
from archlearn import models
from archlearn.train import TrainConfig, Trainer


class Trap:
    """Unpickling this object creates the file ``marker`` (stands in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payloads(marker):
    """The trap as a raw pickle, inside a torch zip checkpoint, and hidden in a real state."""
    raw = pickle.dumps({"model": Trap(marker)}, protocol=2)
    zipped = io.BytesIO()
    torch.save({"model": {}, "epoch": 1, "trap": Trap(marker)}, zipped)
    return {"raw": raw, "torch-zip": zipped.getvalue()}


@pytest.mark.parametrize("kind", ["raw", "torch-zip"])
def test_trainer_refuses_a_pickle_checkpoint(tmp_path, kind):
    marker = tmp_path / "pwned"
    blob = _payloads(marker)[kind]
    assert not marker.exists()
    path = tmp_path / "ckpt.pt"
    path.write_bytes(blob)
    model = models.mlp(8, [4], 2)
    trainer = Trainer(model, torch.utils.data.TensorDataset(torch.zeros(4, 8),
                      torch.zeros(4, dtype=torch.long)),
                      config=TrainConfig(epochs=1, progress=False), checkpoint=path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(al.ArchlearnError, match=r"ckpt\.pt is unreadable"):
        trainer.load_checkpoint(path)
    with pytest.raises(al.ArchlearnError, match=r"ckpt\.pt is unreadable"):
        trainer.fit()  # the resume path reads the same file
    assert not marker.exists()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ["raw", "torch-zip"])
def test_load_refuses_pickled_weights(tmp_path, kind, monkeypatch):
    marker = tmp_path / "pwned"
    learner = al.attach(models.mlp(8, [6, 4], 2), torch.zeros(1, 8), total_steps=1)
    folder = al.save(learner.shrink(), tmp_path / "saved")
    (folder / "model.safetensors").write_bytes(_payloads(marker)[kind])

    def no_torch_load(*args, **kwargs):  # al.load must not even try the pickle-based reader
        raise AssertionError("al.load called torch.load")

    monkeypatch.setattr(torch, "load", no_torch_load)
    fresh = models.mlp(8, [6, 4], 2)
    with pytest.raises(al.ArchlearnError, match=r"model\.safetensors is corrupt"):
        al.load(folder, model=fresh)
    assert not marker.exists()


def test_the_trap_is_real(tmp_path):
    """Guard against a test that passes vacuously: plain unpickling does spring the trap."""
    marker = tmp_path / "pwned"
    blobs = _payloads(marker)
    pickle.loads(blobs["raw"])
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(io.BytesIO(blobs["torch-zip"])) as z:
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        pickle.loads(z.read(name))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["raw", "torch-zip"])
def test_load_refuses_a_pickled_recipe(tmp_path, kind):
    marker = tmp_path / "pwned"
    learner = al.attach(models.mlp(8, [6, 4], 2), torch.zeros(1, 8), total_steps=1)
    folder = al.save(learner.shrink(), tmp_path / "saved")
    (folder / "recipe.json").write_bytes(_payloads(marker)[kind])
    with pytest.raises(al.ArchlearnError, match=r"recipe\.json is not a valid archlearn recipe"):
        al.load(folder, model=models.mlp(8, [6, 4], 2))
    assert not marker.exists()
