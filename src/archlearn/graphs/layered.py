"""Layered DAGs: the structure a sparse network is built from (after Stier et al., deepstruct).

A graph becomes a DAG whose nodes carry a ``layer`` attribute:
``layer(v) = 0`` for a source, ``1 + max(layer(u) for u in predecessors(v))`` otherwise.
Every node of layer ``j >= 1`` therefore has at least one predecessor in layer ``j - 1``;
edges from layer ``i < j - 1`` are *skip-layer* edges.

Orientation rule for undirected graphs: an edge ``{u, v}`` becomes ``u -> v`` when ``u`` comes
before ``v`` in the graph's node iteration order (``list(graph.nodes)``). For the integer-labelled
graphs networkx generators return this is "smaller label to larger label". Any total order gives
an acyclic result; this one is deterministic and needs no comparable labels.
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx

__all__ = [
    "layered_dag",
    "layer_of",
    "layer_nodes",
    "layer_edges",
    "watts_strogatz",
    "barabasi_albert",
    "erdos_renyi",
]


def layered_dag(graph: nx.Graph) -> nx.DiGraph:
    """Return ``graph`` as a DAG whose nodes carry an integer ``layer`` attribute.

    Undirected edges are oriented from the earlier to the later node in ``graph.nodes`` order
    (see the module docstring). Directed graphs keep their orientation and must be acyclic.
    Multi-edges collapse into one edge; node attributes are copied.

    Raises ``ValueError`` for a directed graph with a cycle or an undirected self-loop.

    >>> dag = layered_dag(nx.path_graph(3))
    >>> [dag.nodes[v]["layer"] for v in dag]
    [0, 1, 2]
    """
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes(data=True))
    if graph.is_directed():
        dag.add_edges_from(graph.edges())
        if not nx.is_directed_acyclic_graph(dag):
            raise ValueError("directed graph has a cycle; a layered DAG needs an acyclic graph")
    else:
        order = {v: i for i, v in enumerate(graph.nodes)}
        for u, v in graph.edges():
            if u == v:
                raise ValueError(f"self-loop on node {u!r} cannot be oriented into a DAG")
            dag.add_edge(*((u, v) if order[u] < order[v] else (v, u)))
    # Topological order guarantees every predecessor already has its layer.
    for v in nx.topological_sort(dag):
        preds = [dag.nodes[u]["layer"] for u in dag.predecessors(v)]
        dag.nodes[v]["layer"] = 1 + max(preds) if preds else 0
    return dag


def layer_of(dag: nx.DiGraph) -> dict[Hashable, int]:
    """Map each node of a layered DAG to its layer index.

    >>> layer_of(layered_dag(nx.path_graph(2)))
    {0: 0, 1: 1}
    """
    return dict(dag.nodes(data="layer"))


def layer_nodes(dag: nx.DiGraph) -> list[list[Hashable]]:
    """Nodes per layer, layer 0 first; inside a layer nodes keep ``dag.nodes`` order.

    >>> layer_nodes(layered_dag(nx.star_graph(2)))
    [[0], [1, 2]]
    """
    layers = layer_of(dag)
    out: list[list[Hashable]] = [[] for _ in range(max(layers.values(), default=-1) + 1)]
    for v in dag.nodes:
        out[layers[v]].append(v)
    return out


def layer_edges(dag: nx.DiGraph) -> dict[tuple[int, int], list[tuple[Hashable, Hashable]]]:
    """Group edges by ``(layer of source, layer of target)``; ``j > i + 1`` marks skip edges.

    >>> g = nx.DiGraph([(0, 1), (1, 2), (0, 2)])
    >>> layer_edges(layered_dag(g))
    {(0, 1): [(0, 1)], (0, 2): [(0, 2)], (1, 2): [(1, 2)]}
    """
    layers = layer_of(dag)
    out: dict[tuple[int, int], list[tuple[Hashable, Hashable]]] = {}
    for u, v in dag.edges():
        out.setdefault((layers[u], layers[v]), []).append((u, v))
    return dict(sorted(out.items()))


# Priors: random graph families used by Stier et al. as network structures.


def watts_strogatz(n: int, k: int, p: float, seed: int | None = None) -> nx.DiGraph:
    """Connected Watts-Strogatz small-world graph as a layered DAG.

    >>> watts_strogatz(10, 4, 0.3, seed=0).number_of_nodes()
    10
    """
    return layered_dag(nx.connected_watts_strogatz_graph(n, k, p, tries=1000, seed=seed))


def barabasi_albert(n: int, m: int, seed: int | None = None) -> nx.DiGraph:
    """Barabasi-Albert preferential-attachment graph (always connected) as a layered DAG.

    >>> barabasi_albert(10, 2, seed=0).number_of_edges()
    16
    """
    return layered_dag(nx.barabasi_albert_graph(n, m, seed=seed))


def erdos_renyi(n: int, p: float, seed: int | None = None) -> nx.DiGraph:
    """Erdos-Renyi G(n, p) graph as a layered DAG.

    networkx has no connected variant, so the result may be disconnected (isolated nodes are
    then both sources and sinks).

    >>> erdos_renyi(10, 0.5, seed=0).number_of_nodes()
    10
    """
    return layered_dag(nx.erdos_renyi_graph(n, p, seed=seed))
