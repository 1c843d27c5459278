"""Compatibility with a CUDA-built torchvision next to a CPU-only torch.

The torchvision wheel on the package index is a CUDA build. Installed next to a CPU-only torch
(the dev extra installs it for the vision test zoo, and timm needs it), its C extension does not
load, so ``torchvision/_meta_registrations.py`` fails at import time registering fake kernels
for two operators nobody declared: ``RuntimeError: operator torchvision::nms does not exist``.
transformers imports torchvision whenever it is installed, so ``from transformers import
BertModel`` fails too.

The model code (``torchvision.models``, timm, transformers) is pure Python and needs none of
torchvision's C operators, so declaring the two schemas that module registers kernels for is
enough to import it. Calling ``torchvision.ops.nms`` then still fails (no kernel); archlearn
never does.

Library code calls :func:`torchvision_importable` (or :func:`import_transformers`) before it
imports transformers. Where torchvision is not installed, nothing is imported; where it imports
fine, nothing is declared.

>>> torchvision_importable()      # idempotent: a second call returns at once
>>> torchvision_importable()
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

import torch

# the schemas as torchvision's C++ extension declares them (torchvision/csrc/ops/nms.cpp)
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIBRARY: torch.library.Library | None = None  # kept alive: dropping it removes the schemas
_READY = False


def torchvision_importable() -> None:
    """Make ``import torchvision`` (and so transformers and timm) work on a CPU-only torch.

    Nothing happens where torchvision is not installed (located with ``find_spec``, never
    imported) or after a first successful call. Otherwise torchvision is imported; if it fails
    only on its undeclared operators, the half-imported modules are dropped, the two schemas
    declared and the import repeated. Any other import error propagates.
    """
    global _READY
    if _READY:
        return
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        _READY = True
        return
    try:
        importlib.import_module("torchvision")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or "does not exist" not in str(exc):
            raise
        # the failed import leaves half-initialised submodules behind: drop them and retry
        for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[key]
        _declare_schemas()
        importlib.import_module("torchvision")
    _READY = True


def import_transformers() -> ModuleType:
    """``transformers``, importable where a CUDA-built torchvision sits next to a CPU torch.

    ImportError (from the import itself) if transformers is not installed.
    """
    torchvision_importable()
    return importlib.import_module("transformers")


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
