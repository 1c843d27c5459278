"""Structure-learning methods, one module each, registered by name (see ``base.py``)."""

from archlearn.methods import tsrelu  # noqa: F401
from archlearn.methods.base import REGISTRY, Method, Options, register

__all__ = ["REGISTRY", "Method", "Options", "register"]
