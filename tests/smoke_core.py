"""Smoke test of the core install alone (`make smoke-core` runs it in a fresh venv, not pytest).

It guards what a user gets from ``pip install archlearn`` with the newest releases of the core
dependencies: no extra's package is installed, ``import archlearn`` and its public names work,
attach -> train steps -> shrink -> save/load gives equal outputs, a feature of an extra says which
extra to install, and every bad CLI input prints one line and exits with status 2.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

EXTRA_PACKAGES = ("optuna", "matplotlib", "mlxtend", "mnist1d", "scipy", "sklearn", "lightning",
                  "transformers", "onnx", "onnxruntime", "pytest")
BAD_CLI_INPUTS = (
    ["run", "lenet-mnist", "--no-such-flag"],   # unknown flag
    ["run", "lenet-mnist", "--seeds", "abc"],   # bad value
    ["run", "lenet-mnist", "--seeds", "0"],     # out of range
    ["run", "no-such-job"],                     # unknown job
    ["run", "lenet-mnist", "-o", "x"],          # -o without key=value
    ["run", "lenet-mnist", "-o", "bogus=1"],    # unknown method option
    ["run", "lenet-mnist", "-o", "lambda1=-1"],  # bad method option value
    ["no-such-command"],
)


def check_no_extras() -> None:
    present = [name for name in EXTRA_PACKAGES if importlib.util.find_spec(name) is not None]
    assert not present, f"the core install pulled extra packages: {present}"


def check_attach_shrink_save() -> None:
    import torch

    import archlearn as al

    assert Path(al.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), al.__file__
    for name in ("attach", "save", "load", "measure", "prune", "graphs", "methods", "Learner",
                 "ArchlearnError"):
        assert hasattr(al, name), name
    assert "tsrelu" in al.method_names()

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    learner = al.attach(net, x[:1], method="tsrelu", total_steps=10)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(net(x), y) + learner.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learner.step()
    with torch.no_grad():  # switch half of the units off so that shrinking removes something
        for p in learner.parameters():
            p.view(-1)[: p.numel() // 2] = 0.0
    net.eval()
    small = learner.shrink().eval()
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-5)
    assert small[0].out_features < 16, small
    with tempfile.TemporaryDirectory() as tmp:
        al.save(small, tmp)
        fresh = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        again = al.load(tmp, model=fresh).eval()
        with torch.no_grad():
            assert torch.equal(again(x), small(x))
    assert al.measure(small, x, repeats=2)["params"] < al.measure(net, x, repeats=2)["params"]


def check_extra_error() -> None:
    import archlearn as al
    from archlearn import data

    try:
        data.load("mnist5k")
    except al.ArchlearnError as exc:
        assert "archlearn[experiments]" in str(exc), exc
        assert isinstance(exc, ImportError)
    else:
        raise AssertionError("mnist5k loaded without the experiments extra")


def check_cli() -> None:
    cli = str(Path(sys.executable).parent / "archlearn")
    with tempfile.TemporaryDirectory() as tmp:
        for args in BAD_CLI_INPUTS:
            out = Path(tmp) / "out"
            argv = [cli, *args, "--out", str(out)] if args[0] == "run" else [cli, *args]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert len(lines) == 1 and lines[0].startswith("archlearn: error:"), (args, r.stderr)
            assert not out.exists(), args
            print(f"  archlearn {' '.join(args)!s:<40} -> exit 2: {lines[0]}")
        # the demo job needs the experiments extra (its data and plots): one line naming it
        out = Path(tmp) / "demo"
        r = subprocess.run([cli, "run", "lenet-mnist", "--epochs", "1", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "archlearn[experiments]" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not out.exists(), r.stderr
        r = subprocess.run([cli, "list"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "tsrelu" in r.stdout, r.stderr


if __name__ == "__main__":
    check_no_extras()
    check_attach_shrink_save()
    check_extra_error()
    check_cli()
    print("core install smoke test: every check held")
