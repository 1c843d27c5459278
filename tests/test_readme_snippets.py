"""The README's snippets for the integrations run as written, each in a fresh interpreter."""

import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = {"A trained model, in minutes: `al.compress`": "torch",
            "With Lightning": "lightning", "With the Hugging Face Trainer": "transformers",
            "ONNX export": "onnxruntime", "Distillation: shrinking a pre-trained encoder":
            "transformers"}


def snippet(title: str) -> str:
    text = README.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"README section {title!r} should hold one python snippet"
    return blocks[0]


# the dev extra's torchvision is a CUDA build that lightning and transformers import; the
# fresh interpreter needs the same shim as tests/conftest.py (archlearn.compat)
PRELUDE = ("import torch; torch.set_num_threads(1)\n"
           "from archlearn.compat import torchvision_importable; torchvision_importable()\n")


@pytest.fixture(scope="module")
def snippet_runs(ahead, tmp_path_factory):
    """Every collected snippet whose package is installed, each in its own fresh interpreter
    (its own empty working folder), started together (conftest.ahead)."""
    import importlib.util

    for title in sorted(set(ahead.selected("title"))):
        if importlib.util.find_spec(SECTIONS[title]) is None:
            continue  # its test skips
        try:
            code = PRELUDE + snippet(title)
        except AssertionError:
            continue  # its test fails on it
        ahead.start(title, [sys.executable, "-c", code], cwd=tmp_path_factory.mktemp("snippet"),
                    capture_output=True, text=True, timeout=300)
    return ahead


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_readme_snippet_runs(title, snippet_runs):
    pytest.importorskip(SECTIONS[title])
    snippet(title)  # one python snippet in the section
    r = snippet_runs.result(title)
    assert r.returncode == 0, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    if title == "ONNX export":
        assert float(last) < 1e-4, last  # onnxruntime's outputs are PyTorch's
    elif title.startswith("A trained model"):
        reached, _ = last.split(" ", 1)
        assert 0.49 <= float(reached) <= 0.5, last  # the budget, landed within 2% under
    else:
        assert "'width'" in last, last  # the learned widths
