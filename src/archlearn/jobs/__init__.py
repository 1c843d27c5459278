"""The command line's jobs (``archlearn run NAME``), by name.

A job is a module with ``run(out: Path, **settings) -> dict`` (writes ``results.json`` and its
plots under ``out``) and ``table(results) -> str`` (what the CLI prints).

>>> sorted(JOBS)
['lenet-mnist', 'minilm-distill']
"""

from __future__ import annotations

import importlib
from types import ModuleType

from archlearn.errors import ArchlearnError

#: name -> (module, one-line description)
JOBS: dict[str, tuple[str, str]] = {
    "lenet-mnist": ("archlearn.jobs.lenet_mnist",
                    "LeNet-5 20-50-500-10 on bundled MNIST: baseline, learned, budgeted, "
                    "from scratch"),
    "minilm-distill": ("archlearn.jobs.minilm_distill",
                       "all-MiniLM-L6-v2 shrunk by distillation, against truncation and "
                       "Torch-Pruning"),
}


def job(name: str) -> ModuleType:
    """The module of job ``name`` (imported on demand)."""
    if name not in JOBS:
        raise ArchlearnError(f"unknown job {name!r}; choose one of {sorted(JOBS)}")
    return importlib.import_module(JOBS[name][0])
