"""The real-architectures benchmark runs and its RESULTS section renders every column."""

import json
import sys

import pytest

pytest.importorskip("transformers")


def test_zoo_benchmark_quick_run_renders(tmp_path, monkeypatch):
    # the command's entry point, main(), in this process (python -m runs the same function; a
    # subprocess would import torch, transformers, timm and torchvision afresh)
    from benchmarks import zoo

    out = tmp_path / "zoo.json"
    monkeypatch.setattr(sys, "argv", ["zoo.py", "--quick", "--repeats", "1",
                                      "--models", "resnet,bert-sdpa", "--out", str(out)])
    zoo.main()
    rows = json.loads(out.read_text())["models"]
    assert set(rows) == {"resnet", "bert-sdpa"}
    assert rows["bert-sdpa"]["groups"] == {"heads": 2, "channels": 2, "hidden": 1}
    # the LayerNorm'd residual stream is a hidden-dimension group now, no longer skipped
    assert not any("LayerNorm" in reason for reason in rows["bert-sdpa"]["skipped"])
    from benchmarks import report_zoo

    text = report_zoo.section(out)
    table = [line for line in text.splitlines() if line.startswith("| resnet")]
    assert len(table) == 1 and all(cell.strip() for cell in table[0].strip("|").split("|"))
