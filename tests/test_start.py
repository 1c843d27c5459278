"""Learning from a decision: ``attach(..., init=...)`` and ``compression.warm_start.expand``."""

import pytest
import torch
from torch import nn

import archlearn as al
from archlearn import data, models
from archlearn.compression import decide
from archlearn.compression.calibration import calls
from archlearn.compression.warm_start import expand, kept_indices
from archlearn.seeding import seeded


def _trained_mlp(steps=150):
    splits = data.load("digits", flatten=True)
    torch.manual_seed(0)
    model = models.mlp(64, [32, 16], 10)
    x, y = splits.train.tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), x, y


@pytest.mark.parametrize("method", ["tsrelu", "l0"])
def test_gates_start_from_given_masks(method):
    model = models.mlp(8, [6, 5], 3)
    masks = {"1": [1, 0, 1, 0, 1, 1], "3": torch.tensor([True, True, False, True, False])}
    learner = al.attach(model, torch.zeros(1, 8), method=method, total_steps=10, init=masks)
    kept = [d.scale != 0 for d in learner.decisions()]
    assert kept[0].tolist() == [True, False, True, False, True, True]
    assert kept[1].tolist() == [True, True, False, True, False]
    if method == "l0":  # off units are as sure to be 0 as the kept ones to be non-zero
        p = learner.method.prob_nonzero(0).detach()
        assert float(p[1]) == pytest.approx(1 - float(p[0]), rel=1e-4) and p[0] > 0.95
    # a budget's target schedule starts at the decision's cost
    budgeted = al.attach(models.mlp(8, [6, 5], 3), torch.zeros(1, 8), method=method,
                         total_steps=10, init=masks, budget={"macs": 0.4})
    budget = budgeted.method.budget
    start = float(budget.cost.total([torch.tensor(m, dtype=torch.float64) for m in (
        [1.0, 0, 1, 0, 1, 1], [1.0, 1, 0, 1, 0])]))
    assert budget.begin == pytest.approx(start) and budget.target_at(0) == pytest.approx(start)
    assert budget.target_at(10) == pytest.approx(0.4 * budget.cost.full)


def test_bad_init_is_one_clear_error():
    x = torch.zeros(1, 8)
    with pytest.raises(al.ArchlearnError, match="has 3 entries, the group has 6"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, init={"1": [1, 0, 1]})
    with pytest.raises(al.ArchlearnError, match="does not gate"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, init={"fc9": [1, 0]})
    # a group the learner does not gate may be named when nothing of it is removed
    al.attach(models.mlp(8, [6], 3), x, total_steps=10, init={"fc9": [1, 1]})
    with pytest.raises(al.ArchlearnError, match="bools or 0/1"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, init={"1": [1, 0, 2, 1, 1, 1]})
    with pytest.raises(al.ArchlearnError, match="init is not available for slimming"):
        al.attach(models.mlp(8, [6], 3, batchnorm=True), x, method="slimming", total_steps=10,
                  init={"1": [1, 0, 1, 1, 1, 1]})
    with pytest.raises(al.ArchlearnError, match="init must be"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, init=[1, 0, 1])
    with pytest.raises(al.ArchlearnError, match="without an archlearn recipe"):
        al.attach(models.mlp(8, [6], 3), x, total_steps=10, init=nn.Linear(2, 2))
    with pytest.raises(al.ArchlearnError, match="cannot remove its units"):
        al.attach(models.mlp(8, [6, 5], 3), x, total_steps=10, width=["3"],
                  init={"1": [1, 0, 1, 1, 1, 1]})


