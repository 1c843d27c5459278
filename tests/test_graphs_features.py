"""The 23 structural features against hand-computed and direct networkx values."""

import math

import networkx as nx
import numpy as np
import pytest

from archlearn.graphs import FEATURE_NAMES, features, layered_dag


def test_feature_names_order():
    assert len(FEATURE_NAMES) == 23
    assert FEATURE_NAMES[:8] == (
        "layers", "nodes", "edges", "sources", "sinks", "diameter", "density", "avg_shortest_path",
    )  # fmt: skip
    assert FEATURE_NAMES[8:11] == ("eccentricity_mean", "eccentricity_var", "eccentricity_std")
    assert FEATURE_NAMES[-1] == "edge_betweenness_std"
    assert list(features(nx.path_graph(3))) == list(FEATURE_NAMES)


def test_path_by_hand():
    f = features(nx.path_graph(4))  # 0 -> 1 -> 2 -> 3
    assert f["layers"] == 4 and f["nodes"] == 4 and f["edges"] == 3
    assert f["sources"] == 1 and f["sinks"] == 1
    assert f["diameter"] == 3
    assert f["density"] == pytest.approx(3 / 12)
    assert f["avg_shortest_path"] == pytest.approx((1 + 2 + 3 + 1 + 2 + 1) / 6)
    ecc = [3, 2, 2, 3]
    assert f["eccentricity_mean"] == pytest.approx(2.5)
    assert f["eccentricity_var"] == pytest.approx(np.var(ecc))
    assert f["eccentricity_std"] == pytest.approx(0.5)
    assert f["degree_mean"] == pytest.approx(1.5) and f["degree_var"] == pytest.approx(0.25)


def test_diamond_dag_matches_networkx():
    g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")])
    f = features(g)
    und = g.to_undirected()
    assert f["layers"] == 3 and f["sources"] == 1 and f["sinks"] == 1
    assert f["diameter"] == nx.diameter(und) == 2  # b and c are 2 apart, everything else 1
    assert f["avg_shortest_path"] == pytest.approx(nx.average_shortest_path_length(und))
    assert f["density"] == pytest.approx(nx.density(g))
    for name, values in {
        "eccentricity": nx.eccentricity(und).values(),
        "degree": dict(g.degree()).values(),
        "closeness": nx.closeness_centrality(g).values(),
        "node_betweenness": nx.betweenness_centrality(g).values(),
        "edge_betweenness": nx.edge_betweenness_centrality(g).values(),
    }.items():
        arr = np.array(list(values), dtype=float)
        assert f[f"{name}_mean"] == pytest.approx(arr.mean())
        assert f[f"{name}_var"] == pytest.approx(arr.var())
        assert f[f"{name}_std"] == pytest.approx(arr.std())
    # By hand: only b and c lie strictly inside a shortest path (a->b->d, a->c->d are not
    # shortest because a->d exists), so node betweenness is zero everywhere.
    assert f["node_betweenness_mean"] == 0


def test_disconnected_graph_uses_components():
    g = nx.Graph([(0, 1), (1, 2), (3, 4)])
    f = features(g)
    assert f["diameter"] == 2 and f["sources"] == 2 and f["sinks"] == 2
    # Ordered connected pairs: 6 in the path (sum of lengths 8) and 2 in the edge (sum 2).
    assert f["avg_shortest_path"] == pytest.approx(10 / 8)
    assert f["eccentricity_mean"] == pytest.approx((2 + 1 + 2 + 1 + 1) / 5)


def test_features_are_finite_on_priors():
    from archlearn.graphs import barabasi_albert, erdos_renyi, watts_strogatz

    for dag in (watts_strogatz(20, 4, 0.3, 0), barabasi_albert(20, 2, 0), erdos_renyi(20, 0.1, 0)):
        f = features(dag)
        assert all(math.isfinite(v) for v in f.values())
        assert features(layered_dag(dag)) == f
    with pytest.raises(ValueError):
        features(nx.Graph())
