"""Graph structure of networks: layered DAGs, sparse networks from graphs, graph features, Reber.

The pieces of Stier et al. (arXiv 2107.12917): random graph priors turned into layered DAGs,
networks whose connectivity is such a DAG (feed-forward or recurrent), the graph of a trained or
pruned network, the 23 structural features used to predict performance, and the Reber grammar task;
and a cell whose nodes are wired by a DAG (deepstruct-style), whose edges a method can learn.
"""

from archlearn.graphs.cell import DagCell, cell_net, complete_dag
from archlearn.graphs.features import FEATURE_NAMES, features
from archlearn.graphs.layered import (
    barabasi_albert,
    erdos_renyi,
    layer_edges,
    layer_nodes,
    layer_of,
    layered_dag,
    watts_strogatz,
)
from archlearn.graphs.reber import (
    REBER_LETTERS,
    ReberClassifier,
    encode,
    generate_invalid,
    generate_valid,
    is_valid,
    reber_dataset,
)
from archlearn.graphs.sparse import (
    MaskedLinear,
    MaskedRecurrentLayer,
    SparseFFN,
    SparseRNN,
    network_graph,
    sparse_network,
)

__all__ = [
    "DagCell",
    "cell_net",
    "complete_dag",
    "FEATURE_NAMES",
    "features",
    "layered_dag",
    "layer_of",
    "layer_nodes",
    "layer_edges",
    "watts_strogatz",
    "barabasi_albert",
    "erdos_renyi",
    "MaskedLinear",
    "MaskedRecurrentLayer",
    "SparseFFN",
    "SparseRNN",
    "sparse_network",
    "network_graph",
    "REBER_LETTERS",
    "ReberClassifier",
    "encode",
    "generate_valid",
    "generate_invalid",
    "is_valid",
    "reber_dataset",
]
