"""Performance prediction from structural graph features (Stier et al., arXiv 2107.12917).

The paper (after Darji's thesis) trains many networks whose structure is a random graph, records
their test accuracy and the 23 features of :func:`archlearn.graphs.features`, and fits
BayesianRidge, RandomForest and AdaBoost regressors (scikit-learn defaults, MinMax-scaled
features, 90/10 split, scored by R^2). :func:`fit_predictors` does that and adds a repeated
k-fold cross-validated R^2: 10% of a few dozen graphs is a handful of points, whose R^2 is mostly
noise.

:func:`structure_dataset` produces such data: random-prior recurrent nets on the Reber task (one
cell type) or feed-forward nets on a flattened image set. :class:`Predictor` is the regressor the
genetic search uses to screen offspring.

>>> rng = np.random.default_rng(0)
>>> X = rng.random((60, 3)); y = X[:, 0] + 0.5 * X[:, 1]
>>> scores = fit_predictors(X, y, seed=0, regressors=["bayesian_ridge"])
>>> scores["bayesian_ridge"]["r2_cv_mean"] > 0.9
True
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import networkx as nx
import numpy as np
from sklearn.base import RegressorMixin
from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
from sklearn.linear_model import BayesianRidge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from archlearn.graphs import FEATURE_NAMES, features
from archlearn.search.training import Fit, random_prior_graph, train_ffn, train_reber

__all__ = [
    "REGRESSORS",
    "feature_matrix",
    "make_regressor",
    "fit_predictors",
    "Predictor",
    "structure_dataset",
]

#: The paper's three regressors, scikit-learn defaults (only ``random_state`` is set).
REGRESSORS: dict[str, Callable[[int], RegressorMixin]] = {
    "bayesian_ridge": lambda seed: BayesianRidge(),
    "random_forest": lambda seed: RandomForestRegressor(random_state=seed),
    "adaboost": lambda seed: AdaBoostRegressor(random_state=seed),
}


def make_regressor(name: str, seed: int = 0) -> Pipeline:
    """``MinMaxScaler`` followed by regressor ``name`` (a key of :data:`REGRESSORS`).

    >>> make_regressor("adaboost").steps[-1][0]
    'adaboostregressor'
    """
    if name not in REGRESSORS:
        raise ValueError(f"regressor must be one of {sorted(REGRESSORS)}, got {name!r}")
    return make_pipeline(MinMaxScaler(), REGRESSORS[name](seed))


def feature_matrix(graphs: Sequence[nx.Graph]) -> np.ndarray:
    """The :data:`~archlearn.graphs.FEATURE_NAMES` of each graph, one row per graph.

    >>> feature_matrix([nx.path_graph(3), nx.path_graph(4)]).shape
    (2, 23)
    """
    return np.array([[f[k] for k in FEATURE_NAMES] for f in map(features, graphs)], dtype=float)


def fit_predictors(
    X: np.ndarray,
    y: np.ndarray,
    seed: int = 0,
    *,
    test_size: float = 0.1,
    folds: int = 5,
    repeats: int = 5,
    regressors: Sequence[str] = tuple(REGRESSORS),
) -> dict[str, dict[str, float]]:
    """Fit each regressor on features ``X`` -> accuracy ``y``; R^2 on held-out graphs only.

    Per regressor:

    * ``r2_holdout``: fit on a random ``1 - test_size`` split, score the rest (the paper's
      protocol; with a few dozen graphs its test part is a handful of points);
    * ``r2_cv_pooled``: shuffled ``folds``-fold CV, one R^2 over all out-of-fold predictions
      (every graph held out once), averaged over ``repeats`` shuffles (``r2_cv_pooled_std`` is
      the spread across shuffles: how much a lucky split moves the figure);
    * ``r2_cv_mean`` / ``r2_cv_std``: mean and spread of the per-fold R^2 (noisy when a fold
      holds a few graphs of nearly equal accuracy: its R^2 denominator is tiny);
    * ``n_train`` / ``n_test`` of the holdout split.

    Constant feature columns are fine (MinMaxScaler maps them to 0).

    >>> X = np.arange(40.0).reshape(20, 2); y = X[:, 0] / 40
    >>> fit_predictors(X, y, regressors=["bayesian_ridge"])["bayesian_ridge"]["n_test"]
    2
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if len(X) != len(y) or len(y) < max(folds, 4):
        raise ValueError(f"need matching X, y with at least {max(folds, 4)} rows, got "
                         f"{len(X)} and {len(y)}")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed)
    splits = [list(KFold(folds, shuffle=True, random_state=seed + r).split(X))
              for r in range(repeats)]
    out: dict[str, dict[str, float]] = {}
    for name in regressors:
        model = make_regressor(name, seed).fit(X_tr, y_tr)
        pooled, per_fold = [], []
        for split in splits:
            oof = np.empty_like(y)
            for train_idx, test_idx in split:
                fold = make_regressor(name, seed).fit(X[train_idx], y[train_idx])
                oof[test_idx] = fold.predict(X[test_idx])
                per_fold.append(r2_score(y[test_idx], oof[test_idx]))
            pooled.append(r2_score(y, oof))
        out[name] = {
            "r2_holdout": float(r2_score(y_te, model.predict(X_te))),
            "r2_cv_pooled": float(np.mean(pooled)),
            "r2_cv_pooled_std": float(np.std(pooled)),
            "r2_cv_mean": float(np.mean(per_fold)),
            "r2_cv_std": float(np.std(per_fold)),
            "n_train": len(y_tr),
            "n_test": len(y_te),
        }
    return out


