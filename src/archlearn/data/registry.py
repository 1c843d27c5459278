"""``load(name)``: one entry point for every data set archlearn knows."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from archlearn.data.bundled import load_digits, load_mnist1d, load_mnist5k
from archlearn.data.cifar import load_cifar10
from archlearn.data.idx import load_mnist_idx
from archlearn.data.splits import Splits, select_classes, with_validation
from archlearn.errors import ArchlearnError

__all__ = ["available", "load"]

_BUNDLED: dict[str, Callable[..., Splits]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits,
    "mnist1d": load_mnist1d,
}
_FROM_PATH: dict[str, tuple[Callable[..., Splits], str]] = {
    "mnist-idx": (
        load_mnist_idx,
        "a folder with the MNIST IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each optionally .gz)",
    ),
    "cifar10": (
        load_cifar10,
        "the CIFAR-10 python batches folder (cifar-10-batches-py: data_batch_1..5, test_batch)",
    ),
}


def available() -> list[str]:
    """Names accepted by :func:`load`.

    >>> available()
    ['mnist5k', 'digits', 'mnist1d', 'mnist-idx', 'cifar10']
    """
    return [*_BUNDLED, *_FROM_PATH]


def load(
    name: str,
    *,
    path: str | None = None,
    flatten: bool = False,
    classes: Sequence[int] | None = None,
    valid: int | float = 0,
) -> Splits:
    """Load data set ``name`` as a fixed train/test :class:`Splits`.

    ``mnist5k``, ``digits`` and ``mnist1d`` come with installed packages; ``mnist-idx`` and
    ``cifar10`` read files from ``path``. ``flatten=True`` gives 1-d examples; ``classes=[...]``
    keeps only those classes, relabelled ``0..k-1`` in the order given. ``valid`` (rows, or a
    fraction) carves a fixed stratified validation part out of train (see
    :func:`~archlearn.data.splits.with_validation`).

    >>> s = load("digits", classes=[3, 5])
    >>> s.num_classes, s.input_shape, sorted(set(s.test.tensors[1].tolist()))
    (2, (1, 8, 8), [0, 1])
    """
    if name in _BUNDLED:
        if path is not None:
            raise ArchlearnError(
                f"data set {name!r} is bundled and takes no path; path is only for "
                f"{', '.join(_FROM_PATH)}"
            )
        splits = _BUNDLED[name](flatten=flatten)
    elif name in _FROM_PATH:
        loader, needs = _FROM_PATH[name]
        if path is None:
            raise ArchlearnError(f"data set {name!r} needs path=: {needs}")
        splits = loader(path, flatten=flatten)
    else:
        raise ArchlearnError(f"unknown data set {name!r}; available: {', '.join(available())}")
    if classes is not None:
        splits = select_classes(splits, classes)
    if valid:
        splits = with_validation(splits, valid)
    return splits
