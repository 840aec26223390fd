"""Figures a run or a comparison writes into its ``figures/`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_dashboard"]


def save_dashboard(runs: Any, path: Path, *, dpi: int = 110) -> Path:
    """Draw :func:`satkit.plots.dashboard` of ``runs`` into ``path`` and close the figure.

    Uses whatever matplotlib backend is active (no ``matplotlib.use``), so it neither breaks
    an inline backend in Jupyter nor needs a display.
    """
    import matplotlib.pyplot as plt

    from satkit.plots import dashboard

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = dashboard(runs)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
