"""Plots the library writes (the CLI's widths figure), drawn on a bare ``matplotlib.figure.Figure``.

A ``Figure`` needs no backend, so nothing here switches the user's matplotlib backend, and
matplotlib is imported only when a plot is drawn. Without matplotlib installed no plot is
written (the caller is told).
"""

from __future__ import annotations

import os
from typing import Any

from archlearn.io import atomic_write


def widths_plot(log: list[dict[str, Any]], layer_names: list[str], path: str | os.PathLike,
                title: str = "Architecture against iterations") -> bool:
    """Units kept in each gated layer against training steps (log scale); False if not drawn.

    ``log`` is a list of ``{"step": int, "widths": [int, ...]}`` (see ``runs.WidthLog``).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "w.png"
    >>> widths_plot([{"step": 10, "widths": [4]}, {"step": 20, "widths": [3]}], ["fc"], out)
    True
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    if not log:
        return False
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    steps = [r["step"] for r in log]
    for j, name in enumerate(layer_names):
        ax.plot(steps, [r["widths"][j] for r in log], label=f"layer {name}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("units kept")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return True
