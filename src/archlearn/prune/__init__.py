"""archlearn.prune: unstructured magnitude pruning (Stier et al.'s three classes), schedules, SVD.

Example:
    >>> from torch import nn
    >>> import archlearn.prune as P
    >>> net = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2))
    >>> masks = P.magnitude(net, 0.8, "blind")  # zeroes 80% of the weights, returns the masks
    >>> round(P.sparsity(net, masks)["total"], 2)
    0.8
"""

from archlearn.prune.magnitude import SCOPES, magnitude, prunable_weights
from archlearn.prune.masks import MaskKeeper, Masks, apply_masks
from archlearn.prune.schedule import iterative, one_shot, sparsity
from archlearn.prune.svd import param_count, svd_compress, svd_linear

__all__ = [
    "SCOPES",
    "MaskKeeper",
    "Masks",
    "apply_masks",
    "iterative",
    "magnitude",
    "one_shot",
    "param_count",
    "prunable_weights",
    "sparsity",
    "svd_compress",
    "svd_linear",
]
