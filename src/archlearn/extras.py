"""Optional extras: import a package that only an extra installs, or say which extra to install.

The core install (``pip install archlearn``) has torch, torch-pruning, numpy, safetensors,
pydantic, typer, tqdm and networkx. Everything else comes with an extra, and library code
imports it through :func:`require` at the point of use, so ``import archlearn`` and the core
path (attach, train, shrink, save, load, measure, the CLI's errors) never need it.

>>> require("json", "experiments").__name__
'json'
>>> try:
...     require("no_such_package_xyz", "onnx", feature="ONNX export")
... except MissingExtraError as exc:
...     print(exc)
ONNX export needs the package 'no_such_package_xyz', which comes with the 'onnx' extra: pip \
install 'archlearn[onnx]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from archlearn.errors import ArchlearnError

EXTRAS = ("experiments", "lightning", "hf", "onnx", "dev")


class MissingExtraError(ArchlearnError, ImportError):
    """A feature needs a package of an extra that is not installed.

    Both an :class:`ArchlearnError` (one line on the CLI, exit 2) and an ``ImportError``, so
    ``except ImportError`` in user code keeps working.
    """


def require(module: str, extra: str, *, feature: str | None = None) -> ModuleType:
    """Import ``module``; if it is missing, raise :class:`MissingExtraError` naming ``extra``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; extras: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        what = feature or f"this part of archlearn ({top})"
        raise MissingExtraError(
            f"{what} needs the package {top!r}, which comes with the {extra!r} extra: "
            f"pip install 'archlearn[{extra}]'"
        ) from exc
