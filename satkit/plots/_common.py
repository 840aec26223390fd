"""Shared plumbing of the plot functions: coercing inputs, thinning, axes and legends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis import Run, RunError, as_runs
from satkit.analysis.labels import method_order
from satkit.analysis.views import VIEW_LABELS
from satkit.methods import NOISY, SOFTMAX

STEP_LABEL = "training step"
#: The step axis of the per-step figures: ``"linear"``, or ``"log"`` (symmetric log, 0 kept,
#: linear up to step 1): saturation happens in the first few percent of a run, which a
#: log-scaled step axis spreads over the panel.
STEP_SCALES = ("linear", "log")
#: What a plot function takes as ``data``: a tidy frame of :func:`satkit.analysis.load_runs`
#: (or the table a plot documents), run(s), or run / comparison directories.
PlotData = pd.DataFrame | Run | str | Path | Sequence[Run | str | Path]


def view_text(saturation: str) -> str:
    """How an axis names a view's p_y: ``"p_y (clean)"``, ``"p_y (training logits)"``."""
    return f"p_y ({VIEW_LABELS[saturation]})"


@dataclass
class RunSeries:
    """One run's metrics for drawing: labels and a wide frame (``step`` + columns).

    ``loss`` is the method (None: softmax or Noisy Softmax by alpha2, for a tidy frame
    without the column) and ``setting`` its main parameter as text.
    """

    name: str
    alpha2: float
    noise: str
    seed: int | None
    frame: pd.DataFrame
    loss: str | None = None
    setting: str = ""

    def style(self) -> dict:
        """``color``, ``linestyle`` and ``label`` (:func:`satkit.plots.run_style`)."""
        from satkit.plots.palette import run_style

        return run_style(self.alpha2, self.noise, self.loss, self.setting)


def get_ax(ax: Axes | None) -> Axes:
    """``ax`` itself, or the current Axes of pyplot (as seaborn does)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.gca()


def thin(frame: pd.DataFrame, max_points: int | None) -> pd.DataFrame:
    """At most ``max_points`` rows: means over consecutive blocks of rows (steps included).

    Block means, not every k-th row, so a million noisy steps still draw the trend.
    """
    if max_points is None or len(frame) <= max_points:
        return frame
    block = int(np.ceil(len(frame) / max_points))
    keys = np.arange(len(frame)) // block
    return frame.groupby(keys).mean(numeric_only=True)


def _from_tidy(tidy: pd.DataFrame, columns: Sequence[str]) -> list[RunSeries]:
    missing = {"run", "alpha2", "step", "metric", "value"} - set(tidy.columns)
    if missing:
        raise RunError(f"tidy frame lacks columns {sorted(missing)} (use load_runs)")
    out = []
    for name, group in tidy[tidy["metric"].isin(columns)].groupby("run", sort=False,
                                                                  observed=True):
        wide = group.pivot_table(index="step", columns="metric", values="value",
                                 observed=True).reset_index()
        wide.columns.name = None
        first = group.iloc[0]
        seed = first["seed"] if "seed" in group else None
        out.append(RunSeries(str(name), float(first["alpha2"]),
                             str(first["noise"]) if "noise" in group else "annealed",
                             None if pd.isna(seed) else int(seed), wide,
                             str(first["loss"]) if "loss" in group else None,
                             str(first["setting"]) if "setting" in group else ""))
    return out


def as_series(data: PlotData, columns: Sequence[str],
              max_points: int | None = 2000) -> list[RunSeries]:
    """Coerce a tidy frame (:func:`satkit.analysis.load_runs`), Run(s) or path(s) to series.

    Only ``columns`` that a run has are kept; runs are thinned to ``max_points`` rows.
    """
    if isinstance(data, pd.DataFrame):
        series = _from_tidy(data, columns)
    else:
        series = []
        for run in as_runs(data):
            keep = ["step", *[c for c in columns if c in run.metrics]]
            series.append(RunSeries(run.name, run.alpha2, run.noise, run.seed,
                                    run.metrics[keep], run.loss, run.setting))
    for s in series:
        s.frame = thin(s.frame, max_points)
    return series


def runs_of(data: PlotData) -> list[Run]:
    """Run(s) or path(s) as runs; a tidy frame is refused with a clear message."""
    if isinstance(data, pd.DataFrame):
        raise TypeError("this plot needs runs (load_run / a run directory), not a tidy frame")
    return as_runs(data)


def labelled_once(ax: Axes, label: str) -> str:
    """``label`` the first time it is drawn on ``ax``, else ``"_nolegend_"`` (seeds share one)."""
    seen = {line.get_label() for line in ax.get_lines()}
    seen |= {c.get_label() for c in ax.collections}
    return "_nolegend_" if label in seen else label


def sort_key(series: RunSeries) -> tuple:
    """Legend order: softmax, Noisy Softmax by alpha2, then the regularisers; seeds last."""
    loss = series.loss or (SOFTMAX if series.alpha2 == 0 else NOISY)
    return (method_order(loss), series.alpha2, series.noise, series.setting,
            series.seed if series.seed is not None else -1)


def run_sort_key(run: Run) -> tuple:
    """:func:`sort_key` for a :class:`~satkit.analysis.Run`."""
    return (method_order(run.loss), run.alpha2, run.noise, run.setting,
            run.seed if run.seed is not None else -1)


def legend(ax: Axes, show: bool, **kwargs) -> None:
    if show and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", frameon=False, **kwargs)


def note(ax: Axes, text: str) -> None:
    """A small grey note in the Axes' lower left corner (what the panel leaves out)."""
    ax.text(0.01, 0.01, text, transform=ax.transAxes, fontsize="x-small", color="0.35",
            ha="left", va="bottom")


def step_axis(ax: Axes, steps: str) -> None:
    """Set the x axis of a per-step panel: its scale (:data:`STEP_SCALES`) and its label, which
    says when the scale is logarithmic.

    Raises:
        ValueError: ``steps`` is not one of :data:`STEP_SCALES`.
    """
    from matplotlib.ticker import FuncFormatter

    from satkit.validation import check_choice

    check_choice("steps", steps, STEP_SCALES)
    if steps == "log":
        ax.set_xscale("symlog", linthresh=1, linscale=0.3)
        ax.set_xlim(left=0)
        right = max(ax.get_xlim()[1], 1.0)
        ticks = [0] + [m * 10**e for e in range(int(np.log10(right)) + 1) for m in (1, 2, 5)
                       if m * 10**e <= right]
        ax.set_xticks(ticks if len(ticks) <= 12 else ticks[::3])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_xlabel(f"{STEP_LABEL} (log scale)")
    else:
        ax.set_xlabel(STEP_LABEL)
