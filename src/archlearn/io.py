"""Saving and loading shrunk models with no pickle: safetensors weights + a JSON recipe.

safetensors stores raw tensors with a JSON header and cannot execute code on load; the recipe
(see ``structure/shrink.py``) replays the shrinking on a fresh instance of the user's class.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from archlearn.errors import ArchlearnError

WEIGHTS, RECIPE = "model.safetensors", "recipe.json"


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[str], None]) -> Path:
    """Write ``path`` all or nothing: a temp file in the same folder, fsync, then a rename.

    ``content`` is bytes, text, or a function that writes a file at the path it is given (for
    writers such as ``torch.save`` or ``safetensors``). Readers see the old file or the new one,
    never half of it; a crash leaves no temp file behind.

    >>> import tempfile
    >>> p = atomic_write(Path(tempfile.mkdtemp()) / "a" / "x.txt", "hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if callable(content):
            content(tmp)
        else:
            Path(tmp).write_bytes(content.encode() if isinstance(content, str) else content)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def jsonable(value: Any) -> Any:
    """``value`` as JSON holds it: tensors as lists, numbers as floats, anything else as text.

    >>> jsonable({"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)})
    {'w': [1.0, 2.0], 'n': 3}
    """
    def default(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.tolist()
        try:
            return float(x)
        except (TypeError, ValueError):
            return str(x)

    return json.loads(json.dumps(value, default=default))


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically (values JSON cannot hold become strings).

    Into a checkout's ``benchmarks/results/``, only from a clean tree or with ``--allow-dirty``
    (``archlearn.provenance.check_results_write``). The provenance blocks this process made
    name the source files it has imported by now (``with_current_sources``), not only those it
    had when the block was built.
    """
    from archlearn.provenance import check_results_write, with_current_sources

    check_results_write(path)
    return atomic_write(path, json.dumps(with_current_sources(payload), indent=1, default=str))


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``recipe.json`` into the folder ``path``.

    >>> import archlearn as al, tempfile
    >>> d = al.save(nn.Linear(3, 2), tempfile.mkdtemp())
    >>> sorted(p.name for p in d.iterdir())
    ['model.safetensors', 'recipe.json']
    """
    # the structure package is imported here, not at the top: benchmarks import this module for
    # write_json, and their provenance (the files a run imported) should not name shrink/measure
    from archlearn.structure.measure import count_params
    from archlearn.structure.shrink import RECIPE_FORMAT

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = getattr(model, "archlearn_recipe", None) or {
        "format": RECIPE_FORMAT, "inputs": [], "steps": []
    }
    # clone: shared or non-contiguous tensors are refused by safetensors
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {
        "recipe": recipe,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": count_params(model),
    }
    atomic_write(folder / WEIGHTS, lambda tmp: safetensors.torch.save_file(state, tmp))
    write_json(folder / RECIPE, meta)
    return folder


def load(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Replay the saved recipe on ``model`` (a fresh instance of the original class), load weights.

    Returns the rebuilt model: a copy of ``model``, which is left untouched, so a failed load
    changes nothing. Raises :class:`ArchlearnError` for a missing, corrupt or mismatched file.
    """
    from archlearn.structure.shrink import apply_recipe

    folder = Path(path)
    try:
        meta = json.loads((folder / RECIPE).read_text())
        recipe = meta["recipe"]
    except FileNotFoundError:
        raise ArchlearnError(f"{folder / RECIPE} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ArchlearnError(f"{folder / RECIPE} is not a valid archlearn recipe: {exc}") from None
    try:
        state = safetensors.torch.load_file(str(folder / WEIGHTS))
    except FileNotFoundError:
        raise ArchlearnError(f"{folder / WEIGHTS} does not exist") from None
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ArchlearnError(f"{folder / WEIGHTS} is corrupt: {exc}") from None
    model = copy.deepcopy(model)  # all or nothing: the caller's instance is never half-changed
    try:
        with torch.no_grad():
            apply_recipe(model, recipe)
    except (ValueError, RuntimeError, AttributeError, KeyError, IndexError) as exc:
        raise ArchlearnError(
            f"the recipe in {folder} does not fit {type(model).__name__} "
            f"(saved from {meta.get('class')}): {exc}"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise ArchlearnError(
            f"weights in {folder} do not fit {type(model).__name__}: {' '.join(first)}"
        ) from None
    model.archlearn_recipe = recipe
    return model
