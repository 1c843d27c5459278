"""The Lightning callback learns the same smaller model as the user's own loop, same seed."""

import csv

import pytest
import torch
from torch import nn

import archlearn as al

L = pytest.importorskip("lightning")
from archlearn.integrations.lightning import ArchLearning, penalty  # noqa: E402

EPOCHS, SEED = 2, 0
# gates fast enough that two short epochs remove units (about 7 and 11 of 32 stay)
OPTIONS = {"lambda1": 0.01, "k": 0.4, "lr": 0.02}


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def make_data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    x = torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.TensorDataset(x, x[:, :3].argmax(1))  # three inputs matter


def make_loader() -> torch.utils.data.DataLoader:
    # i.i.d. examples in a fixed order: Lightning makes iterators of its own (each iter() draws
    # from a shuffling loader's generator), which would change the order for reasons that are
    # not archlearn's
    return torch.utils.data.DataLoader(make_data(1024, 1), batch_size=16)


class Classifier(L.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y) + penalty(self)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def users_own_loop():
    torch.manual_seed(SEED)
    net, loader = make_net(), make_loader()
    example = loader.dataset.tensors[0][:1]
    learner = al.attach(net, example, total_steps=EPOCHS * len(loader), **OPTIONS)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = nn.functional.cross_entropy(net(x), y) + learner.penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            learner.step()
    return learner, learner.shrink()


def test_lightning_callback_learns_the_same_smaller_model_as_the_users_loop(tmp_path):
    learner, expected = users_own_loop()

    torch.manual_seed(SEED)
    module, loader = Classifier(make_net()), make_loader()
    callback = ArchLearning(loader.dataset.tensors[0][:1], module="net",
                            save_dir=tmp_path / "small", **OPTIONS)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1,
                        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="log"),
                        callbacks=[callback], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)

    arch = callback.learner.architecture()
    assert arch["layers"] == learner.architecture()["layers"]
    assert arch["params"] < sum(p.numel() for p in make_net().parameters())  # it did shrink
    small = callback.small
    assert [tuple(p.shape) for p in small.parameters()] == [
        tuple(p.shape) for p in expected.parameters()]
    for (name, a), b in zip(small.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(a, b), name  # bit for bit: the same computation
    x, y = make_data(512, 2).tensors
    with torch.no_grad():  # a smaller model that learned the task: held-out accuracy
        assert (small.eval()(x).argmax(1) == y).float().mean() > 0.85
    module.eval()
    with torch.no_grad():  # exact shrink: the shrunk model's outputs are the gated model's
        torch.testing.assert_close(small.eval()(x), module(x), rtol=0, atol=1e-5)
        loaded = al.load(tmp_path / "small", model=make_net()).eval()
        torch.testing.assert_close(loaded(x), small(x), rtol=0, atol=0)

    rows = list(csv.DictReader(open(next((tmp_path / "log").rglob("metrics.csv")))))
    widths = [r for r in rows if r.get("archlearn/width/0")]
    assert len(widths) == EPOCHS  # logged once per epoch
    assert float(widths[-1]["archlearn/width/0"]) == arch["layers"][0]["width"]
    assert float(widths[-1]["archlearn/params"]) == arch["params"]


def test_a_loss_without_the_penalty_is_one_clear_error(tmp_path):
    class NoPenalty(Classifier):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

    loader = make_loader()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[ArchLearning(loader.dataset.tensors[0][:1], module="net")])
    with pytest.raises(al.ArchlearnError, match="penalty"):
        trainer.fit(NoPenalty(make_net()), loader)
    with pytest.raises(al.ArchlearnError, match="nope"):
        L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False,
                  callbacks=[ArchLearning(loader.dataset.tensors[0][:1], module="nope")]
                  ).fit(Classifier(make_net()), loader)


def test_resuming_from_a_lightning_checkpoint_restores_the_gates(tmp_path):
    def fit(epochs, ckpt_path=None):
        torch.manual_seed(SEED)
        module, loader = Classifier(make_net()), make_loader()
        callback = ArchLearning(loader.dataset.tensors[0][:1], module="net",
                                total_steps=EPOCHS * len(loader), **OPTIONS)
        checkpoints = L.pytorch.callbacks.ModelCheckpoint(tmp_path, save_last=True)
        L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, callbacks=[callback, checkpoints]
                  ).fit(module, loader, ckpt_path=ckpt_path)
        return callback

    whole = fit(EPOCHS)
    fit(1)
    resumed = fit(EPOCHS, ckpt_path=tmp_path / "last.ckpt")
    assert resumed.learner.architecture()["layers"] == whole.learner.architecture()["layers"]
    for a, b in zip(resumed.small.state_dict().values(), whole.small.state_dict().values()):
        assert torch.equal(a, b)
