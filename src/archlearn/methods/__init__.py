"""Structure-learning methods, one module each, registered by name (see ``base.py``)."""

from archlearn.methods import (
    diffsparse,  # noqa: F401
    l0,  # noqa: F401
    slimming,  # noqa: F401
    switcher,  # noqa: F401
    tsrelu,  # noqa: F401
)
from archlearn.methods.base import REGISTRY, Method, Options, register

__all__ = ["REGISTRY", "Method", "Options", "register"]
