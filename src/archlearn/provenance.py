"""What produced a result file: the command, the code's git commit, versions, data, machine.

Every results JSON carries this block, so a figure can be traced to the commit and command that
wrote it, and a timing to the load on the machine when it was taken.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from archlearn.data import Splits

_SOURCE = Path(__file__).resolve().parent


def git_state(where: str | os.PathLike = _SOURCE) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``where``.

    ``dirty`` is True when tracked files differ from the commit (untracked files do not count).
    Outside a git checkout (an installed wheel) both are None.

    >>> sorted(git_state())
    ['commit', 'dirty']
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def provenance(command: str, splits: Splits | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance block of a results file (``extra`` adds the run's own settings)."""
    from archlearn import __version__

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out: dict[str, Any] = {
        "command": command,
        "git": git_state(),
        "archlearn": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} threads",
        "cpus": os.cpu_count(),
        "load_average_1min": None if load is None else round(load[0], 2),
    }
    if splits is not None:
        out["data"] = splits.record()
    return {**out, **extra}
