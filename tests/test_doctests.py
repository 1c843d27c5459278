"""The docstring examples of every archlearn module run and hold (``doctest``)."""

import doctest
import importlib
import pkgutil

import pytest

import archlearn

MODULES = ["archlearn"] + sorted(
    m.name for m in pkgutil.walk_packages(archlearn.__path__, "archlearn.")
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_public_modules_have_examples() -> None:
    # a module list that silently went empty, or examples that all vanished, would pass above
    attempted = {name: doctest.testmod(importlib.import_module(name), report=False).attempted
                 for name in ("archlearn", "archlearn.structure.measure", "archlearn.prune",
                              "archlearn.graphs.sparse", "archlearn.learner", "archlearn.io")}
    assert all(attempted.values()), attempted
