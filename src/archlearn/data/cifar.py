"""CIFAR-10 python batches, read with a restricted unpickler (never plain ``pickle.load``)."""

from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from archlearn.data.splits import Splits, from_arrays
from archlearn.errors import ArchlearnError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "RestrictedUnpickler",
    "safe_load",
    "load_cifar10",
]

# Per-channel mean / std of the 50,000 CIFAR-10 training images, pixels in 0..1.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode`` (how Python 3 pickles bytes at protocol <= 2)."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(obj).__name__}, {encoding!r})")
    return obj.encode("latin1")


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    for mod in modules:
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {name} in {modules}")


_CORE = ("numpy._core.multiarray", "numpy.core.multiarray")
_NUMERIC = ("numpy._core.numeric", "numpy.core.numeric")
# (module, name) written in the pickle -> how to get the object; nothing else is ever imported.
_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): lambda: _numpy_attr(_CORE, "_reconstruct") for m in _CORE},
    **{(m, "scalar"): lambda: _numpy_attr(_CORE, "scalar") for m in _CORE},
    **{(m, "_frombuffer"): lambda: _numpy_attr(_NUMERIC, "_frombuffer") for m in _NUMERIC},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("builtins", "bytes"): lambda: bytes,
    ("builtins", "bytearray"): lambda: bytearray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR batch needs.

    Allowed: numpy's array reconstruction (``_reconstruct``, ``_frombuffer``, ``scalar``),
    ``numpy.ndarray``, ``numpy.dtype``, ``_codecs.encode`` (latin1 only), ``bytes`` and
    ``bytearray``. Any other global raises ``pickle.UnpicklingError`` naming it, so a crafted
    file cannot run code. Dicts, lists, strings and numbers need no globals.

    >>> import pickle, io
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps({b"labels": [1]}))).load()
    {b'labels': [1]}
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(print))).load()
    Traceback (most recent call last):
    _pickle.UnpicklingError: refused global builtins.print (not needed by a CIFAR batch)
    """

    def find_class(self, module: str, name: str) -> Any:
        get = _ALLOWED.get((module, name))
        if get is None:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name} (not needed by a CIFAR batch)"
            )
        return get()

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused persistent id (not needed by a CIFAR batch)")


def safe_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` and ``encoding="bytes"``.

    >>> import pickle, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "b")
    >>> with open(p, "wb") as f: pickle.dump({b"data": np.zeros(2, np.uint8)}, f)
    >>> safe_load(p)[b"data"].tolist()
    [0, 0]
    """
    data = Path(path).read_bytes()
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = safe_load(path)
    except pickle.UnpicklingError:
        raise
    except Exception as e:  # truncated / not a pickle at all
        raise ArchlearnError(f"cifar10: cannot read batch {path}: {e}") from e
    if not isinstance(batch, dict):
        raise ArchlearnError(f"cifar10: {path} holds a {type(batch).__name__}, expected a dict")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ArchlearnError(f"cifar10: {path} lacks b'data' or b'labels' (keys {list(batch)})")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ArchlearnError(
            f"cifar10: {path} data must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (len(data),):
        raise ArchlearnError(f"cifar10: {path} has {len(data)} images but {labels.size} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ArchlearnError(f"cifar10: {path} labels must be 0..9")
    return data, labels


def _normalise(data: np.ndarray) -> np.ndarray:
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    mean = np.asarray(CIFAR10_MEAN, dtype=np.float32)[None, :, None, None]
    std = np.asarray(CIFAR10_STD, dtype=np.float32)[None, :, None, None]
    x -= mean
    x /= std
    return x


def load_cifar10(path: str | os.PathLike[str], *, flatten: bool = False) -> Splits:
    """CIFAR-10 from the python batches folder (``data_batch_1..5``, ``test_batch``).

    ``path`` may be that folder or its parent holding ``cifar-10-batches-py``. Shape
    ``(3, 32, 32)``; pixels /255 then per-channel ``(x - CIFAR10_MEAN) / CIFAR10_STD``.

    >>> import pickle, tempfile
    >>> d = tempfile.mkdtemp()
    >>> for f in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
    ...           "data_batch_5", "test_batch"]:
    ...     with open(f"{d}/{f}", "wb") as fh:
    ...         pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, fh)
    >>> s = load_cifar10(d); len(s.train), len(s.test), s.input_shape
    (10, 2, (3, 32, 32))
    """
    folder = Path(path)
    if not (folder / _TEST_FILE).is_file() and (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    missing = [f for f in (*_TRAIN_FILES, _TEST_FILE) if not (folder / f).is_file()]
    if missing:
        raise ArchlearnError(
            f"cifar10: {folder} lacks {', '.join(missing)}; the folder needs the CIFAR-10 python "
            "batches data_batch_1..data_batch_5 and test_batch (cifar-10-batches-py)"
        )
    train = [_read_batch(folder / f) for f in _TRAIN_FILES]
    xtr = np.concatenate([d for d, _ in train])
    ytr = np.concatenate([y for _, y in train])
    xte, yte = _read_batch(folder / _TEST_FILE)
    desc = (
        "CIFAR-10 python batches: the official split, data_batch_1..5 in order as train "
        f"({len(xtr):,}), test_batch as test ({len(xte):,}). Pixels /255, then per channel "
        f"(x - {CIFAR10_MEAN}) / {CIFAR10_STD}."
    )
    return from_arrays(
        "cifar10",
        _normalise(xtr),
        ytr,
        _normalise(xte),
        yte,
        num_classes=10,
        copy=False,
        description=desc,
        flatten=flatten,
    )
