"""The 23 structural graph features of Stier et al. (arXiv 2107.12917), computed with networkx.

Features are computed on the layered DAG of the graph (:func:`layered_dag`; an already layered
DAG is unchanged), with these conventions:

* ``layers``: number of layers; ``sources`` / ``sinks``: nodes with in- / out-degree 0
  (an isolated node is both);
* ``density``: directed density ``m / (n (n - 1))``;
* ``diameter``, ``avg_shortest_path`` and ``eccentricity_*`` need strong connectivity, which a
  DAG never has, so they use the *undirected* version. If that is disconnected, distances are
  taken inside each connected component: eccentricity is within the node's component, the
  diameter is the largest eccentricity, and the average shortest path is over connected pairs
  only (0 when there are none);
* ``degree_*``: in + out degree; ``closeness_*``, ``node_betweenness_*`` and
  ``edge_betweenness_*``: networkx defaults on the DAG (directed, normalised; closeness uses
  incoming distances with the Wasserman-Faust correction);
* ``*_var`` is the population variance (``ddof=0``) and ``*_std`` its square root.

Cost: betweenness is O(n m); fine for priors of tens of nodes, slow for full MNIST MLP graphs.
"""

from __future__ import annotations

from typing import cast

import networkx as nx
import numpy as np

from archlearn.graphs.layered import layer_of, layered_dag

__all__ = ["FEATURE_NAMES", "features"]

_SCALARS = (
    "layers",
    "nodes",
    "edges",
    "sources",
    "sinks",
    "diameter",
    "density",
    "avg_shortest_path",
)
_DISTRIBUTIONS = ("eccentricity", "degree", "closeness", "node_betweenness", "edge_betweenness")

#: Feature order of :func:`features` (also the column order for regressors).
FEATURE_NAMES: tuple[str, ...] = _SCALARS + tuple(
    f"{name}_{stat}" for name in _DISTRIBUTIONS for stat in ("mean", "var", "std")
)


def _eccentricity_and_avg_path(undirected: nx.Graph) -> tuple[dict, float]:
    """Eccentricity per node and mean shortest path over connected pairs, per component."""
    ecc: dict = {}
    total, pairs = 0.0, 0
    for comp in nx.connected_components(undirected):
        sub = undirected.subgraph(comp)
        ecc.update(cast(dict, nx.eccentricity(sub)))  # a dict for a whole (sub)graph
        k = len(comp)
        if k > 1:
            # networkx averages over k (k - 1) ordered pairs; undo that to pool components.
            total += nx.average_shortest_path_length(sub) * k * (k - 1)
            pairs += k * (k - 1)
    return ecc, total / pairs if pairs else 0.0


def _stats(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return 0.0, 0.0, 0.0
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.var()), float(arr.std())


def features(graph: nx.Graph) -> dict[str, float]:
    """The 23 structural features of ``graph`` as an ordered dict keyed by :data:`FEATURE_NAMES`.

    >>> f = features(nx.path_graph(3))
    >>> f["layers"], f["nodes"], f["edges"], f["diameter"]
    (3.0, 3.0, 2.0, 2.0)
    >>> len(f)
    23
    """
    dag = layered_dag(graph)
    if dag.number_of_nodes() == 0:
        raise ValueError("features of an empty graph are undefined")
    ecc, avg_path = _eccentricity_and_avg_path(dag.to_undirected())
    out = {
        "layers": max(layer_of(dag).values()) + 1,
        "nodes": dag.number_of_nodes(),
        "edges": dag.number_of_edges(),
        "sources": sum(1 for _, d in dag.in_degree() if d == 0),
        "sinks": sum(1 for _, d in dag.out_degree() if d == 0),
        "diameter": max(ecc.values()),
        "density": nx.density(dag),
        "avg_shortest_path": avg_path,
    }
    distributions = {
        "eccentricity": list(ecc.values()),
        "degree": [d for _, d in dag.degree()],
        "closeness": list(nx.closeness_centrality(dag).values()),
        "node_betweenness": list(nx.betweenness_centrality(dag).values()),
        "edge_betweenness": list(nx.edge_betweenness_centrality(dag).values()),
    }
    for name, values in distributions.items():
        for stat, value in zip(("mean", "var", "std"), _stats(values)):
            out[f"{name}_{stat}"] = value
    return {name: float(out[name]) for name in FEATURE_NAMES}
