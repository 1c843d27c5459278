"""archlearn.search: performance predictors, the genetic search, its state file and resume."""

from __future__ import annotations

import doctest
import importlib
import json
import random

import networkx as nx
import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from archlearn.graphs import FEATURE_NAMES, encode, reber_dataset
from archlearn.search import genetic, predictor, training
from archlearn.search.genetic import Genome, mutate, random_genome, search
from archlearn.search.predictor import Predictor, feature_matrix, fit_predictors


@pytest.mark.parametrize("name", ["predictor", "genetic", "training"])
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"archlearn.search.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


# Predictor


def test_fit_predictors_scores_held_out_data_of_a_known_function() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((120, 23))
    y = 0.6 + 0.3 * X[:, 0] - 0.2 * X[:, 3] * X[:, 5] + 0.01 * rng.standard_normal(120)
    scores = fit_predictors(X, y, seed=0, repeats=2)
    assert set(scores) == {"bayesian_ridge", "random_forest", "adaboost"}
    for s in scores.values():
        assert s["n_train"] == 108 and s["n_test"] == 12  # the paper's 90/10 split
    best = max(s["r2_cv_pooled"] for s in scores.values())
    assert best > 0.8
    assert max(s["r2_holdout"] for s in scores.values()) > 0.8


def test_r2_is_measured_on_held_out_rows_only() -> None:
    # Pure noise targets: a forest memorises its training rows (train R^2 high), but held-out
    # R^2 must stay near or below zero, which it only does if scoring never sees training rows.
    rng = np.random.default_rng(1)
    X, y = rng.random((60, 5)), rng.random(60)
    scores = fit_predictors(X, y, seed=0, repeats=2, regressors=["random_forest"])
    scores = scores["random_forest"]
    assert scores["r2_cv_pooled"] < 0.2 and scores["r2_cv_mean"] < 0.2


def test_predictor_on_graphs_learns_a_structural_target() -> None:
    rng = random.Random(0)
    graphs = [random_genome(rng, (4, 30)).graph() for _ in range(60)]
    y = [g.number_of_nodes() / 30 for g in graphs]
    p = Predictor("random_forest", seed=0).fit(graphs[:50], y[:50])
    pred = p.predict(graphs[50:])
    assert np.corrcoef(pred, y[50:])[0, 1] > 0.9
    assert feature_matrix(graphs[:2]).shape == (2, len(FEATURE_NAMES))
    with pytest.raises(RuntimeError):
        Predictor().predict(graphs[:1])


def test_fit_predictors_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        fit_predictors(np.zeros((3, 2)), np.zeros(3))


# Training helpers


def test_reber_net_reads_the_true_last_letter() -> None:
    # Padding after a string must not change its prediction.
    net = training.ReberSparseNet(nx.path_graph(3), "lstm", embedding_dim=8).eval()
    codes, lengths = encode(["BTXSE"], 5)
    padded, _ = encode(["BTXSE"], 12)
    with torch.no_grad():
        assert torch.allclose(net(codes, lengths), net(padded, lengths), atol=1e-6)
        assert not torch.allclose(net(padded, lengths), net(padded, torch.tensor([12])))


def test_structure_dataset_records_features_and_accuracy() -> None:
    train, test = reber_dataset(n=60, seed=0)
    rows = predictor.structure_dataset(train, test, cell="rnn", graphs_per_prior=1, nodes=(4, 6),
                                       epochs=1, progress=False)
    assert [r["params"]["prior"] for r in rows] == ["ws", "ba"]
    assert all(0 <= r["accuracy"] <= 1 and len(r["features"]) == 23 for r in rows)


def test_one_cycle_warms_up_then_anneals_to_almost_zero() -> None:
    opt = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    schedule = training.one_cycle(opt, 0.1, 100, anneal=True)
    rates = []
    for _ in range(100):
        opt.step()
        rates.append(opt.param_groups[0]["lr"])
        schedule.step()
    peak = int(np.argmax(rates))
    assert 5 <= peak <= 15 and rates[peak] == pytest.approx(0.1, rel=0.05)
    assert rates[-1] < 1e-3 * 0.1 * 10 and rates[0] < 0.01


def test_annealed_ffn_training_learns_and_differs_from_constant() -> None:
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    y = (x[:, 0] + x[:, 1] > 0).long()
    data = TensorDataset(x, y)
    graph = nx.DiGraph([(i, j) for i in range(4) for j in range(4, 8)])
    annealed = training.train_ffn(graph, data, data, 2,
                                  training.Fit(epochs=20, batch_size=64, lr=3e-2, anneal=True))
    constant = training.train_ffn(graph, data, data, 2,
                                  training.Fit(epochs=20, batch_size=64, lr=3e-2))
    assert annealed > 0.9 and annealed != constant


def test_random_prior_orientation_is_shuffled_on_request() -> None:
    deep, _ = training.random_prior_graph("ws", random.Random(3), (30, 30), shuffle=False)
    flat, _ = training.random_prior_graph("ws", random.Random(3), (30, 30), shuffle=True)
    layers = lambda g: 1 + max(nx.get_node_attributes(g, "layer").values())  # noqa: E731
    assert layers(flat) < layers(deep)
    with pytest.raises(ValueError):
        training.random_prior_graph("xx", random.Random(0))


