"""archlearn: learn a network's widths and depth with its weights, then shrink it for real.

>>> import archlearn as al, torch
>>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> learner = al.attach(net, torch.zeros(1, 4), method="tsrelu", total_steps=100)
>>> small = learner.shrink()
>>> "tsrelu" in al.method_names()
True
"""

from archlearn import graphs, methods, prune
from archlearn.compression import compress
from archlearn.distillation import distill
from archlearn.errors import ArchlearnError
from archlearn.integrations.onnx import export_onnx
from archlearn.io import load, save
from archlearn.learner import Learner, attach, method_names
from archlearn.structure.measure import measure

__version__ = "0.1.0"
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
