"""``build(name, **kw)``: the reference nets by name (for the CLI and configs)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from archlearn.errors import ArchlearnError
from archlearn.models.lenet import lenet5, lenet5_deep
from archlearn.models.mlp import lenet300, mlp
from archlearn.models.testnets import concat_net, functional_relu_net, tiny_resnet, tiny_vgg_bn

__all__ = ["available", "build"]

_MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    "lenet5-deep": lenet5_deep,
    "lenet300": lenet300,
    "mlp": mlp,
    "tiny-vgg-bn": tiny_vgg_bn,
    "tiny-resnet": tiny_resnet,
    "concat-net": concat_net,
    "functional-relu-net": functional_relu_net,
}


def available() -> list[str]:
    """Names accepted by :func:`build`.

    >>> available()[:3]
    ['lenet5', 'lenet5-deep', 'lenet300']
    """
    return list(_MODELS)


def build(name: str, **kw: object) -> nn.Module:
    """Build model ``name`` with keyword arguments ``kw`` passed to its function.

    ``lenet5-deep`` needs ``depth=``; ``mlp`` needs ``in_features=``, ``hidden=``,
    ``out_features=``.

    >>> sum(p.numel() for p in build("lenet5").parameters())
    431080
    >>> build("lenet5-deep", depth=5)[-1]
    Linear(in_features=75, out_features=10, bias=True)
    """
    try:
        fn = _MODELS[name]
    except KeyError:
        raise ArchlearnError(f"unknown model {name!r}; available: {', '.join(_MODELS)}") from None
    try:
        return fn(**kw)
    except TypeError as e:  # missing / unexpected keyword
        raise ArchlearnError(f"model {name!r}: {e}") from e
