"""Saving and loading shrunk models with no pickle: safetensors weights + a JSON recipe.

safetensors stores raw tensors with a JSON header and cannot execute code on load; the recipe
(see ``structure/shrink.py``) replays the shrinking on a fresh instance of the user's class.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.structure.shrink import RECIPE_FORMAT, apply_recipe

WEIGHTS, RECIPE = "model.safetensors", "recipe.json"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``recipe.json`` into the folder ``path``.

    >>> import archlearn as al, tempfile
    >>> d = al.save(nn.Linear(3, 2), tempfile.mkdtemp())
    >>> sorted(p.name for p in d.iterdir())
    ['model.safetensors', 'recipe.json']
    """
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
        "params": sum(p.numel() for p in model.parameters()),
    }
    _atomic_write(folder / WEIGHTS, lambda tmp: safetensors.torch.save_file(state, tmp))
    _atomic_write(folder / RECIPE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return folder


def load(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Replay the saved recipe on ``model`` (a fresh instance of the original class), load weights.

    Returns the rebuilt model: a copy of ``model``, which is left untouched, so a failed load
    changes nothing. Raises :class:`ArchlearnError` for a missing, corrupt or mismatched file.
    """
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
