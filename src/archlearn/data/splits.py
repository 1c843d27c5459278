"""The :class:`Splits` container, class filtering and seeded data loaders."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from archlearn.errors import ArchlearnError

__all__ = ["Splits", "from_arrays", "select_classes", "loaders", "with_validation"]


@dataclass(frozen=True)
class Splits:
    """A fixed train/test split of one data set, with an optional validation part.

    ``train``, ``valid`` and ``test`` hold ``(x float32, y int64)``; ``valid`` is ``None`` until
    :func:`with_validation` carves it out of ``train`` (selections use it; the test split is read
    once, for the reported figure). ``input_shape`` is the shape of one example and
    ``description`` says exactly how the split was made.

    >>> import torch
    >>> s = from_arrays("toy", np.zeros((4, 2)), np.array([0, 1, 0, 1]),
    ...                 np.zeros((2, 2)), np.array([0, 1]), num_classes=2, description="toy")
    >>> len(s.train), len(s.test), s.input_shape, s.train.tensors[0].dtype
    (4, 2, (2,), torch.float32)
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]
    description: str
    valid: TensorDataset | None = None
    valid_rows: tuple[int, ...] = ()

    def record(self) -> dict:
        """The split as a results file records it (sizes, description, validation rows hash).

        >>> s = from_arrays("toy", np.zeros((4, 2)), np.array([0, 1, 0, 1]),
        ...                 np.zeros((2, 2)), np.array([0, 1]), num_classes=2, description="toy")
        >>> s.record()["train"], s.record()["valid"]
        (4, 0)
        """
        rows = np.asarray(self.valid_rows, dtype=np.int64)
        return {
            "name": self.name,
            "split": self.description,
            "train": len(self.train),
            "valid": 0 if self.valid is None else len(self.valid),
            "test": len(self.test),
            "valid_rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest() if len(rows) else None,
        }


def _tensor(a: np.ndarray, dtype: type, copy: bool) -> torch.Tensor:
    out = np.ascontiguousarray(a, dtype=dtype)
    if copy and np.may_share_memory(out, a):
        out = out.copy()
    return torch.from_numpy(out)


def _dataset(x: np.ndarray, y: np.ndarray, copy: bool) -> TensorDataset:
    return TensorDataset(_tensor(x, np.float32, copy), _tensor(y, np.int64, copy))


def from_arrays(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    num_classes: int,
    description: str,
    flatten: bool = False,
    copy: bool = True,
) -> Splits:
    """Build :class:`Splits` from numpy arrays (first axis = examples).

    The tensors never share memory with the inputs unless ``copy=False`` (for fresh arrays).

    >>> s = from_arrays("toy", np.zeros((3, 1, 2, 2)), np.array([0, 1, 2]),
    ...                 np.zeros((1, 1, 2, 2)), np.array([1]), num_classes=3,
    ...                 description="toy", flatten=True)
    >>> s.input_shape, tuple(s.train.tensors[0].shape)
    ((4,), (3, 4))
    """
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ArchlearnError(
            f"{name}: x and y lengths differ (train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)})"
        )
    if flatten:
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
    shape = tuple(int(d) for d in x_train.shape[1:])
    return Splits(
        name=name,
        train=_dataset(x_train, y_train, copy),
        test=_dataset(x_test, y_test, copy),
        num_classes=int(num_classes),
        input_shape=shape,
        description=description,
    )


