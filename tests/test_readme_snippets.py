"""The README's snippets for the integrations run as written, each in a fresh interpreter."""

import re
import subprocess
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


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_readme_snippet_runs(title, tmp_path):
    pytest.importorskip(SECTIONS[title])
    # the dev extra's torchvision is a CUDA build that lightning and transformers import; the
    # fresh interpreter needs the same shim as tests/conftest.py (archlearn.compat)
    prelude = ("import torch; torch.set_num_threads(1)\n"
               "from archlearn.compat import torchvision_importable; torchvision_importable()\n")
    r = subprocess.run([sys.executable, "-c", prelude + snippet(title)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    if title == "ONNX export":
        assert float(last) < 1e-4, last  # onnxruntime's outputs are PyTorch's
    elif title.startswith("A trained model"):
        reached, _ = last.split(" ", 1)
        assert 0.49 <= float(reached) <= 0.5, last  # the budget, landed within 2% under
    else:
        assert "'width'" in last, last  # the learned widths
