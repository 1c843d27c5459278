"""Genetic architecture search over layered DAGs, optionally screened by a performance predictor.

A genome is a DAG given by a node order and edges that go forward in that order (so every
mutation keeps it acyclic); its network is :func:`archlearn.graphs.sparse_network` of it.
Fitness is the accuracy after a short training, supplied by the caller as
``fitness(graph, seed) -> float`` (see :func:`ffn_fitness`).

One search (:func:`search`) has three strategies, compared at the same number of trainings:

* ``"ga"``: a (mu + lambda) loop. Generation 0 trains ``population`` random genomes (random
  Watts-Strogatz / Barabasi-Albert / Erdos-Renyi priors); every later generation picks parents by
  binary tournament, mutates them into ``offspring`` new genomes (add/remove node, add/remove
  edge, rewire), trains them and keeps the best ``population`` of parents and children.
* ``"ga"`` with ``use_predictor=True``: after ``warmup`` generations, each generation mutates
  ``offspring * screen`` candidates, a :class:`~archlearn.search.predictor.Predictor` (refitted on
  every network trained so far) ranks them by structural features, and only the top ``offspring``
  are trained. The other candidates cost a feature computation, not a training.
* ``"random"``: every generation trains ``offspring`` fresh genomes from the initial distribution.

Resumable: after every generation the whole state (config, population, every evaluated genome
with its fitness, the history) is written atomically to a JSON file; randomness is drawn from
``random.Random(f"{seed}-{generation}")`` and training seeds from the evaluation index, so a run
resumed with ``resume=True`` ends exactly where an uninterrupted one does.

>>> def fitness(graph, seed):  # a toy fitness: more edges is better, capped
...     return min(graph.number_of_edges(), 40) / 40
>>> result = search(fitness, budget=14, population=4, offspring=2, seed=0, progress=False)
>>> result["trainings"], 0 < result["best"]["fitness"] <= 1
(14, True)
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from archlearn.graphs import FEATURE_NAMES, features
from archlearn.io import write_json
from archlearn.search.predictor import Predictor
from archlearn.search.training import Fit, random_prior_graph, train_ffn

__all__ = [
    "Genome",
    "MUTATIONS",
    "mutate",
    "random_genome",
    "search",
    "ffn_fitness",
    "STATE_VERSION",
]

STATE_VERSION = 1
Fitness = Callable[[nx.DiGraph, int], float]


@dataclass(frozen=True)
class Genome:
    """A DAG: ``nodes`` in an order every edge ``(u, v)`` goes forward in (u before v).

    >>> g = Genome((0, 1, 2), ((0, 1), (1, 2)))
    >>> g.graph().number_of_edges(), Genome.from_json(g.to_json()) == g
    (2, True)
    """

    nodes: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        pos = {v: i for i, v in enumerate(self.nodes)}
        if len(pos) != len(self.nodes) or not self.nodes:
            raise ValueError("a genome needs at least one node and no repeated nodes")
        for u, v in self.edges:
            if u not in pos or v not in pos or pos[u] >= pos[v]:
                raise ValueError(f"edge {(u, v)} does not go forward in the node order")

    @classmethod
    def from_dag(cls, dag: nx.DiGraph) -> Genome:
        """Relabel ``dag`` to ``0..n-1`` along a topological order."""
        order = list(nx.topological_sort(dag))
        label = {v: i for i, v in enumerate(order)}
        return cls(tuple(range(len(order))), tuple(sorted((label[u], label[v])
                                                          for u, v in dag.edges())))

    def graph(self) -> nx.DiGraph:
        """The DAG as a networkx ``DiGraph`` (nodes inserted in genome order)."""
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    def key(self) -> str:
        """A structural hash (Weisfeiler-Lehman): isomorphic DAGs make the same network."""
        with warnings.catch_warnings():  # networkx 3.5 warns that hashes changed; ours are
            warnings.simplefilter("ignore")  # only compared within one run, never stored
            return nx.weisfeiler_lehman_graph_hash(self.graph(), iterations=4)

    def to_json(self) -> dict[str, list]:
        return {"nodes": list(self.nodes), "edges": [list(e) for e in self.edges]}

    @classmethod
    def from_json(cls, obj: dict[str, list]) -> Genome:
        return cls(tuple(obj["nodes"]), tuple((int(u), int(v)) for u, v in obj["edges"]))


def random_genome(rng: random.Random, nodes: tuple[int, int] = (5, 30),
                  priors: Sequence[str] = ("ws", "ba", "er")) -> Genome:
    """A genome from a random prior with a random size in ``nodes`` (node order shuffled).

    >>> 5 <= len(random_genome(random.Random(0)).nodes) <= 30
    True
    """
    dag, _ = random_prior_graph(rng.choice(list(priors)), rng, nodes, shuffle=True)
    return Genome.from_dag(dag)


# Mutations. Each returns a new genome or None when it does not apply (e.g. no edge to remove).


def _add_node(g: Genome, rng: random.Random, max_nodes: int) -> Genome | None:
    if len(g.nodes) >= max_nodes:
        return None
    new, at = max(g.nodes) + 1, rng.randint(0, len(g.nodes))
    nodes = g.nodes[:at] + (new,) + g.nodes[at:]
    edges = list(g.edges)
    if at > 0:  # wire it in: one predecessor and one successor where there are any
        edges.append((rng.choice(g.nodes[:at]), new))
    if at < len(g.nodes):
        edges.append((new, rng.choice(g.nodes[at:])))
    return Genome(nodes, tuple(sorted(edges)))


def _remove_node(g: Genome, rng: random.Random, min_nodes: int) -> Genome | None:
    if len(g.nodes) <= min_nodes:
        return None
    v = rng.choice(g.nodes)
    return Genome(tuple(u for u in g.nodes if u != v),
                  tuple(e for e in g.edges if v not in e))


def _add_edge(g: Genome, rng: random.Random) -> Genome | None:
    present = set(g.edges)
    free = [(u, v) for i, u in enumerate(g.nodes) for v in g.nodes[i + 1:] if (u, v) not in present]
    if not free:
        return None
    return Genome(g.nodes, tuple(sorted(present | {rng.choice(free)})))


def _remove_edge(g: Genome, rng: random.Random) -> Genome | None:
    if not g.edges:
        return None
    drop = rng.choice(g.edges)
    return Genome(g.nodes, tuple(e for e in g.edges if e != drop))


def _rewire(g: Genome, rng: random.Random) -> Genome | None:
    if not g.edges:
        return None
    u, v = rng.choice(g.edges)
    pos = {w: i for i, w in enumerate(g.nodes)}
    present = set(g.edges)
    # Move one end of the edge, keeping it forward in the order.
    options = [(u, w) for w in g.nodes[pos[u] + 1:] if (u, w) not in present]
    options += [(w, v) for w in g.nodes[: pos[v]] if (w, v) not in present]
    if not options:
        return None
    return Genome(g.nodes, tuple(sorted((present - {(u, v)}) | {rng.choice(options)})))


#: Mutation names, in the order ``mutate`` draws from.
MUTATIONS = ("add_node", "remove_node", "add_edge", "remove_edge", "rewire")


def mutate(g: Genome, rng: random.Random, min_nodes: int = 2, max_nodes: int = 60) -> Genome:
    """Apply one to three random mutations (each a different genome, always a valid DAG).

    >>> child = mutate(Genome((0, 1, 2), ((0, 1), (1, 2))), random.Random(1))
    >>> isinstance(child, Genome)
    True
    """
    steps = 1 + int(rng.random() < 0.5) + int(rng.random() < 0.25)
    out = g
    for _ in range(steps):
        for _ in range(20):  # a mutation can be inapplicable (no edge to remove): pick another
            name = rng.choice(MUTATIONS)
            if name == "add_node":
                child = _add_node(out, rng, max_nodes)
            elif name == "remove_node":
                child = _remove_node(out, rng, min_nodes)
            elif name == "add_edge":
                child = _add_edge(out, rng)
            elif name == "remove_edge":
                child = _remove_edge(out, rng)
            else:
                child = _rewire(out, rng)
            if child is not None:
                out = child
                break
    return out


# The search state, and its atomic JSON file.


def _tournament(population: list[dict], rng: random.Random) -> dict:
    a, b = rng.choice(population), rng.choice(population)
    return a if a["fitness"] >= b["fitness"] else b


def _child(parents: list[dict], rng: random.Random, max_nodes: int) -> Genome:
    """A mutated copy of a binary-tournament winner."""
    parent = Genome.from_json(_tournament(parents, rng)["genome"])
    return mutate(parent, rng, max_nodes=max_nodes)


def search(
    fitness: Fitness,
    *,
    budget: int,
    strategy: str = "ga",
    use_predictor: bool = False,
    population: int = 8,
    offspring: int = 4,
    screen: int = 4,
    warmup: int = 1,
    regressor: str = "random_forest",
    nodes: tuple[int, int] = (5, 30),
    max_nodes: int = 60,
    seed: int = 0,
    state_path: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    on_generation: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run one architecture search until ``budget`` networks are trained; return its state.

    See the module docstring for the strategies. The returned (and saved) state holds
    ``config``, ``generation``, ``trainings`` (calls to ``fitness``), ``screened`` (candidates the
    predictor ranked), ``population`` (indices into ``evaluated``), ``evaluated`` (every trained
    genome: ``genome``, ``fitness``, ``features``, ``generation``, ``seed``, ``predicted``),
    ``history`` (``[trainings, best fitness so far]`` after each training) and ``best``.
    ``on_generation(state)`` runs after each generation's state is written (an exception there
    stops the search with the file intact, ready for ``resume=True``).

    >>> s = search(lambda g, seed: g.number_of_nodes() / 60, budget=10, population=4,
    ...            offspring=3, strategy="random", seed=0, progress=False)
    >>> s["trainings"], len(s["history"])
    (10, 10)
    """
    if strategy not in ("ga", "random"):
        raise ValueError(f"strategy must be 'ga' or 'random', got {strategy!r}")
    if use_predictor and strategy != "ga":
        raise ValueError("use_predictor applies to strategy='ga' only")
    if budget < population or population < 1 or offspring < 1 or screen < 1:
        raise ValueError("need budget >= population >= 1, offspring >= 1 and screen >= 1")
    config = {
        "version": STATE_VERSION, "strategy": strategy, "use_predictor": use_predictor,
        "budget": budget, "population": population, "offspring": offspring, "screen": screen,
        "warmup": warmup, "regressor": regressor, "nodes": list(nodes), "max_nodes": max_nodes,
        "seed": seed,
    }
    path = Path(state_path) if state_path is not None else None
    if resume and path is not None and path.exists():
        state = json.loads(path.read_text())
        if state.get("config") != config:
            raise ValueError(f"state file {path} was written by a search with another config: "
                             f"{state.get('config')} != {config}")
    else:
        state = {"config": config, "generation": -1, "trainings": 0, "screened": 0,
                 "population": [], "evaluated": [], "history": [], "best": None}
    keys = {Genome.from_json(e["genome"]).key() for e in state["evaluated"]}
    bar = tqdm(total=budget, initial=state["trainings"], disable=not progress,
               desc=f"{strategy}{'+predictor' if use_predictor else ''} seed {seed}")

    def train(genome: Genome, generation: int, predicted: float | None) -> None:
        index = len(state["evaluated"])
        run_seed = seed * 1_000_003 + index  # depends on the evaluation index only: resumable
        value = float(fitness(genome.graph(), run_seed))
        keys.add(genome.key())
        feats = features(genome.graph())
        state["evaluated"].append({"genome": genome.to_json(), "fitness": value,
                                   "features": [feats[k] for k in FEATURE_NAMES],
                                   "generation": generation, "seed": run_seed,
                                   "predicted": predicted})
        state["trainings"] += 1
        best = max(state["history"][-1][1] if state["history"] else -np.inf, value)
        state["history"].append([state["trainings"], best])
        bar.update(1)
        bar.set_postfix(best=f"{best:.4f}")

    def fresh(rng: random.Random, make: Callable[[random.Random], Genome],
              count: int) -> list[Genome]:
        """``count`` genomes never evaluated before and distinct from each other."""
        out: list[Genome] = []
        seen: set[str] = set()  # only trained genomes enter ``keys``: resume rebuilds it
        for _ in range(50 * count):
            if len(out) == count:
                break
            g = make(rng)
            k = g.key()
            if k not in keys and k not in seen:
                seen.add(k)
                out.append(g)
        return out

    new = partial(random_genome, nodes=nodes)
    while state["trainings"] < budget:
        gen = state["generation"] + 1
        rng = random.Random(f"{seed}-{gen}")
        left = budget - state["trainings"]
        if gen == 0:
            for g in fresh(rng, new, min(population, left)):
                train(g, gen, None)
            state["population"] = list(range(len(state["evaluated"])))
        elif strategy == "random":
            for g in fresh(rng, new, min(offspring, left)):
                train(g, gen, None)
        else:
            parents = [state["evaluated"][i] for i in state["population"]]
            screening = use_predictor and gen > warmup
            count = min(offspring, left)
            child = partial(_child, parents, max_nodes=max_nodes)
            candidates = fresh(rng, child, count * screen if screening else count)
            predictions: list[float | None] = [None] * len(candidates)
            if screening and len(candidates) > count:
                done = state["evaluated"]
                predictor = Predictor(regressor, seed=seed).fit_features(
                    np.array([e["features"] for e in done]), [e["fitness"] for e in done])
                scores = predictor.predict([c.graph() for c in candidates])
                state["screened"] += len(candidates)
                # Stable order: ties keep generation order, so the result is reproducible.
                top = sorted(range(len(candidates)), key=lambda i: -scores[i])[:count]
                candidates = [candidates[i] for i in top]
                predictions = [float(scores[i]) for i in top]
            first_new = len(state["evaluated"])
            for g, p in zip(candidates, predictions):
                train(g, gen, p)
            pool = state["population"] + list(range(first_new, len(state["evaluated"])))
            pool.sort(key=lambda i: -state["evaluated"][i]["fitness"])  # stable: older first
            state["population"] = pool[:population]
        if state["trainings"] == budget - left:  # nothing new could be made: stop, not spin
            break
        state["generation"] = gen
        best = max(range(len(state["evaluated"])), key=lambda i: state["evaluated"][i]["fitness"])
        state["best"] = {"index": best, **state["evaluated"][best]}
        if path is not None:
            write_json(path, state)
        if on_generation is not None:
            on_generation(state)
    bar.close()
    return state


def ffn_fitness(
    train: TensorDataset,
    valid: TensorDataset,
    num_classes: int,
    *,
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 3e-3,
    anneal: bool = False,
) -> Fitness:
    """Fitness of a DAG: accuracy on ``valid`` of its :class:`~archlearn.graphs.SparseFFN`
    after ``epochs`` of Adam on ``train`` (flattened inputs; ``anneal``: one-cycle learning rate).

    >>> import torch
    >>> data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    >>> 0 <= ffn_fitness(data, data, 2, epochs=1)(nx.path_graph(3, nx.DiGraph), 0) <= 1
    True
    """

    def fitness(graph: nx.DiGraph, seed: int) -> float:
        return train_ffn(graph, train, valid, num_classes,
                         Fit(epochs, batch_size, lr, seed=seed, anneal=anneal))

    return fitness
