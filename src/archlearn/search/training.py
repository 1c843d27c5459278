"""Short training runs of graph-structured networks: the fitness of a structure.

Both the performance-prediction data (:mod:`archlearn.search.predictor`) and the genetic search
(:mod:`archlearn.search.genetic`) need "train this graph for a few epochs, return its accuracy".

* :func:`random_prior_graph` draws a Watts-Strogatz, Barabasi-Albert or Erdos-Renyi graph with a
  random size and parameters and orients it into a layered DAG. By default the node order is
  shuffled first: oriented by label order, a Watts-Strogatz ring becomes a chain about ``n / 2``
  layers deep and a few units wide, which trains badly and slowly as a recurrent net.
* :func:`train_ffn` trains :class:`~archlearn.graphs.SparseFFN` on flattened examples.
* :func:`train_reber` trains :class:`ReberSparseNet` (``Embedding(128, 50)`` then a
  :class:`~archlearn.graphs.SparseRNN`, read at each string's true last letter) on the Reber task.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import networkx as nx
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from archlearn.graphs import SparseRNN, layered_dag, sparse_network
from archlearn.metrics import accuracy
from archlearn.seeding import seeded

__all__ = [
    "PRIORS",
    "oriented",
    "random_prior_graph",
    "ReberSparseNet",
    "length_batches",
    "Fit",
    "train_reber",
    "train_ffn",
    "reber_accuracy",
    "one_cycle",
]

#: Random-graph priors :func:`random_prior_graph` can draw from.
PRIORS = ("ws", "ba", "er")


def oriented(graph: nx.Graph, rng: random.Random | None = None) -> nx.DiGraph:
    """``graph`` as a layered DAG, oriented along a random node order when ``rng`` is given.

    :func:`~archlearn.graphs.layered_dag` orients ``u -> v`` when ``u`` comes first in node
    order; a shuffled order keeps the graph but changes which node is upstream.

    >>> dag = oriented(nx.cycle_graph(6), random.Random(0))
    >>> dag.number_of_edges(), nx.is_directed_acyclic_graph(dag)
    (6, True)
    """
    if rng is None:
        return layered_dag(graph)
    order = list(graph.nodes)
    rng.shuffle(order)
    shuffled = nx.Graph()
    shuffled.add_nodes_from((v, graph.nodes[v]) for v in order)
    shuffled.add_edges_from(graph.edges())
    return layered_dag(shuffled)


def random_prior_graph(
    prior: str, rng: random.Random, nodes: tuple[int, int] = (10, 30), shuffle: bool = True
) -> tuple[nx.DiGraph, dict]:
    """A random graph of family ``prior`` ("ws", "ba", "er") as a layered DAG, and its parameters.

    Sizes are uniform in ``nodes`` (inclusive); Watts-Strogatz ``k`` in {2, 4, 6} (capped below
    ``n``) and ``p`` uniform in [0, 1]; Barabasi-Albert ``m`` in 1..4; Erdos-Renyi ``p`` uniform
    in [0.05, 0.4]. Everything is drawn from ``rng``, so one seed gives one graph.

    >>> dag, params = random_prior_graph("ba", random.Random(0), nodes=(10, 12))
    >>> params["prior"], 10 <= dag.number_of_nodes() <= 12
    ('ba', True)
    """
    n = rng.randint(*nodes)
    graph_seed = rng.randrange(2**31)
    if prior == "ws":
        k = min(rng.choice((2, 4, 6)), n - 1 - (n - 1) % 2)
        p = rng.random()
        params = {"prior": prior, "n": n, "k": k, "p": p}
        graph = nx.connected_watts_strogatz_graph(n, k, p, tries=1000, seed=graph_seed)
    elif prior == "ba":
        m = rng.randint(1, min(4, n - 1))
        params = {"prior": prior, "n": n, "m": m}
        graph = nx.barabasi_albert_graph(n, m, seed=graph_seed)
    elif prior == "er":
        p = rng.uniform(0.05, 0.4)
        params = {"prior": prior, "n": n, "p": p}
        graph = nx.erdos_renyi_graph(n, p, seed=graph_seed)
    else:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    params["shuffled"] = shuffle
    return oriented(graph, rng if shuffle else None), params


class ReberSparseNet(nn.Module):
    """``Embedding(128, dim)`` -> recurrent sparse net of ``graph`` -> 2 classes at the last letter.

    :class:`~archlearn.graphs.SparseRNN` reads its sink units at the *last time step*; padded
    strings end earlier, so forward hooks on its cells collect every layer's states and the
    sinks are read at position ``length - 1`` instead (the recurrence is causal, so padding
    after the string never reaches that position). Batches are cropped to their longest string.

    >>> from archlearn.graphs import encode
    >>> net = ReberSparseNet(nx.DiGraph([(0, 1), (1, 2)]), "gru", embedding_dim=4)
    >>> codes, lengths = encode(["BTXSE", "BPVVEXX"], 9)
    >>> net(codes, lengths).shape
    torch.Size([2, 2])
    """

    def __init__(self, graph: nx.Graph, cell: str, embedding_dim: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(128, embedding_dim, padding_idx=0)
        rnn = sparse_network(graph, embedding_dim, 2, cell=cell)
        assert isinstance(rnn, SparseRNN)
        self.rnn = rnn
        self._states: list[Tensor] = []
        for layer in rnn.cells:
            layer.register_forward_hook(self._keep_state)

    def _keep_state(self, module: nn.Module, args: tuple, out: Tensor) -> None:
        self._states.append(out)

    def forward(self, codes: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            lengths = torch.full((codes.shape[0],), codes.shape[1], dtype=torch.long)
        codes = codes[:, : int(lengths.max())]
        self._states = []
        self.rnn(self.embed(codes))
        states = torch.cat(self._states, 2)  # (N, T, all hidden units), layer order
        self._states = []
        last = states[torch.arange(states.shape[0]), (lengths - 1).clamp(min=0)]
        return self.rnn.output(last.index_select(1, self.rnn.sink_index))


def length_batches(
    lengths: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Index batches of strings with similar lengths, in random order when ``generator`` is set.

    Strings are sorted by length (ties broken randomly) and cut into batches, so cropping a batch
    to its longest string wastes few steps (most Reber strings are 11-18 letters, the longest 53).

    >>> [b.tolist() for b in length_batches(torch.tensor([5, 3, 9, 3]), 2)]
    [[1, 3], [0, 2]]
    """
    n = len(lengths)
    if generator is None:
        order = torch.argsort(lengths, stable=True)
    else:
        perm = torch.randperm(n, generator=generator)
        order = perm[torch.argsort(lengths[perm], stable=True)]
    batches = list(order.split(batch_size))
    if generator is not None:
        batches = [batches[k] for k in torch.randperm(len(batches), generator=generator)]
    return batches


