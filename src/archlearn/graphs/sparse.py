"""Sparse networks whose hidden connectivity is a given graph, and the way back (network -> graph).

``sparse_network(graph, in_features, out_features)`` realises a layered DAG
(:func:`archlearn.graphs.layered.layered_dag`) as a network with one hidden unit per node and one
trainable weight per edge:

* every *source* (layer 0) node is connected to all ``in_features`` inputs;
* every *sink* node (no successors, any layer) is connected to all ``out_features`` outputs;
* an edge ``u -> v`` from layer ``i`` to layer ``j`` is one nonzero entry of a mask of the block
  ``i -> j``; blocks with ``j > i + 1`` (skip-layer edges) are extra masked layers summed into
  layer ``j``'s pre-activation. Only the ``j - 1 -> j`` block carries a bias (it always exists,
  since each node of layer ``j`` has a predecessor in layer ``j - 1``).

With ``cell="rnn" | "rnn_relu" | "gru" | "lstm"`` each graph layer is a masked recurrent layer
over a sequence ``(N, T, in_features)``. The input-to-hidden mask comes from the edges into the
layer and is repeated for every gate; hidden-to-hidden weights are dense *within* a layer (the
graph says nothing about recurrence, and a unit must at least see its own state). Skip-layer edges
feed the source layer's output at each time step into the target layer's input.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from functools import reduce
from typing import cast

import networkx as nx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archlearn.graphs.layered import layer_edges, layer_nodes, layered_dag

__all__ = [
    "MaskedLinear",
    "MaskedRecurrentLayer",
    "SparseFFN",
    "SparseRNN",
    "sparse_network",
    "network_graph",
]

Edge = tuple[Hashable, Hashable]


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed boolean ``mask`` of shape (out, in).

    Masked weights are zero at init and get zero gradient (the product ``weight * mask`` is what
    the forward uses), so they stay zero under any gradient optimiser. Init is the usual
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with fan_in counted per row over *unmasked* inputs,
    so sparse units start with the same output scale as dense ones.

    >>> layer = MaskedLinear(3, 2, mask=torch.tensor([[1, 0, 0], [1, 1, 1]]))
    >>> layer(torch.ones(4, 3)).shape
    torch.Size([4, 2])
    """

    mask: Tensor

    def __init__(
        self, in_features: int, out_features: int, mask: Tensor | None = None, bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        full = torch.ones(out_features, in_features, dtype=torch.bool)
        mask = full if mask is None else mask.to(torch.bool).clone()
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask shape {tuple(mask.shape)} != {(out_features, in_features)}")
        self.register_buffer("mask", mask)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        mask = getattr(self, "mask", None)
        if mask is None:  # called by nn.Linear.__init__ before the mask exists
            return super().reset_parameters()
        bound = 1.0 / mask.sum(1, keepdim=True).clamp(min=1).float().sqrt()
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_(bound).mul_(mask)
            if self.bias is not None:
                self.bias.uniform_(-1.0, 1.0).mul_(bound.squeeze(1))

    @property
    def effective_weight(self) -> Tensor:
        """The weight the forward pass uses: ``weight * mask``."""
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.mask.float().mean().item():.3f}"