def test_learning_starts_from_the_compressed_model():
    """al.compress's result as the start: the gates keep what it kept (read from its recipe,
    the same as decide's allocation), and the full model with its re-fitted weights written
    back computes exactly what it computes; the entries it dropped keep the trained values."""
    model, x, _ = _trained_mlp()
    small = al.compress(model, x[:256], budget={"macs": 0.4}, progress=False).eval()
    decided = decide(model, (x[:1],), calls(x[:256]), "macs", 0.4)
    full = expand(model, small)
    learner = al.attach(full, x[:1], method="tsrelu", total_steps=10, budget={"macs": 0.4},
                        init=small)
    from_decided = al.attach(models.mlp(64, [32, 16], 10), x[:1], total_steps=10,
                             init=decided)
    kept = [(d.scale != 0).float() for d in learner.decisions()]
    assert [k.tolist() for k in kept] == [a.tolist() for a in decided.alive]
    assert [d.scale.tolist() for d in from_decided.decisions()] == [k.tolist() for k in kept]
    assert [int(k.sum()) for k in kept] == [small[1].out_features, small[3].out_features]
    with torch.no_grad():
        assert torch.allclose(full.eval()(x[:64]), small(x[:64]), atol=1e-5)
    # kept rows of the first layer are the small model's, removed ones the original's
    rows = kept[0].bool()
    assert torch.equal(full[1].weight[rows], small[1].weight)
    assert torch.equal(full[1].weight[~rows], model[1].weight[~rows])
    # the re-fitted reader: its kept columns are the small model's, the others the original's
    cols = kept[1].bool()
    assert torch.equal(full[5].weight[:, cols], small[5].weight)
    assert torch.equal(full[5].weight[:, ~cols], model[5].weight[:, ~cols])
    assert not torch.equal(small[5].weight, model[5].weight[:, cols])  # it was re-fitted
    budget = learner.method.budget
    assert float(budget.cost.total(kept)) <= budget.target == budget.begin  # starts on it


def test_units_can_come_back_and_go():
    """tsrelu started from a decision that removed half of a trained layer, no complexity
    pressure: the task's gradient through the straight-through gates brings removed units
    back (their trained weights were kept), and the loss falls below the start's."""
    model, x, y = _trained_mlp()
    off = torch.tensor([1.0, 0] * 16)
    with seeded(0):
        learner = al.attach(model, x[:1], method="tsrelu", total_steps=200, lambda1=0.0,
                            lr=0.01, init={"1": off})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()
    with torch.no_grad():
        before = nn.functional.cross_entropy(model(x), y).item()
    model.train()
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(x), y) + learner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.step()
    now = learner.decisions()[0].scale != 0
    assert int((now & (off == 0)).sum()) >= 2  # removed units came back
    model.eval()
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(x), y).item() < before


def test_expand_refuses_a_merged_model_and_a_foreign_one():
    model = models.mlp(8, [6], 3)
    small = al.compress(model, torch.randn(64, 8), budget={"params": 0.6}, progress=False)
    indices = kept_indices(model, small)
    assert set(indices) == set(small.state_dict())
    assert indices["1.weight"].numel() == small[1].weight.numel()
    other = models.mlp(8, [7], 3)
    with pytest.raises(al.ArchlearnError, match="no counterpart"):
        expand(other, small)
    merged = al.compress(model, torch.randn(64, 8), budget={"params": 0.6}, progress=False)
    merged.archlearn_recipe = {**merged.archlearn_recipe, "steps": [
        *merged.archlearn_recipe["steps"],
        {"op": "merge", "producer": "1", "consumer": "3", "norm": None, "act": "2"}]}
    with pytest.raises(al.ArchlearnError, match="cannot be written back"):
        expand(model, merged)
    with pytest.raises(al.ArchlearnError, match="no archlearn recipe"):
        expand(model, models.mlp(8, [6], 3))


def test_a_compressed_bert_is_the_start_heads_and_ffn():
    """A transformers BERT compressed to half its MACs: the gates start with the heads and FFN
    neurons it kept (read from its recipe), and the full model with the re-fitted weights
    written back computes, under tsrelu's gates, what the compressed model computes."""
    T = pytest.importorskip("transformers")
    from archlearn.models.bert import widths

    torch.manual_seed(0)
    model = T.BertModel(T.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64)).eval()
    gen = torch.Generator().manual_seed(1)
    batches = [{"input_ids": torch.randint(1, 100, (8, 16), generator=gen),
                "attention_mask": torch.ones(8, 16, dtype=torch.long)} for _ in range(4)]
    example = torch.randint(1, 100, (1, 16), generator=gen)
    small = al.compress(model, batches, budget={"macs": 0.5}, example_inputs=example,
                        progress=False).eval()
    full = expand(model, small)
    learner = al.attach(full, example, method="tsrelu", total_steps=10, init=small)
    kept = {g.name: int((d.scale != 0).sum()) for g, d in zip(learner.groups,
                                                               learner.decisions())}
    w = widths(small)
    assert [kept[f"encoder.layer.{i}.attention.self"] for i in range(2)] == w["heads"]
    assert [kept[f"encoder.layer.{i}.intermediate.dense"] for i in range(2)] == w["ffn"]
    assert sum(w["heads"]) < 8 or sum(w["ffn"]) < 128
    with torch.no_grad():
        want = small(**batches[0]).last_hidden_state
        got = full.eval()(**batches[0]).last_hidden_state
    assert torch.allclose(got, want, atol=1e-4)