def select_classes(splits: Splits, classes: Sequence[int]) -> Splits:
    """Keep only ``classes`` and relabel them ``0..k-1`` in the order given.

    >>> s = from_arrays("toy", np.zeros((4, 1)), np.array([0, 1, 2, 2]),
    ...                 np.zeros((2, 1)), np.array([2, 0]), num_classes=3, description="toy")
    >>> t = select_classes(s, [2, 0])
    >>> t.train.tensors[1].tolist(), t.test.tensors[1].tolist(), t.num_classes
    ([1, 0, 0], [0, 1], 2)
    """
    cls = [int(c) for c in classes]
    if not cls:
        raise ArchlearnError("classes must name at least one class, got an empty list")
    if len(set(cls)) != len(cls):
        raise ArchlearnError(f"classes must be distinct, got {cls}")
    bad = [c for c in cls if not 0 <= c < splits.num_classes]
    if bad:
        raise ArchlearnError(
            f"classes {bad} out of range for {splits.name} (labels 0..{splits.num_classes - 1})"
        )
    lut = torch.full((splits.num_classes,), -1, dtype=torch.int64)
    lut[torch.tensor(cls)] = torch.arange(len(cls))

    def keep(ds: TensorDataset) -> TensorDataset:
        x, y = ds.tensors
        mask = lut[y] >= 0
        return TensorDataset(x[mask].clone(), lut[y[mask]])

    if splits.valid is not None:
        raise ArchlearnError("select classes before carving out a validation split")
    return Splits(
        name=splits.name,
        train=keep(splits.train),
        test=keep(splits.test),
        num_classes=len(cls),
        input_shape=splits.input_shape,
        description=f"{splits.description}; only classes {cls}, relabelled 0..{len(cls) - 1}",
    )


def with_validation(splits: Splits, size: int | float, seed: int = 0) -> Splits:
    """Carve a fixed, stratified validation part out of ``train`` (``size`` rows or a fraction).

    Each class gives the same share of its training rows, chosen by one numpy
    ``default_rng(seed)`` permutation per class (in label order); the largest remainders get the
    rows left over. Train and validation keep the original row order. The description and
    ``valid_rows`` (indices into the original training split) record exactly what was held out.

    >>> s = from_arrays("toy", np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5),
    ...                 np.zeros((2, 2)), np.array([0, 1]), num_classes=2, description="toy")
    >>> v = with_validation(s, 0.4)
    >>> len(v.train), len(v.valid), sorted(v.valid.tensors[1].tolist())
    (6, 4, [0, 0, 1, 1])
    """
    if splits.valid is not None:
        raise ArchlearnError(f"{splits.name} already has a validation split")
    x, y = splits.train.tensors
    n = len(y)
    count = int(round(size * n)) if isinstance(size, float) else int(size)
    if not 0 < count < n:
        raise ArchlearnError(f"validation size must leave both parts non-empty: got {size!r} "
                             f"of {n} training rows")
    labels = y.numpy()
    classes = np.unique(labels)
    per_class = {c: np.flatnonzero(labels == c) for c in classes}
    exact = {c: count * len(idx) / n for c, idx in per_class.items()}
    take = {c: int(np.floor(v)) for c, v in exact.items()}
    left = count - sum(take.values())
    for c in sorted(classes, key=lambda c: (-(exact[c] - take[c]), c))[:left]:
        take[c] += 1
    rng = np.random.default_rng(seed)
    held = np.sort(np.concatenate([idx[rng.permutation(len(idx))[: take[c]]]
                                   for c, idx in per_class.items()]))
    keep = np.setdiff1d(np.arange(n), held)
    sizes = sorted({take[c] for c in classes})
    per = (f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}") + " per class"
    description = (f"{splits.description.rstrip('.')}. Validation: {count:,} of the {n:,} "
                   f"training rows held out, stratified ({per}), one numpy default_rng({seed}) "
                   "permutation per class in label order; train keeps the other rows")
    return replace(
        splits,
        train=TensorDataset(x[keep], y[keep]),
        valid=TensorDataset(x[held], y[held]),
        valid_rows=tuple(int(i) for i in held),
        description=description,
    )


def loaders(
    splits: Splits, batch_size: int, seed: int, *, test_batch_size: int | None = None
) -> tuple[DataLoader, DataLoader]:
    """Train loader (shuffled by a generator seeded with ``seed``) and test loader (in order).

    Same ``seed`` -> same batch order, whatever the global torch RNG state.

    >>> s = from_arrays("toy", np.zeros((5, 1)), np.arange(5) % 2, np.zeros((2, 1)),
    ...                 np.array([0, 1]), num_classes=2, description="toy")
    >>> tr, te = loaders(s, batch_size=2, seed=0)
    >>> len(tr), len(te)
    (3, 1)
    """
    if batch_size < 1:
        raise ArchlearnError(f"batch_size must be >= 1, got {batch_size}")
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, generator=gen)
    test = DataLoader(splits.test, batch_size=test_batch_size or batch_size, shuffle=False)
    return train, test
