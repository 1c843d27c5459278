"""Figures for the benchmarks: a bare ``matplotlib.figure.Figure`` (no backend to select, no
global pyplot state), written atomically next to its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archlearn.io import atomic_write


def figure(width: float, height: float, cols: int = 1, **subplots: Any):
    """A new ``Figure`` and its axes (a list of ``cols`` axes when ``cols > 1``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, cols, **subplots)
    return fig, (list(axes) if cols > 1 else axes)


def save(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out and write ``fig`` as a PNG, all or nothing."""
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
