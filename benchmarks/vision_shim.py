"""Import torchvision (and timm, which imports it) on a CPU-only torch: for the vision zoo's
benchmark (benchmarks/zoo.py) and test (tests/test_vision_zoo.py).

The torchvision wheel on the package index is a CUDA build: its C extension does not load with
the CPU torch, so ``torchvision/_meta_registrations.py`` fails at import time registering fake
kernels for two operators nobody declared (``RuntimeError: operator torchvision::nms does not
exist``). The model code (``torchvision.models``, timm) is pure Python and needs none of the C
operators, so declaring the two schemas that module needs is enough to import it. Calling
``nms`` or ``qnms`` then still fails (no kernel), which the model zoo never does.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch

# the schemas as torchvision's C++ extension declares them (torchvision/csrc/ops/nms.cpp)
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas


def _declare_schemas() -> None:
    global _LIBRARY
    if _LIBRARY is not None:
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        if not _has_schema(name):
            lib.define(schema)
    _LIBRARY = lib


def _has_schema(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


def import_torchvision() -> ModuleType:
    """``torchvision``, importable on a CPU-only torch; ImportError if it is not installed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or "does not exist" not in str(exc):
            raise
    # the failed import leaves half-initialised modules behind: drop them and try again
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]
    _declare_schemas()
    return importlib.import_module("torchvision")


def import_timm() -> ModuleType:
    """``timm`` (which imports torchvision), importable on a CPU-only torch."""
    import_torchvision()
    return importlib.import_module("timm")