_GATES = {"rnn": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


class MaskedRecurrentLayer(nn.Module):
    """One recurrent layer (``rnn`` tanh, ``rnn_relu``, ``gru``, ``lstm``) with a masked input.

    ``mask`` (hidden, input) is repeated for every gate (PyTorch gate order: GRU r, z, n;
    LSTM i, f, g, o); hidden-to-hidden weights are dense. Written with plain tensor ops over
    time so the masked product is explicit. Input ``(N, T, input_size)``, output
    ``(N, T, hidden_size)`` (the hidden state at every step, zero initial state).

    >>> cell = MaskedRecurrentLayer(3, 2, torch.tensor([[1, 0, 1], [0, 1, 0]]), cell="gru")
    >>> cell(torch.zeros(5, 7, 3)).shape
    torch.Size([5, 7, 2])
    """

    mask: Tensor

    def __init__(
        self, input_size: int, hidden_size: int, mask: Tensor | None = None, cell: str = "lstm"
    ) -> None:
        super().__init__()
        if cell not in _GATES:
            raise ValueError(f"cell must be one of {sorted(_GATES)}, got {cell!r}")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        gates = _GATES[cell] * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        full = torch.ones(hidden_size, input_size, dtype=torch.bool)
        mask = full if mask is None else mask.to(torch.bool).clone()
        if mask.shape != (hidden_size, input_size):
            raise ValueError(f"mask shape {tuple(mask.shape)} != {(hidden_size, input_size)}")
        self.register_buffer("mask", mask)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same init as torch.nn.RNN/GRU/LSTM, then zero the masked input weights.
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)
            self.weight_ih.mul_(self.gate_mask())

    def gate_mask(self) -> Tensor:
        """The input mask repeated once per gate: shape (gates * hidden, input)."""
        return self.mask.repeat(_GATES[self.cell], 1)

    def forward(self, x: Tensor) -> Tensor:
        n, steps, _ = x.shape
        # The input projection does not depend on the state: do all time steps at once.
        xw = F.linear(x, self.weight_ih * self.gate_mask(), self.bias_ih)
        h = x.new_zeros(n, self.hidden_size)
        c = x.new_zeros(n, self.hidden_size)
        outs = []
        for t in range(steps):
            xt, hw = xw[:, t], F.linear(h, self.weight_hh, self.bias_hh)
            if self.cell == "lstm":
                i, f, g, o = (xt + hw).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            elif self.cell == "gru":
                xr, xz, xn = xt.chunk(3, 1)
                hr, hz, hn = hw.chunk(3, 1)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            elif self.cell == "rnn":
                h = torch.tanh(xt + hw)
            else:
                h = torch.relu(xt + hw)
            outs.append(h)
        return torch.stack(outs, 1)

    def extra_repr(self) -> str:
        return f"{self.cell}, {self.input_size}, {self.hidden_size}"


@dataclass(frozen=True)
class _Plan:
    """What both network kinds need from the graph: layers, per-block masks, sink positions."""

    layers: list[list[Hashable]]
    masks: dict[tuple[int, int], Tensor]  # (i, j) -> bool (|L_j|, |L_i|)
    sinks: list[int]  # positions of sink nodes in the concatenation of all layers

    @classmethod
    def of(cls, graph: nx.Graph) -> _Plan:
        dag = layered_dag(graph)
        if dag.number_of_nodes() == 0:
            raise ValueError("graph has no nodes")
        layers = layer_nodes(dag)
        pos = {v: k for layer in layers for k, v in enumerate(layer)}
        masks = {}
        for (i, j), edges in layer_edges(dag).items():
            mask = torch.zeros(len(layers[j]), len(layers[i]), dtype=torch.bool)
            for u, v in edges:
                mask[pos[v], pos[u]] = True
            masks[(i, j)] = mask
        flat = [v for layer in layers for v in layer]
        sinks = [k for k, v in enumerate(flat) if dag.out_degree(v) == 0]
        return cls(layers, masks, sinks)

    def incoming(self, j: int) -> list[int]:
        return sorted(i for (i, jj) in self.masks if jj == j)

    def edges(self, i: int, j: int, mask: Tensor) -> set[Edge]:
        src, dst = self.layers[i], self.layers[j]
        return {(src[a], dst[b]) for b, a in mask.nonzero().tolist()}


