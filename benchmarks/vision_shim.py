"""Import torchvision (and timm, which imports it) on a CPU-only torch: for the vision zoo's
benchmark (benchmarks/zoo.py) and test (tests/test_vision_zoo.py).

A thin layer over :func:`archlearn.compat.torchvision_importable`, which explains why: the index's
torchvision wheel is a CUDA build whose import fails next to the CPU torch until two operator
schemas are declared; the model code needs none of its C operators.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from archlearn.compat import torchvision_importable


def import_torchvision() -> ModuleType:
    """``torchvision``, importable on a CPU-only torch; ImportError if it is not installed."""
    torchvision_importable()
    return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """``timm`` (which imports torchvision), importable on a CPU-only torch."""
    torchvision_importable()
    return importlib.import_module("timm")
