"""Structure-learning methods, one module each, registered by name (see ``base.py``).

Every module of this package is imported here, so adding a method is adding one file.

>>> "tsrelu" in names()
True
"""

import importlib
import pkgutil

from archlearn.methods.base import REGISTRY, Method, Options, names, register, variants

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "Method", "Options", "names", "register", "variants"]