class SparseFFN(nn.Module):
    """Feed-forward network with the hidden connectivity of a layered DAG (see module docstring).

    Input ``(N, in_features)`` (extra dims are flattened), output ``(N, out_features)``; ReLU on
    every hidden unit. ``layers`` holds the graph nodes of each hidden layer.

    >>> net = SparseFFN(nx.DiGraph([(0, 1), (1, 2), (0, 2)]), 4, 3)
    >>> net(torch.zeros(2, 4)).shape, sorted(net.graph_edges())
    (torch.Size([2, 3]), [(0, 1), (0, 2), (1, 2)])
    """

    sink_index: Tensor

    def __init__(self, graph: nx.Graph, in_features: int, out_features: int) -> None:
        super().__init__()
        plan = _Plan.of(graph)
        self._plan = plan
        self._incoming = [plan.incoming(j) for j in range(len(plan.layers))]
        self.layers = plan.layers
        self.input = nn.Linear(in_features, len(plan.layers[0]))
        self.blocks = nn.ModuleDict(
            {
                f"{i}_{j}": MaskedLinear(mask.shape[1], mask.shape[0], mask, bias=i == j - 1)
                for (i, j), mask in plan.masks.items()
            }
        )
        self.register_buffer("sink_index", torch.tensor(plan.sinks, dtype=torch.long))
        self.output = nn.Linear(len(plan.sinks), out_features)

    def forward(self, x: Tensor) -> Tensor:
        hs = [torch.relu(self.input(x.flatten(1)))]
        for j in range(1, len(self.layers)):
            pre = reduce(torch.add, [self.blocks[f"{i}_{j}"](hs[i]) for i in self._incoming[j]])
            hs.append(torch.relu(pre))
        return self.output(torch.cat(hs, 1).index_select(1, self.sink_index))

    def graph_edges(self) -> set[Edge]:
        """Hidden connections ``(u, v)`` realised by nonzero mask entries."""
        out: set[Edge] = set()
        for key, block in self.blocks.items():
            i, j = map(int, key.split("_"))
            out |= self._plan.edges(i, j, cast(MaskedLinear, block).mask)
        return out


class SparseRNN(nn.Module):
    """Recurrent network with one masked recurrent layer per graph layer (see module docstring).

    Input ``(N, T, in_features)``; output ``(N, out_features)`` from the sink units' hidden
    states at the last time step. Layer ``j`` reads, at every step, the concatenated outputs of
    the layers with edges into it (layer 0 reads the input, fully connected).

    >>> net = SparseRNN(nx.DiGraph([(0, 1), (1, 2), (0, 2)]), 4, 3, cell="lstm")
    >>> net(torch.zeros(2, 5, 4)).shape
    torch.Size([2, 3])
    """

    sink_index: Tensor

    def __init__(self, graph: nx.Graph, in_features: int, out_features: int, cell: str) -> None:
        super().__init__()
        plan = _Plan.of(graph)
        self._plan = plan
        self._incoming = [plan.incoming(j) for j in range(len(plan.layers))]
        self.layers = plan.layers
        self.cell = cell
        cells = [MaskedRecurrentLayer(in_features, len(plan.layers[0]), None, cell)]
        for j in range(1, len(plan.layers)):
            mask = torch.cat([plan.masks[(i, j)] for i in plan.incoming(j)], 1)
            cells.append(MaskedRecurrentLayer(mask.shape[1], mask.shape[0], mask, cell))
        self.cells = nn.ModuleList(cells)
        self.register_buffer("sink_index", torch.tensor(plan.sinks, dtype=torch.long))
        self.output = nn.Linear(len(plan.sinks), out_features)

    def forward(self, x: Tensor) -> Tensor:
        hs = [self.cells[0](x)]
        for j in range(1, len(self.layers)):
            hs.append(self.cells[j](torch.cat([hs[i] for i in self._incoming[j]], 2)))
        last = torch.cat([h[:, -1] for h in hs], 1)
        return self.output(last.index_select(1, self.sink_index))

    def graph_edges(self) -> set[Edge]:
        """Hidden connections ``(u, v)`` realised by nonzero input-mask entries."""
        out: set[Edge] = set()
        for j in range(1, len(self.layers)):
            sources = self._incoming[j]
            widths = [len(self.layers[i]) for i in sources]
            mask = cast(Tensor, self.cells[j].mask)
            for i, part in zip(sources, mask.split(widths, 1)):
                out |= self._plan.edges(i, j, part)
        return out


