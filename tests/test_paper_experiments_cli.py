"""`benchmarks.paper_experiments --data PATH` runs paper 1's experiments on MNIST IDX files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from archlearn import data
from archlearn.data import write_idx

ROOT = Path(__file__).resolve().parents[1]


def _write_mnist_idx(folder: Path, n_train: int, n_test: int) -> None:
    """The first examples of mnist5k, written back as the four MNIST IDX files (uint8)."""
    splits = data.load("mnist5k")
    for prefix, part, n in (("train", splits.train, n_train), ("t10k", splits.test, n_test)):
        x, y = part.tensors
        pixels = ((x[:n, 0].numpy() * 0.3081 + 0.1307) * 255).round().clip(0, 255)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", pixels.astype(np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y[:n].numpy().astype(np.uint8))


def test_data_path_runs_an_experiment_on_the_idx_files(tmp_path, monkeypatch,
                                                        quick_latency) -> None:
    """The command's entry point in this process (``main`` on these arguments, as ``python -m``
    runs it: the next test runs the module as a script), its latencies timed in 3 rounds (see
    conftest.quick_latency): this test reads the data's provenance and the accuracies."""
    from benchmarks import paper_experiments

    _write_mnist_idx(tmp_path, 600, 200)
    out = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["paper_experiments.py", "pretrained", "--data",
                                      str(tmp_path), "--out", str(out), "--short-epochs", "2",
                                      "--threads", "1"])
    paper_experiments.main()
    result = json.loads((out / "pretrained.json").read_text())
    assert result["provenance"]["data"]["name"] == "mnist-idx"
    assert result["provenance"]["command"].startswith("python -m benchmarks.paper_experiments "
                                                      "pretrained --data")
    assert [r["variant"] for r in result["rows"]][:1] == ["pretrained"]
    assert result["rows"][0]["accuracy"] > 0.3  # real digits were read back (chance: 0.1)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["rows"])


@pytest.fixture(scope="module", autouse=True)
def script(ahead, tmp_path_factory):
    """The module's real process, ``python -m benchmarks.paper_experiments`` on a missing data
    folder, started with the module (conftest.ahead): it runs beside the in-process test above;
    returns its (result, folder)."""
    folder = tmp_path_factory.mktemp("script")
    if ahead.collected("test_a_missing_data_folder_is_one_line_and_writes_nothing"):
        ahead.start("missing", [sys.executable, "-m", "benchmarks.paper_experiments", "table31",
                                "--data", str(folder / "nope"), "--out", str(folder / "results")],
                    cwd=ROOT, capture_output=True, text=True, timeout=120)
    return ahead, folder


def test_a_missing_data_folder_is_one_line_and_writes_nothing(script) -> None:
    ahead, tmp_path = script
    out = tmp_path / "results"
    run = ahead.result("missing")
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == [
        f"error: --data {tmp_path / 'nope'}: mnist-idx: {tmp_path / 'nope'} is not a folder "
        "(it must hold the IDX files)"]
    assert not out.exists()
