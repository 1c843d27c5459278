"""Same seed, same process, twice: the same learned architecture and bit-identical weights."""

import torch

import archlearn as al
from archlearn import data, models
from archlearn.train import TrainConfig, Trainer, steps_per_epoch

SPLITS = data.load("digits", flatten=True)


def _train(seed: int):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=3e-3, seed=seed, progress=False)
    torch.manual_seed(seed)
    model = models.mlp(64, [32, 16], 10)
    total = cfg.epochs * steps_per_epoch(SPLITS.train, cfg.batch_size)
    learner = al.attach(model, SPLITS.train.tensors[0][:1], method="tsrelu", total_steps=total,
                        lr=5e-3, lambda1=5e-3, lambda3=5e-3, depth="all", init_depth=0.45,
                        lambda4=0.0)
    history = Trainer(model, SPLITS.train, SPLITS.test, cfg, learner=learner).fit()
    small = learner.shrink()
    return {
        "architecture": learner.architecture(),
        "history": history,
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "gates": [p.detach().clone() for p in learner.parameters()],
        "small": {k: v.clone() for k, v in small.state_dict().items()},
    }


def _same_tensors(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_same_seed_gives_identical_architecture_and_weights():
    first = _train(seed=3)
    torch.rand(1000)  # disturb the global RNG between the runs: the seed alone must decide
    torch.manual_seed(12345)
    second = _train(seed=3)
    assert first["architecture"] == second["architecture"]
    assert first["history"] == second["history"]
    for key in ("weights", "gates", "small"):
        assert _same_tensors(first[key], second[key]), key
    widths = [layer["width"] for layer in first["architecture"]["layers"]]
    assert widths != [32, 16], "nothing was pruned: the comparison would be vacuous"
    linear = [layer["linear"] for layer in first["architecture"]["layers"]]
    assert True in linear and False in linear, "depth gates should have split"

    other = _train(seed=4)
    assert not _same_tensors(first["weights"], other["weights"])
