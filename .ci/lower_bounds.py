"""Print pip constraints that pin every direct dependency of archlearn to its lower bound.

`make lower-bounds` installs the core and every extra at exactly these versions and runs the
tests, so that each lower bound in pyproject.toml is one that was tested (">=X" and "~=X" -> "==X").
"""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
project = project["project"]
extras = ("experiments", "lightning", "hf", "onnx")
requirements = project["dependencies"] + [r for e in extras
                                          for r in project["optional-dependencies"][e]]
# torch stays at the CPU wheel installed first (2.13.0): its declared bound (2.3) exists on PyPI
# only as a multi-GB CUDA build, which these machines must not download
requirements = [r for r in requirements if not r.startswith("torch>")]
for requirement in requirements:
    match = re.fullmatch(r"([\w.\-]+)(\[[^\]]*\])?\s*(?:>=|~=)\s*([0-9][^,;\s]*)",
                         requirement)
    if match is None:
        sys.exit(f"no lower bound to pin in {requirement!r}")
    print(f"{match[1]}=={match[3]}")