class Predictor:
    """Accuracy from structure: a MinMax-scaled regressor over the 23 graph features.

    ``fit`` / ``predict`` take graphs (or a ready feature matrix via ``fit_features`` /
    ``predict_features``).

    >>> p = Predictor("random_forest", seed=0)
    >>> graphs = [nx.path_graph(n) for n in range(3, 13)]
    >>> p.fit(graphs, [n / 20 for n in range(3, 13)]).predict([nx.path_graph(5)]).shape
    (1,)
    """

    def __init__(self, regressor: str = "random_forest", seed: int = 0) -> None:
        self.regressor, self.seed = regressor, seed
        self.model = make_regressor(regressor, seed)
        self.fitted = False

    def fit_features(self, X: np.ndarray, y: Sequence[float]) -> Predictor:
        self.model = make_regressor(self.regressor, self.seed).fit(np.asarray(X, float),
                                                                   np.asarray(y, float))
        self.fitted = True
        return self

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError("Predictor.predict called before fit")
        return self.model.predict(np.asarray(X, float))

    def fit(self, graphs: Sequence[nx.Graph], y: Sequence[float]) -> Predictor:
        return self.fit_features(feature_matrix(graphs), y)

    def predict(self, graphs: Sequence[nx.Graph]) -> np.ndarray:
        return self.predict_features(feature_matrix(graphs))


def structure_dataset(
    train: TensorDataset,
    test: TensorDataset,
    *,
    cell: str | None,
    priors: Sequence[str] = ("ws", "ba"),
    graphs_per_prior: int = 20,
    nodes: tuple[int, int] = (10, 30),
    epochs: int = 2,
    batch_size: int = 32,
    lr: float = 3e-3,
    num_classes: int = 2,
    seed: int = 0,
    repeats: int = 1,
    shuffle_nodes: bool = True,
    anneal: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train random-prior nets; record ``{params, features, accuracy, accuracies, seconds}`` each.

    ``cell`` is a recurrent cell ("rnn", "rnn_relu", "gru", "lstm": Reber data from
    :func:`~archlearn.graphs.reber_dataset`, trained by
    :func:`~archlearn.search.training.train_reber`) or ``None`` (feed-forward on flattened
    ``(x, y)`` data with ``num_classes`` classes, :func:`~archlearn.search.training.train_ffn`).
    Graph ``i`` of prior ``p`` is drawn from ``random.Random(f"{seed}-{p}-{i}")`` and trained
    ``repeats`` times with seeds ``seed * 100003 + 1000 * r + i``; ``accuracy`` is the mean of
    the runs' test accuracies (``accuracies``). Short runs of small sparse nets vary a lot from
    seed to seed (dead ReLU chains, unfinished learning), and averaging a few runs gives the
    regressors a target that depends more on the structure than on the seed; so does ``anneal``
    (:func:`~archlearn.search.training.one_cycle`).

    >>> import torch
    >>> x, y = torch.randn(40, 6), torch.randint(0, 2, (40,))
    >>> rows = structure_dataset(TensorDataset(x, y), TensorDataset(x, y), cell=None,
    ...                          graphs_per_prior=1, nodes=(4, 6), progress=False)
    >>> len(rows), sorted(rows[0])
    (2, ['accuracies', 'accuracy', 'features', 'params', 'seconds'])
    """
    rows = []
    bar = tqdm(total=len(priors) * graphs_per_prior, desc=f"graphs {cell or 'ffn'}",
               disable=not progress, leave=False)
    for prior in priors:
        for i in range(graphs_per_prior):
            dag, params = random_prior_graph(prior, random.Random(f"{seed}-{prior}-{i}"), nodes,
                                             shuffle=shuffle_nodes)
            start = time.perf_counter()
            accs = []
            for r in range(repeats):
                run_seed = seed * 100003 + 1000 * r + i
                fit = Fit(epochs, batch_size, lr, seed=run_seed, anneal=anneal)
                if cell is None:
                    accs.append(train_ffn(dag, train, test, num_classes, fit))
                else:
                    accs.append(train_reber(dag, cell, train, test, fit))
            acc = sum(accs) / len(accs)
            rows.append({"params": params, "features": features(dag), "accuracy": acc,
                         "accuracies": accs, "seconds": time.perf_counter() - start})
            bar.update(1)
            bar.set_postfix(acc=f"{acc:.3f}")
    bar.close()
    return rows
