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

from archlearn import methods
from archlearn.errors import ArchlearnError
from archlearn.io import load, save
from archlearn.learner import Learner, attach, method_names
from archlearn.structure.measure import measure

if TYPE_CHECKING:
    from archlearn import graphs, prune
    from archlearn.compression import compress
    from archlearn.distillation import distill
    from archlearn.integrations.onnx import export_onnx

__version__ = "0.1.0"

# Imported on first use (PEP 562): a training run never loads the one-shot compressor, the
# sparse-graph tools or the ONNX export, so a result's provenance (the hashes of the files a
# run imported) does not go stale when only those change, and `import archlearn` stays light.
_LAZY = {"compress": ("archlearn.compression", "compress"),
         "distill": ("archlearn.distillation", "distill"),
         "export_onnx": ("archlearn.integrations.onnx", "export_onnx"),
         "graphs": ("archlearn.graphs", None), "prune": ("archlearn.prune", None)}


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
