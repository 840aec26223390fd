"""One summary figure per method, side by side: the picture of :func:`rank_methods`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from satkit.analysis import run_table, seed_summary
from satkit.analysis.labels import method_label
from satkit.analysis.seeds import GROUP_KEYS, with_method_columns
from satkit.plots._common import get_ax, runs_of
from satkit.plots.palette import method_color

__all__ = ["method_comparison"]

_XLABELS = {"test_error": "test error (%)", "best_test_error": "best test error (%)",
            "onset_step": "saturation onset (training step)",
            "grad_target_late": "late |∂L/∂f_y| (batch mean)",
            "median_saturation_step": "median sample saturation (training step)",
            "seconds_per_step": "seconds per training step (wall time)",
            "p_target_late": "late p_y (clean, batch mean)"}
_STEP_FIGURES = ("onset_step", "median_saturation_step")


def _table(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame) and {"run", "alpha2"} <= set(data.columns):
        return with_method_columns(data)
    return with_method_columns(run_table(runs_of(data)))


def method_comparison(data, *, ax=None, figure: str = "test_error", confidence: float = 0.95,
                      seeds: bool = True):
    """One row per method: the mean of a per-run figure with its across-seed interval.

    Args:
        data: run(s), directories, or a :func:`satkit.analysis.run_table` frame.
        ax: the Axes to draw on (default: the current one).
        figure: a run-table column: ``test_error`` (default), ``onset_step``,
            ``median_saturation_step``, ``grad_target_late``, ``seconds_per_step``, ...
        confidence: level of the Student-t interval over seeds (error bars; none for one
            seed).
        seeds: also draw each run's value as a small grey point.

    Returns:
        The Axes (y: methods top to bottom in table order -- softmax, Noisy Softmax by
        alpha2, then the regularisers -- with their data set when there are several; x: the
        figure). Each method has its colour of :func:`satkit.plots.method_color`. A method
        without a finite value reads "never by N" at the right edge for the saturation
        figures (no run saturated by its last step N), else "–".
    """
    ax = get_ax(ax)
    table = _table(data)
    summary = seed_summary(table, figures=(figure,), confidence=confidence)
    several = summary["dataset"].nunique() > 1
    labels = []
    for y, rec in enumerate(summary.itertuples(index=False)):
        label = method_label(rec.alpha2, rec.noise, rec.loss, rec.setting)
        labels.append(f"{label}, {rec.dataset}" if several else label)
        colour = method_color(rec.loss, rec.alpha2)
        members = table
        for key in GROUP_KEYS:
            members = members[members[key] == getattr(rec, key)]
        if seeds and figure in members:
            ax.scatter(members[figure].astype("float64"), np.full(len(members), y), s=12,
                       color="0.55", alpha=0.8, zorder=2)
        if rec.n == 0 or not math.isfinite(rec.mean):
            last = members["last_step"].max() if "last_step" in members else None
            text = f"never by {last}" if figure in _STEP_FIGURES and pd.notna(last) else "–"
            ax.annotate(text, xy=(0.98, y), xycoords=("axes fraction", "data"), ha="right",
                        va="center", color=colour, fontsize="small")
            continue
        err = None
        if math.isfinite(rec.ci_low):
            err = [[rec.mean - rec.ci_low], [rec.ci_high - rec.mean]]
        ax.errorbar([rec.mean], [y], xerr=err, fmt="o", color=colour, ecolor=colour,
                    capsize=3, markersize=7, zorder=3)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first method on top
    xlabel = _XLABELS.get(figure, figure)
    ax.set(xlabel=xlabel, title=xlabel.split(" (")[0].capitalize() + " by method")
    ax.grid(axis="x", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    return ax