def sparse_network(
    graph: nx.Graph, in_features: int, out_features: int, cell: str | None = None
) -> SparseFFN | SparseRNN:
    """Build a network whose hidden units and connections are ``graph``'s nodes and edges.

    ``cell=None`` gives a :class:`SparseFFN`; ``"rnn"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"``
    a :class:`SparseRNN`. Undirected graphs are oriented as in
    :func:`~archlearn.graphs.layered.layered_dag`.

    >>> net = sparse_network(nx.path_graph(4), in_features=8, out_features=2)
    >>> len(net.graph_edges())
    3
    """
    if cell is None:
        return SparseFFN(graph, in_features, out_features)
    return SparseRNN(graph, in_features, out_features, cell)


def _weight(layer: nn.Linear) -> Tensor:
    return layer.effective_weight if isinstance(layer, MaskedLinear) else layer.weight


def _add_edges(g: nx.DiGraph, weight: Tensor, src: list, dst: list) -> None:
    rows, cols = (weight.detach() != 0).nonzero(as_tuple=True)
    g.add_edges_from((src[a], dst[b]) for b, a in zip(rows.tolist(), cols.tolist()))


def network_graph(model: nn.Module) -> nx.DiGraph:
    """The graph of a (pruned) feed-forward network: a node per unit, an edge per nonzero weight.

    For a :class:`SparseFFN` hidden nodes keep their graph labels and inputs/outputs are
    ``("in", k)`` / ``("out", k)``. Any other model is read as the chain of its ``nn.Linear``
    modules in registration order (how ``nn.Sequential`` runs them); nodes are
    ``(layer, unit)`` with layer 0 the input. Every node has a ``layer`` attribute (its position
    in the network); all units are kept, even those pruning left isolated.

    >>> g = network_graph(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)))
    >>> g.number_of_nodes(), g.number_of_edges()
    (6, 8)
    """
    g = nx.DiGraph()
    if isinstance(model, SparseRNN):
        raise TypeError("network_graph reads feed-forward networks only")
    if isinstance(model, SparseFFN):
        inputs = [("in", k) for k in range(model.input.in_features)]
        outputs = [("out", k) for k in range(model.output.out_features)]
        flat = [v for layer in model.layers for v in layer]
        g.add_nodes_from(inputs, layer=0)
        for depth, layer in enumerate(model.layers, start=1):
            g.add_nodes_from(layer, layer=depth)
        g.add_nodes_from(outputs, layer=len(model.layers) + 1)
        _add_edges(g, model.input.weight, inputs, model.layers[0])
        for key, block in model.blocks.items():
            i, j = map(int, key.split("_"))
            _add_edges(g, cast(MaskedLinear, block).effective_weight, model.layers[i],
                       model.layers[j])
        sinks = [flat[k] for k in model.sink_index.tolist()]
        _add_edges(g, model.output.weight, sinks, outputs)
        return g
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layers")
    for depth, (a, b) in enumerate(zip(linears, linears[1:]), start=1):
        if a.out_features != b.in_features:
            raise ValueError(
                f"Linear layers {depth} and {depth + 1} do not chain: "
                f"{a.out_features} outputs feed {b.in_features} inputs"
            )
    units = [[(0, k) for k in range(linears[0].in_features)]]
    units += [[(d, k) for k in range(m.out_features)] for d, m in enumerate(linears, start=1)]
    for d, layer in enumerate(units):
        g.add_nodes_from(layer, layer=d)
    for d, m in enumerate(linears):
        _add_edges(g, _weight(m), units[d], units[d + 1])
    return g
