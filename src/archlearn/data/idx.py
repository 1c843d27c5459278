"""Readers for MNIST's IDX files (``train-images-idx3-ubyte`` etc., optionally gzipped)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from archlearn.data.bundled import mnist_normalise
from archlearn.data.splits import Splits, from_arrays
from archlearn.errors import ArchlearnError

__all__ = ["IDX_FILES", "read_idx", "write_idx", "load_mnist_idx"]

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt: code for code, dt in _IDX_DTYPES.items()}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":  # gzip magic, whatever the file is called
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise ArchlearnError(f"cannot read IDX file {path}: {e}") from e


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into a native-endian numpy array.

    The header is checked: magic ``00 00 TT NN`` (TT = type code, NN = number of dims), then NN
    big-endian uint32 sizes, then exactly prod(sizes) items; a bad magic number, a truncated file
    or trailing bytes raise ``ArchlearnError`` (a ``ValueError``).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.idx")
    >>> write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(p).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ArchlearnError(f"{path} is truncated: {len(buf)} bytes, an IDX header needs 4")
    magic = int.from_bytes(buf[:4], "big")
    code, ndim = buf[2], buf[3]
    if buf[0] != 0 or buf[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ArchlearnError(
            f"bad IDX magic number 0x{magic:08X} in {path}: expected 0x0000TTNN with type TT in "
            f"{{{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}}} and NN >= 1 dimensions"
        )
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ArchlearnError(
            f"{path} is truncated: header needs {header} bytes for {ndim} dims, file has {len(buf)}"
        )
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = len(buf) - header
    if have < need:
        raise ArchlearnError(
            f"{path} is truncated: header says shape {shape} ({need} data bytes), "
            f"file has {have} data bytes"
        )
    if have > need:
        raise ArchlearnError(
            f"{path} has {have - need} unexpected bytes after the {need} data bytes "
            f"of shape {shape}"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "y.idx.gz")
    >>> write_idx(p, np.array([7, 1], dtype=np.uint8)); read_idx(p).tolist()
    [7, 1]
    """
    arr = np.asarray(array)
    be = arr.dtype.newbyteorder(">") if arr.dtype.itemsize > 1 else arr.dtype
    if be not in _IDX_CODES or arr.ndim == 0 or arr.ndim > 255:
        raise ArchlearnError(f"IDX cannot store dtype {arr.dtype} with {arr.ndim} dims")
    data = bytes([0, 0, _IDX_CODES[be], arr.ndim])
    data += b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data += np.ascontiguousarray(arr, dtype=be).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)


def _find(folder: Path, stem: str) -> Path:
    alt = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte, as some mirrors name it
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ArchlearnError(
        f"mnist-idx: no {stem}[.gz] in {folder}; the folder needs the four MNIST IDX files "
        f"{', '.join(IDX_FILES.values())} (each optionally .gz)"
    )


def load_mnist_idx(path: str | os.PathLike[str], *, flatten: bool = False) -> Splits:
    """The official MNIST train/test split from the four IDX files in folder ``path``.

    Pixels /255 then ``(x - 0.1307) / 0.3081``; shape ``(1, rows, cols)`` (``(784,)`` flat).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for k, n in [("train", 4), ("t10k", 2)]:
    ...     write_idx(f"{d}/{k}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
    ...     write_idx(f"{d}/{k}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8))
    >>> s = load_mnist_idx(d); len(s.train), len(s.test), s.input_shape
    (4, 2, (1, 28, 28))
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ArchlearnError(f"mnist-idx: {folder} is not a folder (it must hold the IDX files)")
    arrs = {k: read_idx(_find(folder, stem)) for k, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        x, y = arrs[f"{split}_images"], arrs[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1:
            raise ArchlearnError(
                f"mnist-idx: {split} images must be 3-d and labels 1-d, got {x.shape} and {y.shape}"
            )
        if len(x) != len(y):
            raise ArchlearnError(f"mnist-idx: {len(x)} {split} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise ArchlearnError(
                f"mnist-idx: {split} labels must be 0..9, got {y.min()}..{y.max()}"
            )
    xtr, xte = arrs["train_images"], arrs["test_images"]
    desc = (
        "MNIST IDX files (train-*/t10k-*) from the given folder: the official split as stored, "
        f"{len(xtr):,} train / {len(xte):,} test, file order kept. Pixels /255, then "
        "(x - 0.1307) / 0.3081."
    )
    return from_arrays(
        "mnist-idx",
        mnist_normalise(xtr[:, None]),
        arrs["train_labels"].astype(np.int64),
        mnist_normalise(xte[:, None]),
        arrs["test_labels"].astype(np.int64),
        num_classes=10,
        copy=False,
        description=desc,
        flatten=flatten,
    )