def reber_accuracy(model: nn.Module, data: TensorDataset, batch_size: int = 1000) -> float:
    """Accuracy on ``(codes, lengths, y)`` with batches of similar lengths, as in training."""
    return accuracy(model, data, batches=length_batches(data.tensors[1], batch_size))


def one_cycle(optimizer: torch.optim.Optimizer, lr: float, steps: int, anneal: bool):
    """A one-cycle schedule (10% warm-up, cosine to ~0) when ``anneal``, else ``None``.

    Ending at a tiny learning rate removes most of the last-iterate noise of a short Adam run,
    so the accuracy of a structure depends less on where the last batch happened to leave it.

    >>> opt = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=0.1)
    >>> one_cycle(opt, 0.1, 10, anneal=False) is None
    True
    """
    if not anneal:
        return None
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1),
                                               pct_start=0.1)


@dataclass(frozen=True)
class Fit:
    """How a structure is trained for its score: ``epochs`` of Adam at ``lr`` in batches of
    ``batch_size``, initialisation and data order drawn from ``seed``, the learning rate on
    :func:`one_cycle` when ``anneal`` (else constant)."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    anneal: bool = False


def _fit(model: nn.Module, batches: Callable[[], Iterable[tuple]], steps_per_epoch: int,
         fit: Fit) -> None:
    """Adam (and the optional one-cycle schedule) over ``fit.epochs`` passes of ``batches()``,
    whose items are ``(*inputs, labels)``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=fit.lr)
    schedule = one_cycle(optimizer, fit.lr, fit.epochs * steps_per_epoch, fit.anneal)
    model.train()
    for _ in range(fit.epochs):
        for *inputs, labels in batches():
            loss = nn.functional.cross_entropy(model(*inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()


def train_reber(graph: nx.Graph, cell: str, train: TensorDataset, test: TensorDataset,
                fit: Fit = Fit()) -> float:
    """Train a :class:`ReberSparseNet` of ``graph`` (see :class:`Fit`); its accuracy on ``test``.

    >>> from archlearn.graphs import reber_dataset
    >>> tr, te = reber_dataset(n=64, seed=0)
    >>> 0.0 <= train_reber(nx.path_graph(3), "rnn", tr, te, Fit(epochs=1)) <= 1.0
    True
    """
    generator = torch.Generator().manual_seed(fit.seed)
    with seeded(fit.seed):
        model = ReberSparseNet(graph, cell)
    codes, lengths, labels = train.tensors

    def batches():
        for idx in length_batches(lengths, fit.batch_size, generator):
            yield codes[idx], lengths[idx], labels[idx]

    _fit(model, batches, -(-len(lengths) // fit.batch_size), fit)
    return reber_accuracy(model, test)


def train_ffn(graph: nx.Graph, train: TensorDataset, test: TensorDataset, num_classes: int,
              fit: Fit = Fit(epochs=2, batch_size=64)) -> float:
    """Train a :class:`~archlearn.graphs.SparseFFN` of ``graph`` (see :class:`Fit`) on flattened
    inputs (``in_features`` read from the data); its accuracy on ``test``.

    >>> x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    >>> 0.0 <= train_ffn(nx.path_graph(3), TensorDataset(x, y), TensorDataset(x, y), 3) <= 1.0
    True
    """
    generator = torch.Generator().manual_seed(fit.seed)
    with seeded(fit.seed):
        model = sparse_network(graph, train.tensors[0][0].numel(), num_classes)

    def batches():
        return DataLoader(train, batch_size=fit.batch_size, shuffle=True, generator=generator)

    _fit(model, batches, -(-len(train) // fit.batch_size), fit)
    return accuracy(model, test)
