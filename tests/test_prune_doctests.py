"""The docstring examples of archlearn.prune run and hold."""

import doctest
import importlib

import pytest

MODULES = ["__init__", "magnitude", "masks", "schedule", "svd"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module("archlearn.prune" + ("" if name == "__init__" else f".{name}"))
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
