"""Layered DAGs: orientation rule, layer indices, priors."""

import networkx as nx
import pytest

from archlearn.graphs import (
    barabasi_albert,
    erdos_renyi,
    layer_edges,
    layer_nodes,
    layer_of,
    layered_dag,
    watts_strogatz,
)


def _check_layering(dag: nx.DiGraph) -> None:
    assert nx.is_directed_acyclic_graph(dag)
    layers = layer_of(dag)
    for v in dag:
        preds = [layers[u] for u in dag.predecessors(v)]
        assert layers[v] == (1 + max(preds) if preds else 0)


def test_undirected_edges_go_from_earlier_to_later_node():
    g = nx.Graph()
    g.add_nodes_from(["c", "a", "b"])  # node order, not label order, decides
    g.add_edges_from([("a", "c"), ("b", "a"), ("b", "c")])
    dag = layered_dag(g)
    assert set(dag.edges) == {("c", "a"), ("c", "b"), ("a", "b")}
    assert layer_of(dag) == {"c": 0, "a": 1, "b": 2}
    assert layer_nodes(dag) == [["c"], ["a"], ["b"]]
    assert layer_edges(dag) == {(0, 1): [("c", "a")], (0, 2): [("c", "b")], (1, 2): [("a", "b")]}


def test_directed_graph_keeps_orientation_and_rejects_cycles():
    dag = layered_dag(nx.DiGraph([(3, 1), (1, 2), (3, 2)]))
    assert set(dag.edges) == {(3, 1), (1, 2), (3, 2)}
    assert layer_of(dag) == {3: 0, 1: 1, 2: 2}
    with pytest.raises(ValueError, match="cycle"):
        layered_dag(nx.DiGraph([(0, 1), (1, 2), (2, 0)]))
    with pytest.raises(ValueError, match="self-loop"):
        layered_dag(nx.Graph([(0, 0)]))


def test_isolated_node_is_a_source_in_layer_zero():
    g = nx.path_graph(3)
    g.add_node(9)
    assert layer_of(layered_dag(g))[9] == 0


def test_layered_dag_is_idempotent():
    dag = watts_strogatz(20, 4, 0.5, seed=1)
    again = layered_dag(dag)
    assert set(again.edges) == set(dag.edges) and layer_of(again) == layer_of(dag)


@pytest.mark.parametrize(
    "dag",
    [watts_strogatz(30, 4, 0.3, seed=0), barabasi_albert(30, 2, seed=0), erdos_renyi(30, 0.1, 0)],
    ids=["ws", "ba", "er"],
)
def test_priors_are_layered_dags(dag):
    assert dag.number_of_nodes() == 30
    _check_layering(dag)


def test_priors_are_reproducible_and_connected_where_promised():
    a, b = watts_strogatz(25, 4, 0.9, seed=3), watts_strogatz(25, 4, 0.9, seed=3)
    assert set(a.edges) == set(b.edges)
    assert nx.is_weakly_connected(a)
    assert nx.is_weakly_connected(barabasi_albert(25, 1, seed=3))
