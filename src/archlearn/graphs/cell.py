"""A cell whose nodes are wired by a layered DAG, and the DAG read back from its weights.

After deepstruct's ``DeepCellDAN`` (innvariant/deepstruct): every node of a DAG
(:func:`archlearn.graphs.layered.layered_dag`) is a small operation, here ``Conv1d -> BatchNorm
-> ReLU`` with ``channels`` output channels; a source node reads the cell's input, any other
node the channel concatenation of its predecessors' outputs, in ``graph.predecessors`` order;
the cell's output concatenates the sink nodes (no successors). An edge ``u -> v`` is therefore
one block of input channels of node ``v``'s conv, and removing the edge is zeroing that block.

``node_inputs()`` states this for structure-learning methods (differentiable sparsification's
``mode="cell"`` learns which edges stay), and :meth:`DagCell.learned_graph` reads the
connectivity back: an edge stays when its block of weights is not all exactly zero.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import networkx as nx
import torch
from torch import nn

from archlearn.graphs.layered import layered_dag

__all__ = ["DagCell", "complete_dag", "cell_net"]


def complete_dag(nodes: int) -> nx.DiGraph:
    """Every edge ``i -> j`` with ``i < j``: the candidate cell a method prunes from.

    >>> complete_dag(4).number_of_edges()
    6
    """
    return layered_dag(nx.complete_graph(nodes))


class DagCell(nn.Module):
    """Nodes of a DAG as ``Conv1d -> BN -> ReLU`` ops; input ``[N, in_channels, L]``.

    >>> cell = DagCell(complete_dag(3), in_channels=1, channels=4)
    >>> cell(torch.zeros(2, 1, 10)).shape
    torch.Size([2, 4, 10])
    >>> sorted(cell.learned_graph().edges)
    [(0, 1), (0, 2), (1, 2)]
    """

    def __init__(self, graph: nx.DiGraph, in_channels: int, channels: int = 8,
                 kernel_size: int = 5) -> None:
        super().__init__()
        self.graph = layered_dag(graph)
        if self.graph.number_of_nodes() == 0:
            raise ValueError("the cell's graph has no nodes")
        self.order: list[Hashable] = list(nx.topological_sort(self.graph))
        self.sinks = [v for v in self.order if self.graph.out_degree(v) == 0]
        self.key = {v: f"n{i}" for i, v in enumerate(self.order)}  # module names of the nodes
        self.ops = nn.ModuleDict()
        self._blocks: dict[Hashable, list[tuple[Hashable, int, int]]] = {}
        for v in self.order:
            preds = list(self.graph.predecessors(v))
            width = in_channels if not preds else channels * len(preds)
            self._blocks[v] = [(u, channels * i, channels * (i + 1)) for i, u in enumerate(preds)]
            self.ops[self.key[v]] = nn.Sequential(
                nn.Conv1d(width, channels, kernel_size, padding=kernel_size // 2),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            )
        self.out_channels = channels * len(self.sinks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: dict[Hashable, torch.Tensor] = {}
        for v in self.order:
            preds = [out[u] for u, _, _ in self._blocks[v]]
            out[v] = self.ops[self.key[v]](torch.cat(preds, dim=1) if preds else x)
        return torch.cat([out[v] for v in self.sinks], dim=1)

    def node_inputs(self) -> dict[str, list[tuple[str, int, int]]]:
        """For each node with predecessors: its conv's name (relative to the cell) and, per
        incoming edge, the source node and the input channels ``[start, stop)`` it feeds."""
        return {
            f"ops.{self.key[v]}.0": [(str(u), a, b) for u, a, b in blocks]
            for v, blocks in self._blocks.items() if blocks
        }

    def learned_graph(self) -> nx.DiGraph:
        """The DAG of the edges whose weights are not all exactly zero (every node kept)."""
        kept = nx.DiGraph()
        kept.add_nodes_from(self.graph.nodes(data=True))
        for v, blocks in self._blocks.items():
            op: Any = self.ops[self.key[v]]
            w = op[0].weight.detach()
            kept.add_edges_from((u, v) for u, a, b in blocks if w[:, a:b].ne(0).any())
        return kept


def cell_net(graph: nx.DiGraph, length: int, num_classes: int, in_channels: int = 1,
             channels: int = 8, kernel_size: int = 5) -> nn.Sequential:
    """A classifier around one cell: ``DagCell -> flatten -> Linear`` (e.g. MNIST-1D, length 40).

    >>> net = cell_net(complete_dag(3), length=40, num_classes=10)
    >>> net(torch.zeros(2, 1, 40)).shape
    torch.Size([2, 10])
    """
    cell = DagCell(graph, in_channels, channels, kernel_size)
    return nn.Sequential(cell, nn.Flatten(), nn.Linear(cell.out_channels * length, num_classes))
