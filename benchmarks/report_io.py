"""What every section of docs/RESULTS.md reads: a results file, or the line shown before it exists.

>>> load("no-such-file.json") is None
True
>>> missing("python -m benchmarks.zoo")
'_Not run yet: `python -m benchmarks.zoo`._\\n'
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
NA = "n/a"  # a cell that does not apply (every cell is filled: tests/test_report.py)


def load(name: str, folder: Path = RESULTS) -> dict | None:
    """The results file ``folder / name``, or None when its benchmark has not written it."""
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.exists() else None


def missing(command: str) -> str:
    """The line a section shows in place of its figures before ``command`` has run."""
    return f"_Not run yet: `{command}`._\n"


def machine(p: dict) -> str:
    """The machine a provenance block recorded, in words: ``x86_64 Linux, 1 thread``.

    >>> machine({"machine": "x86_64 Linux, 1 threads"})
    'x86_64 Linux, 1 thread'
    """
    text = str(p.get("machine", "machine not recorded"))
    return text[:-1] if text.endswith(", 1 threads") else text
