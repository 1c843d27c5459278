"""archlearn.data: fixed splits, IDX and CIFAR readers, the restricted unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import random
import struct

import numpy as np
import pytest
import torch

from archlearn.data import (
    RestrictedUnpickler,
    Splits,
    available,
    bundled,
    load,
    load_cifar10,
    loaders,
    read_idx,
    write_idx,
)
from archlearn.data.cifar import CIFAR10_MEAN, CIFAR10_STD


def _counts(ds: torch.utils.data.TensorDataset, k: int = 10) -> list[int]:
    return torch.bincount(ds.tensors[1], minlength=k).tolist()


def _check_types(s: Splits) -> None:
    for ds in (s.train, s.test):
        x, y = ds.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == s.input_shape
        assert int(y.min()) >= 0 and int(y.max()) < s.num_classes
        assert torch.isfinite(x).all()


# ---------------------------------------------------------------- bundled data sets


def test_available() -> None:
    assert available() == ["mnist5k", "digits", "mnist1d", "mnist-idx", "cifar10"]


def test_mnist5k_split() -> None:
    s = load("mnist5k")
    _check_types(s)
    assert (s.name, s.num_classes, s.input_shape) == ("mnist5k", 10, (1, 28, 28))
    assert (len(s.train), len(s.test)) == (4000, 1000)
    assert _counts(s.train) == [400] * 10 and _counts(s.test) == [100] * 10
    x = s.train.tensors[0]
    assert float(x.min()) == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert float(x.max()) == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)
    assert "RandomState(0)" in s.description and "4,000 train / 1,000 test" in s.description
    # train and test are disjoint: no test image appears in train
    tr = {bytes(r.numpy()) for r in s.train.tensors[0].reshape(4000, -1)}
    assert not any(bytes(r.numpy()) in tr for r in s.test.tensors[0].reshape(1000, -1))


def test_mnist5k_deterministic_flatten_and_independent_of_seeds() -> None:
    a = load("mnist5k")
    torch.manual_seed(123)
    np.random.seed(123)
    b = load("mnist5k", flatten=True)
    assert b.input_shape == (784,) and tuple(b.test.tensors[0].shape) == (1000, 784)
    assert torch.equal(a.train.tensors[0].reshape(4000, -1), b.train.tensors[0])
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    # each load owns its tensors: writing into one never changes the next load
    a.train.tensors[0].zero_()
    assert torch.equal(load("mnist5k").train.tensors[0].reshape(4000, -1), b.train.tensors[0])


def test_digits_split() -> None:
    s = load("digits")
    _check_types(s)
    assert s.input_shape == (1, 8, 8) and (len(s.train), len(s.test)) == (1347, 450)
    full = np.bincount(np.concatenate([s.train.tensors[1].numpy(), s.test.tensors[1].numpy()]))
    # stratified: each class's test count is within one of 25% of its size
    assert np.all(np.abs(np.array(_counts(s.test)) - full * 0.25) <= 1)
    assert 0.0 <= float(s.train.tensors[0].min()) and float(s.train.tensors[0].max()) <= 1.0
    bundled._digits_arrays.cache_clear()
    t = load("digits", flatten=True)
    assert t.input_shape == (64,)
    assert torch.equal(s.train.tensors[0].reshape(len(s.train), -1), t.train.tensors[0])
    assert torch.equal(s.test.tensors[1], t.test.tensors[1])


def test_mnist1d_no_files_no_rng_side_effects(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    bundled._mnist1d_arrays.cache_clear()
    np.random.seed(7)
    random.seed(7)
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    s = load("mnist1d")
    assert np.array_equal(np.random.get_state()[1], np_before)  # make_dataset reseeds globally
    assert random.getstate() == py_before
    assert os.listdir(tmp_path) == []  # nothing like ./mnist1d_data.pkl written
    _check_types(s)
    assert s.input_shape == (1, 40) and (len(s.train), len(s.test)) == (4000, 1000)
    total = np.array(_counts(s.train)) + np.array(_counts(s.test))
    assert total.tolist() == [500] * 10  # 500 per class overall; the split is not stratified
    # fixed by mnist1d's own seed 42: the same labels whatever the global seeds were
    assert s.train.tensors[1][:12].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1, 6, 9]
    assert s.test.tensors[1][:12].tolist() == [2, 6, 3, 9, 4, 3, 1, 9, 5, 2, 0, 7]
    assert float(s.train.tensors[0][0, 0, 0]) == pytest.approx(-0.33200568, abs=1e-5)
    again = load("mnist1d", flatten=True)
    assert again.input_shape == (40,)
    assert torch.equal(again.train.tensors[0], s.train.tensors[0].reshape(4000, 40))
    assert torch.equal(again.test.tensors[1], s.test.tensors[1])


def test_classes_relabels() -> None:
    s = load("digits")
    t = load("digits", classes=[7, 2])
    assert t.num_classes == 2 and t.input_shape == s.input_shape
    y = s.train.tensors[1]
    assert _counts(t.train, 2) == [int((y == 7).sum()), int((y == 2).sum())]
    assert torch.equal(t.train.tensors[0], s.train.tensors[0][(y == 7) | (y == 2)])
    assert torch.equal(t.train.tensors[1], (y[(y == 7) | (y == 2)] == 2).long())
    assert "classes [7, 2]" in t.description
    with pytest.raises(ValueError, match="distinct"):
        load("digits", classes=[1, 1])
    with pytest.raises(ValueError, match="out of range"):
        load("digits", classes=[3, 10])
    with pytest.raises(ValueError, match="at least one"):
        load("digits", classes=[])


def test_bad_names_and_paths(tmp_path) -> None:
    with pytest.raises(ValueError, match="mnist5k, digits, mnist1d, mnist-idx, cifar10"):
        load("imagenet")
    with pytest.raises(ValueError, match="needs path=.*train-images-idx3-ubyte"):
        load("mnist-idx")
    with pytest.raises(ValueError, match="needs path=.*data_batch_1"):
        load("cifar10")
    with pytest.raises(ValueError, match="takes no path"):
        load("digits", path=str(tmp_path))
    with pytest.raises(ValueError, match="data_batch_1"):
        load("cifar10", path=str(tmp_path))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load("mnist-idx", path=str(tmp_path))


def test_loaders_seeded() -> None:
    s = load("digits")

    def order(seed: int) -> torch.Tensor:
        return torch.cat([y for _, y in loaders(s, 100, seed)[0]])

    torch.manual_seed(0)
    a = order(1)
    torch.manual_seed(99)
    assert torch.equal(a, order(1))
    assert not torch.equal(a, order(2))
    _, test = loaders(s, 100, 0, test_batch_size=1000)
    assert len(test) == 1 and torch.equal(next(iter(test))[1], s.test.tensors[1])


# ---------------------------------------------------------------- IDX


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    arrs = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10)[::-1].astype(np.uint8),
    }
    for name, a in arrs.items():
        data = _idx_bytes(a)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrs


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz: bool) -> None:
    arrs = _write_mnist(tmp_path, 30, 20, gz)
    assert np.array_equal(
        read_idx(tmp_path / ("t10k-labels-idx1-ubyte" + ".gz" * gz)),
        arrs["t10k-labels-idx1-ubyte"],
    )
    s = load("mnist-idx", path=str(tmp_path))
    _check_types(s)
    assert s.input_shape == (1, 28, 28) and (len(s.train), len(s.test)) == (30, 20)
    expect = (arrs["train-images-idx3-ubyte"] / 255.0 - 0.1307) / 0.3081
    assert np.allclose(s.train.tensors[0][:, 0].numpy(), expect, atol=1e-5)
    assert s.test.tensors[1].tolist() == arrs["t10k-labels-idx1-ubyte"].tolist()
    f = load("mnist-idx", path=str(tmp_path), flatten=True, classes=[0, 1])
    assert f.input_shape == (784,) and f.num_classes == 2 and len(f.train) == 6


def test_idx_other_dtypes_roundtrip(tmp_path) -> None:
    for a in [np.arange(-3, 3, dtype=np.int16), np.linspace(0, 1, 6).reshape(2, 3)]:
        (tmp_path / "h.idx").write_bytes(_idx_bytes(a, {2: 0x0B, 8: 0x0E}[a.itemsize]))
        assert np.array_equal(read_idx(tmp_path / "h.idx"), a)
        write_idx(tmp_path / "w.idx.gz", a)
        assert np.array_equal(read_idx(tmp_path / "w.idx.gz"), a)


def test_idx_errors(tmp_path) -> None:
    good = _idx_bytes(np.zeros((2, 3, 3), np.uint8))
    p = tmp_path / "x"
    p.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(ValueError, match="bad IDX magic number 0x12340803"):
        read_idx(p)
    p.write_bytes(good[:2] + b"\x07" + good[3:])  # unknown type code
    with pytest.raises(ValueError, match="magic"):
        read_idx(p)
    p.write_bytes(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(p)
    p.write_bytes(good[:10])  # inside the dimension sizes
    with pytest.raises(ValueError, match="truncated"):
        read_idx(p)
    p.write_bytes(good + b"\x00")
    with pytest.raises(ValueError, match="unexpected bytes"):
        read_idx(p)
    p.write_bytes(gzip.compress(good)[:-5])  # broken gzip stream
    with pytest.raises(ValueError, match="cannot read"):
        read_idx(p)


def test_mnist_idx_label_mismatch(tmp_path) -> None:
    _write_mnist(tmp_path, 10, 5, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="5 test images but 4 labels"):
        load("mnist-idx", path=str(tmp_path))


# ---------------------------------------------------------------- CIFAR-10

_BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


def _write_cifar(folder, n: int = 4, protocol: int = pickle.DEFAULT_PROTOCOL) -> np.ndarray:
    rng = np.random.RandomState(1)
    for i, name in enumerate(_BATCHES):
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        batch = {
            b"batch_label": b"fake",
            b"data": data,
            b"labels": [(i + j) % 10 for j in range(n)],
            b"filenames": [b"img%d.png" % j for j in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    return data  # the test batch's pixels


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10(tmp_path, protocol: int) -> None:
    test_pixels = _write_cifar(tmp_path, protocol=protocol)
    s = load("cifar10", path=str(tmp_path))
    _check_types(s)
    assert s.input_shape == (3, 32, 32) and (len(s.train), len(s.test)) == (20, 4)
    assert s.train.tensors[1].tolist()[:8] == [0, 1, 2, 3, 1, 2, 3, 4]
    x = test_pixels.reshape(4, 3, 32, 32) / 255.0
    mean = np.array(CIFAR10_MEAN)[None, :, None, None]
    std = np.array(CIFAR10_STD)[None, :, None, None]
    assert np.allclose(s.test.tensors[0].numpy(), (x - mean) / std, atol=1e-5)
    assert load_cifar10(tmp_path, flatten=True).input_shape == (3072,)


def test_cifar10_parent_folder(tmp_path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()
    _write_cifar(tmp_path / "cifar-10-batches-py", n=2)
    assert len(load("cifar10", path=str(tmp_path)).test) == 2


def _py2_batch(raw: bytes, labels: list[int]) -> bytes:
    """A protocol-2 pickle laid out as Python 2's cPickle writes the real CIFAR batches."""

    def s(b: bytes) -> bytes:  # SHORT_BINSTRING (py2 str), or BINSTRING when long
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    n = len(raw) // 3072
    return (
        b"\x80\x02}q\x00(" + s(b"data")
        + b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85" + s(b"b")
        + b"\x87Rq\x03(K\x01" + b"J" + struct.pack("<i", n) + b"M\x00\x0c\x86"
        + b"cnumpy\ndtype\nq\x04" + s(b"u1") + b"K\x00K\x01\x87Rq\x05(K\x03" + s(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + s(raw) + b"tb"
        + s(b"labels") + b"]q\x06(" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    )  # fmt: skip


def test_cifar10_python2_layout(tmp_path) -> None:
    raw = bytes(range(256)) * 24  # two images
    for name in _BATCHES:
        (tmp_path / name).write_bytes(_py2_batch(raw, [3, 9]))
    s = load("cifar10", path=str(tmp_path))
    assert (len(s.train), len(s.test)) == (10, 2) and s.test.tensors[1].tolist() == [3, 9]
    back = s.test.tensors[0].numpy() * np.array(CIFAR10_STD)[None, :, None, None]
    back = (back + np.array(CIFAR10_MEAN)[None, :, None, None]) * 255
    assert np.allclose(back.reshape(-1), np.frombuffer(raw, np.uint8), atol=1e-3)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Plain:
    pass


def test_cifar10_refuses_malicious_pickle(tmp_path) -> None:
    marker = tmp_path / "pwned"
    _write_cifar(tmp_path, n=2)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(str(marker)), b"labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt|os)\.system"):
        load("cifar10", path=str(tmp_path))
    assert not marker.exists()
    # any other global is refused too, also when reached through numpy-looking names
    for obj in [_Plain(), print, np.random.RandomState, {b"x": eval}]:
        data = pickle.dumps(obj, protocol=2)
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    assert not marker.exists()


def test_cifar10_bad_batches(tmp_path) -> None:
    _write_cifar(tmp_path, n=2)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"shape \(n, 3072\)"):
        load("cifar10", path=str(tmp_path))
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match="lacks b'data' or b'labels'"):
        load("cifar10", path=str(tmp_path))
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load("cifar10", path=str(tmp_path))
