"""DagCell: nodes wired by a layered DAG, what it declares to methods, the DAG read back."""

import networkx as nx
import pytest
import torch

from archlearn.graphs import DagCell, cell_net, complete_dag, watts_strogatz


def test_each_node_reads_the_concatenation_of_its_predecessors():
    torch.manual_seed(0)
    graph = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "c"), ("b", "d")])
    cell = DagCell(graph, in_channels=2, channels=3, kernel_size=3).eval()
    x = torch.randn(4, 2, 9)
    op = {v: cell.ops[cell.key[v]] for v in graph}
    a = op["a"](x)
    b = op["b"](a)
    c = op["c"](torch.cat([a, b], 1))
    d = op["d"](b)
    assert torch.equal(cell(x), torch.cat([c, d], 1))  # the sinks, in topological order
    assert cell.out_channels == 6
    assert cell.node_inputs() == {
        f"ops.{cell.key['b']}.0": [("a", 0, 3)],
        f"ops.{cell.key['c']}.0": [("a", 0, 3), ("b", 3, 6)],
        f"ops.{cell.key['d']}.0": [("b", 0, 3)],
    }


def test_learned_graph_drops_edges_whose_weights_are_all_zero():
    cell = DagCell(complete_dag(4), in_channels=1, channels=2)
    assert nx.utils.graphs_equal(cell.learned_graph(), cell.graph)
    with torch.no_grad():
        cell.ops[cell.key[3]][0].weight[:, 2:4] = 0  # node 3's input from node 1
        cell.ops[cell.key[2]][0].weight[0, 0] = 0  # one weight of 0 -> 2: the edge stays
    assert sorted(cell.learned_graph().edges) == [(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)]


def test_a_random_prior_becomes_a_working_classifier():
    net = cell_net(watts_strogatz(8, 4, 0.3, seed=0), length=40, num_classes=10)
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)
    assert net[0].learned_graph().number_of_edges() == net[0].graph.number_of_edges()


def test_empty_graph_is_refused():
    with pytest.raises(ValueError, match="no nodes"):
        DagCell(nx.DiGraph(), in_channels=1)
