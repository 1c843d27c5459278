"""Sparse networks from graphs: the mask realises exactly the graph's edges."""

import networkx as nx
import pytest
import torch
from torch import nn

from archlearn.graphs import (
    MaskedLinear,
    MaskedRecurrentLayer,
    SparseFFN,
    SparseRNN,
    barabasi_albert,
    erdos_renyi,
    layered_dag,
    network_graph,
    sparse_network,
    watts_strogatz,
)

# 0 -> 1 -> 2 -> 3 plus the skip edges 0 -> 2 and 0 -> 3 (layers 0 -> 2 and 0 -> 3), and a
# second sink 4 in layer 1.
SKIP = nx.DiGraph([(0, 1), (1, 2), (2, 3), (0, 2), (0, 3), (0, 4)])

GRAPHS = {
    "ws": watts_strogatz(24, 4, 0.3, seed=0),
    "ba": barabasi_albert(24, 2, seed=0),
    "er": erdos_renyi(24, 0.15, seed=0),
    "skip": SKIP,
}


def _n_mask_entries(net: nn.Module) -> int:
    if isinstance(net, SparseFFN):
        return sum(int(b.mask.sum()) for b in net.blocks.values())
    return sum(int(c.mask.sum()) for c in list(net.cells)[1:])


@pytest.mark.parametrize("cell", [None, "lstm"])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_connections_equal_graph_edges(name, cell):
    graph = GRAPHS[name]
    net = sparse_network(graph, 5, 3, cell=cell)
    assert net.graph_edges() == set(layered_dag(graph).edges)
    assert _n_mask_entries(net) == graph.number_of_edges()


def test_skip_edges_become_extra_masked_layers():
    net = sparse_network(SKIP, 5, 3)
    assert net.layers == [[0], [1, 4], [2], [3]]
    assert set(net.blocks) == {"0_1", "1_2", "2_3", "0_2", "0_3"}
    assert net.blocks["0_2"].bias is None and net.blocks["1_2"].bias is not None
    sinks = [[v for layer in net.layers for v in layer][k] for k in net.sink_index.tolist()]
    assert sorted(sinks) == [3, 4]
    assert net(torch.randn(7, 5)).shape == (7, 3)


def test_skip_edge_weight_reaches_the_output():
    torch.manual_seed(0)
    net = sparse_network(SKIP, 5, 3)
    x = torch.randn(16, 5)
    before = net(x)
    with torch.no_grad():
        net.blocks["0_3"].weight.add_(1.0)
    assert not torch.allclose(before, net(x))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_masked_weights_get_zero_gradient(name):
    torch.manual_seed(0)
    net = sparse_network(GRAPHS[name], 5, 3)
    net(torch.randn(8, 5)).pow(2).sum().backward()
    for block in net.blocks.values():
        assert block.weight.grad is not None
        assert torch.all(block.weight.grad[~block.mask] == 0)
        assert torch.all(block.weight[~block.mask] == 0)


def test_masked_linear_init_and_shape_check():
    layer = MaskedLinear(4, 2, mask=torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]]))
    assert layer.weight[0, 1:].abs().sum() == 0
    assert layer.weight[0, 0].abs() <= 1.0  # bound 1/sqrt(1) for a single input
    with pytest.raises(ValueError, match="mask shape"):
        MaskedLinear(4, 2, mask=torch.ones(4, 2))


@pytest.mark.parametrize("cell,gates", [("rnn", 1), ("rnn_relu", 1), ("gru", 3), ("lstm", 4)])
def test_recurrent_mask_is_repeated_per_gate(cell, gates):
    net = sparse_network(GRAPHS["ws"], 5, 3, cell=cell)
    assert isinstance(net, SparseRNN)
    for layer in net.cells:
        gm = layer.gate_mask()
        assert gm.shape == (gates * layer.hidden_size, layer.input_size)
        for chunk in gm.chunk(gates, 0):
            assert torch.equal(chunk, layer.mask)
        assert torch.all(layer.weight_ih[~gm] == 0)
        assert layer.weight_hh.shape == (gates * layer.hidden_size, layer.hidden_size)
    assert net(torch.randn(4, 6, 5)).shape == (4, 3)


@pytest.mark.parametrize("cell", ["rnn", "rnn_relu", "gru", "lstm"])
def test_masked_input_weight_has_no_effect(cell):
    torch.manual_seed(0)
    net = sparse_network(SKIP, 5, 3, cell=cell)
    x = torch.randn(4, 6, 5)
    before = net(x)
    layer = net.cells[2]  # node 2 reads layers 0 and 1 = [0 | 1, 4]; edge 4 -> 2 is absent
    gm = layer.gate_mask()
    assert not gm.all()
    with torch.no_grad():
        layer.weight_ih[~gm] = 5.0
    assert torch.allclose(before, net(x))
    if cell != "rnn_relu":  # control: an unmasked weight matters (ReLU units here may be dead)
        with torch.no_grad():
            layer.weight_ih[gm] += 1.0
        assert not torch.allclose(before, net(x))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_full_mask_cell_matches_torch(cell):
    # With a full mask our cell must be the standard one: compare against torch's own module.
    torch.manual_seed(0)
    ours = MaskedRecurrentLayer(3, 4, None, cell)
    ref = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](3, 4, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(ours, name))
    x = torch.randn(2, 5, 3)
    assert torch.allclose(ours(x), ref(x)[0], atol=1e-6)


def test_network_graph_of_sparse_ffn_recovers_the_graph():
    graph = GRAPHS["ba"]
    net = sparse_network(graph, 5, 3)
    g = network_graph(net)
    hidden = set(graph.nodes)
    assert {(u, v) for u, v in g.edges if u in hidden and v in hidden} == set(graph.edges)
    n_sinks = len(net.sink_index)
    assert g.number_of_edges() == graph.number_of_edges() + 5 * len(net.layers[0]) + 3 * n_sinks
    with torch.no_grad():  # pruning a weight removes its edge
        net.blocks["0_1"].mask[net.blocks["0_1"].mask.nonzero()[0].tolist()] = False
    assert network_graph(net).number_of_edges() == g.number_of_edges() - 1


def test_network_graph_of_linear_stack():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0, :] = 0  # prune every input of unit (1, 0)
    g = network_graph(model)
    assert g.number_of_nodes() == 9
    assert g.number_of_edges() == 4 * 3 - 4 + 3 * 2
    assert g.in_degree((1, 0)) == 0 and g.nodes[(2, 1)]["layer"] == 2
    with pytest.raises(ValueError, match="do not chain"):
        network_graph(nn.Sequential(nn.Linear(4, 3), nn.Linear(2, 1)))
    with pytest.raises(TypeError):
        network_graph(sparse_network(SKIP, 2, 2, cell="gru"))
