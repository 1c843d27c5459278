"""archlearn.data: fixed train/test splits as ``TensorDataset``s, and seeded loaders.

>>> from archlearn.data import load, loaders
>>> s = load("digits")
>>> train, test = loaders(s, batch_size=64, seed=0)
>>> s.num_classes, s.input_shape
(10, (1, 8, 8))
"""

from archlearn.data.cifar import RestrictedUnpickler, load_cifar10, safe_load
from archlearn.data.idx import load_mnist_idx, read_idx, write_idx
from archlearn.data.registry import available, load
from archlearn.data.splits import Splits, from_arrays, loaders, select_classes, with_validation

__all__ = [
    "Splits",
    "available",
    "from_arrays",
    "load",
    "load_cifar10",
    "load_mnist_idx",
    "loaders",
    "read_idx",
    "RestrictedUnpickler",
    "safe_load",
    "select_classes",
    "with_validation",
    "write_idx",
]
