"""Every name that README.md and the design's public API (DESIGN.md section 1) use exists after
``import archlearn as al`` in a fresh interpreter."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CI has shared/ beside the clone; a worktree has it further up
DESIGN = next((p / "shared" / "DESIGN.md" for p in ROOT.parents
               if (p / "shared" / "DESIGN.md").exists()), ROOT / "no-design")

# Names the design announces before they are built ({name: "issue N"}): allowed to be missing,
# checked as soon as they exist. Every name of DESIGN.md section 1 exists today.
PENDING: dict[str, str] = {}
# Names the docs use in prose rather than as `al.x` / `archlearn.x` / `learner.x`.
ALSO = {"archlearn.train.Trainer", "learner.load_state_dict", "archlearn.distributed",
        "al.method_names", "archlearn.methods.base",
        "archlearn.models.lenet5", "archlearn.models.tiny_resnet",
        "archlearn.integrations.lightning.penalty", "archlearn.integrations.hf.ArchLearning",
        "archlearn.integrations.hf.ArchLearningTrainer", "archlearn.integrations.hf.penalty"}
NAME = re.compile(r"\b(al|archlearn|learner)\.([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)")

RESOLVE = r"""
import importlib, json, sys
import torch
import archlearn as al

net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
learner = al.attach(net, torch.zeros(1, 4), total_steps=10)  # instance attributes count too

def resolve(name):
    root, _, rest = name.partition(".")
    if root == "learner":
        obj, parts = learner, rest.split(".")
    else:
        parts = rest.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module prefix
            try:
                obj = importlib.import_module(".".join(["archlearn", *parts[:cut]]))
            except ModuleNotFoundError:
                continue
            parts = parts[cut:]
            break
        else:
            obj = al
    for part in parts:
        obj = getattr(obj, part)

missing = []
for name in json.loads(sys.argv[1]):
    try:
        resolve(name)
    except (AttributeError, ImportError):
        missing.append(name)
print(json.dumps(missing))
"""


def documented_names() -> set[str]:
    texts = [(ROOT / "README.md").read_text()]
    if DESIGN.exists():
        design = DESIGN.read_text()
        texts.append(design[design.index("## 1."):design.index("## 2.")])
    names = {f"{root}.{rest}" for text in texts for root, rest in NAME.findall(text)}
    # file paths such as archlearn/methods/tsrelu.py are not names
    return {n for n in names if not n.endswith(".py")} | ALSO


# the code of each fresh interpreter below
SUBPACKAGE = ("import types, archlearn.methods as m, archlearn as al; "
              "assert isinstance(m, types.ModuleType) and m is al.methods, m; "
              "assert m.base.REGISTRY and m.names() == al.method_names(); print('ok')")
NOT_SHADOWED = ("import importlib, pkgutil, types, archlearn as al\n"
                "for info in pkgutil.iter_modules(al.__path__):\n"
                "    if info.ispkg:\n"
                "        mod = importlib.import_module('archlearn.' + info.name)\n"
                "        assert getattr(al, info.name) is mod, info.name\n"
                "assert callable(al.compress) and not isinstance(al.compress, types.ModuleType)\n"
                "print('ok')")


@pytest.fixture(scope="module")
def fresh(ahead):
    """The three fresh interpreters of this file, started together (conftest.ahead): each is its
    own process, so each still imports archlearn first and alone."""
    for key, test, code, args in (
            ("names", "test_every_documented_name_exists_in_a_fresh_interpreter", RESOLVE,
             [json.dumps(sorted(documented_names()))]),
            ("subpackage", "test_archlearn_methods_is_the_subpackage_in_a_fresh_interpreter",
             SUBPACKAGE, []),
            ("not_shadowed", "test_no_subpackage_is_shadowed_by_a_public_function", NOT_SHADOWED,
             [])):
        if ahead.collected(test):
            ahead.start(key, [sys.executable, "-c", code, *args], capture_output=True,
                        text=True, timeout=120)
    return ahead


def test_every_documented_name_exists_in_a_fresh_interpreter(fresh):
    names = documented_names()
    assert {"al.attach", "al.prune.magnitude", "al.graphs.sparse_network", "al.methods",
            "learner.shrink", "archlearn.prune", "archlearn.graphs"} <= names, names
    r = fresh.result("names")
    assert r.returncode == 0, r.stderr[-3000:]  # check=True
    missing = set(json.loads(r.stdout))
    assert missing <= set(PENDING), sorted(missing - set(PENDING))


def test_method_names_lists_the_registry():
    import archlearn as al
    from archlearn.methods import REGISTRY

    assert al.method_names() == sorted(REGISTRY) and "tsrelu" in al.method_names()


def test_archlearn_methods_is_the_subpackage_in_a_fresh_interpreter(fresh):
    """``import archlearn.methods as m`` binds ``getattr(archlearn, "methods")``: no public
    function of the same name may shadow the subpackage."""
    r = fresh.result("subpackage")
    assert r.returncode == 0, r.stderr[-3000:]  # check=True
    assert r.stdout.strip() == "ok"


def test_no_subpackage_is_shadowed_by_a_public_function(fresh):
    """Every subpackage imports as itself (``import archlearn.X as m`` binds the attribute
    ``archlearn.X``): ``al.compress`` is the function, its package is ``archlearn.compression``."""
    r = fresh.result("not_shadowed")
    assert r.returncode == 0, r.stderr[-3000:]  # check=True
    assert r.stdout.strip() == "ok"
