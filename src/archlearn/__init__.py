"""archlearn: learn a network's widths and depth with its weights, then shrink it for real.

>>> import archlearn as al, torch
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> learner = al.attach(net, torch.zeros(1, 4), method="tsrelu", total_steps=100)
>>> small = learner.shrink()
>>> "tsrelu" in al.method_names()
True
"""

import importlib
from typing import TYPE_CHECKING, Any

from archlearn.errors import ArchlearnError

if TYPE_CHECKING:
    from archlearn import graphs, methods, prune
    from archlearn.compression import compress
    from archlearn.distillation import distill
    from archlearn.integrations.onnx import export_onnx
    from archlearn.io import load, save
    from archlearn.learner import Learner, attach, method_names
    from archlearn.structure.measure import measure

__version__ = "0.1.0"

# Imported on first use (PEP 562): a run imports only what it calls (a graph experiment never
# loads the learner, a training run never the one-shot compressor), so a result's provenance,
# the hashes of the files a run imported, goes stale only when those change; and
# `import archlearn` stays light for the CLI.
_LAZY = {"compress": ("archlearn.compression", "compress"),
         "distill": ("archlearn.distillation", "distill"),
         "export_onnx": ("archlearn.integrations.onnx", "export_onnx"),
         "load": ("archlearn.io", "load"), "save": ("archlearn.io", "save"),
         "Learner": ("archlearn.learner", "Learner"), "attach": ("archlearn.learner", "attach"),
         "method_names": ("archlearn.learner", "method_names"),
         "measure": ("archlearn.structure.measure", "measure"),
         "graphs": ("archlearn.graphs", None), "methods": ("archlearn.methods", None),
         "prune": ("archlearn.prune", None)}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'archlearn' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


__all__ = [
    "ArchlearnError",
    "Learner",
    "attach",
    "compress",
    "distill",
    "export_onnx",
    "graphs",
    "load",
    "measure",
    "method_names",
    "methods",
    "prune",
    "save",
    "__version__",
]
