"""Figures a run or a comparison writes into its ``figures/`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["save_dashboard"]


def save_dashboard(runs: Any, path: Path, *, dpi: int = 110) -> Path:
    """Draw :func:`satkit.plots.dashboard` of ``runs`` into ``path`` and, when some run kept
    its test predictions, the reliability diagram of each method
    (:func:`satkit.plots.reliability_figure`) into ``reliability.png`` beside it; close both.

    Uses whatever matplotlib backend is active (no ``matplotlib.use``), so it neither breaks
    an inline backend in Jupyter nor needs a display.
    """
    from satkit.analysis import as_runs
    from satkit.plots import dashboard, reliability_figure

    runs = as_runs(runs)
    _save(dashboard(runs), path, dpi)
    if any(not r.test_predictions.empty for r in runs):
        _save(reliability_figure(runs), path.with_name("reliability.png"), dpi)
    return path


def _save(fig: Any, path: Path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