# Genomes


def test_mutations_keep_a_valid_dag() -> None:
    rng = random.Random(0)
    g = random_genome(rng, (3, 8))
    for _ in range(300):
        g = mutate(g, rng, min_nodes=2, max_nodes=12)
        dag = g.graph()
        assert nx.is_directed_acyclic_graph(dag) and 2 <= dag.number_of_nodes() <= 12
    with pytest.raises(ValueError):
        Genome((0, 1), ((1, 0),))


# The search


def _toy_fitness(calls: list | None = None):
    def fitness(graph: nx.DiGraph, seed: int) -> float:
        if calls is not None:
            calls.append(seed)
        # Deterministic in structure and seed: many sources and few layers are good.
        sources = sum(1 for _, d in graph.in_degree() if d == 0)
        depth = len(nx.dag_longest_path(graph))
        noise = random.Random(seed).random() * 0.01
        return sources / (sources + depth) + noise

    return fitness


KW = dict(budget=20, population=6, offspring=2, screen=4, warmup=1, seed=3, progress=False)


def test_state_json_is_valid_after_every_generation(tmp_path) -> None:
    path = tmp_path / "state.json"
    seen = []

    def check(state: dict) -> None:
        on_disk = json.loads(path.read_text())  # parses: written whole, not half
        assert on_disk["generation"] == state["generation"]
        assert on_disk["trainings"] == len(on_disk["evaluated"]) == len(on_disk["history"])
        assert len(on_disk["population"]) == min(6, on_disk["trainings"])
        assert on_disk["best"]["fitness"] == max(e["fitness"] for e in on_disk["evaluated"])
        seen.append(on_disk["generation"])

    search(_toy_fitness(), use_predictor=True, state_path=path, on_generation=check, **KW)
    assert seen == list(range(len(seen))) and len(seen) == 1 + (20 - 6) // 2
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


@pytest.mark.parametrize("use_predictor", [False, True])
def test_resume_after_interruption_gives_the_same_result(tmp_path, use_predictor) -> None:
    full = search(_toy_fitness(), use_predictor=use_predictor, **KW)

    path = tmp_path / "state.json"

    def interrupt(state: dict) -> None:
        if state["generation"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(_toy_fitness(), use_predictor=use_predictor, state_path=path,
               on_generation=interrupt, **KW)
    assert json.loads(path.read_text())["generation"] == 3
    calls: list = []
    resumed = search(_toy_fitness(calls), use_predictor=use_predictor, state_path=path,
                     resume=True, **KW)
    assert len(calls) == 20 - (6 + 3 * 2)  # only the missing trainings ran
    assert resumed == full
    assert json.loads(path.read_text()) == full


def test_resume_refuses_a_state_of_another_config(tmp_path) -> None:
    path = tmp_path / "state.json"
    search(_toy_fitness(), state_path=path, **KW)
    with pytest.raises(ValueError, match="another config"):
        search(_toy_fitness(), state_path=path, resume=True, **{**KW, "seed": 4})


def test_predictor_screening_trains_only_the_top_k(tmp_path) -> None:
    calls: list = []
    state = search(_toy_fitness(calls), use_predictor=True, **KW)
    generations = state["generation"]
    screened_generations = generations - KW["warmup"]
    # Every network trained is one fitness call; screening ranked 4x as many candidates.
    assert len(calls) == state["trainings"] == 20
    assert state["screened"] == screened_generations * KW["offspring"] * KW["screen"]
    assert state["screened"] > len(calls) - KW["population"]
    # Without the predictor every candidate must be trained to be judged.
    plain_calls: list = []
    plain = search(_toy_fitness(plain_calls), use_predictor=False, **KW)
    assert plain["screened"] == 0 and len(plain_calls) == 20
    predicted = [e["predicted"] for e in state["evaluated"] if e["predicted"] is not None]
    assert len(predicted) == screened_generations * KW["offspring"]


def test_random_and_ga_share_the_initial_population() -> None:
    ga = search(_toy_fitness(), strategy="ga", **KW)
    rnd = search(_toy_fitness(), strategy="random", **KW)
    assert [e["genome"] for e in ga["evaluated"][:6]] == [e["genome"] for e in rnd["evaluated"][:6]]
    with pytest.raises(ValueError):
        search(_toy_fitness(), strategy="random", use_predictor=True, **KW)


def test_search_with_real_training_runs(tmp_path) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(200, 6), torch.randint(0, 3, (200,))
    fitness = genetic.ffn_fitness(TensorDataset(x[:150], y[:150]), TensorDataset(x[150:], y[150:]),
                                  3, epochs=1)
    state = search(fitness, budget=6, population=3, offspring=1, screen=3, use_predictor=True,
                   nodes=(3, 6), seed=0, progress=False, state_path=tmp_path / "s.json")
    assert state["trainings"] == 6 and 0 <= state["best"]["fitness"] <= 1
    from benchmarks.genetic_search import plot_searches

    plot_searches({"ga": [state["history"]]}, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
