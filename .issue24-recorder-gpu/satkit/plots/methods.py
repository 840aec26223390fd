"""One summary figure per method, side by side: the picture of :func:`rank_methods`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis import run_table, seed_summary
from satkit.analysis.labels import method_label
from satkit.analysis.seeds import GROUP_KEYS, with_method_columns
from satkit.analysis.summary import NOISY_VIEW_FIGURES
from satkit.plots._common import PlotData, get_ax, runs_of
from satkit.plots.palette import method_color

__all__ = ["method_comparison"]

_XLABELS = {"test_error": "test error (%)", "best_test_error": "best test error (%)",
            "onset_step": "saturation onset, clean (training step)",
            "onset_step_noisy": "saturation onset, training logits (training step)",
            "grad_target_late": "late |∂L/∂f_y| (batch mean)",
            "median_saturation_step": "median sample saturation, clean (training step)",
            "median_saturation_step_noisy":
                "median sample saturation, training logits (training step)",
            "seconds_per_step": "seconds per training step (wall time)",
            "p_target_late": "late p_y (clean, batch mean)"}
_STEP_FIGURES = ("onset_step", "onset_step_noisy", "median_saturation_step",
                 "median_saturation_step_noisy", "median_settled_step",
                 "median_settled_step_noisy")


def _table(data: PlotData) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame) and {"run", "alpha2"} <= set(data.columns):
        return with_method_columns(data)
    return with_method_columns(run_table(runs_of(data)))


def method_comparison(data: PlotData, *, ax: Axes | None = None, figure: str = "test_error",
                      confidence: float = 0.95, seeds: bool = True) -> Axes:
    """One row per method: the mean of a per-run figure with its across-seed interval.

    The x axis starts at 0 (every figure here is non-negative), so small differences are not
    blown up; a method with one seed has no interval (a dot alone).

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
        figure, from 0). Each method has its colour of :func:`satkit.plots.method_color`. A
        method without a finite value reads "–" when its runs did not record the figure (the
        training-logit view of older runs) or is not a step, and "never by N" at the right
        edge for a saturation step no run reached by its last step N.
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
            recorded = figure not in NOISY_VIEW_FIGURES or "noisy_view" not in members \
                or bool(members["noisy_view"].any())
            text = f"never by {last}" if figure in _STEP_FIGURES and pd.notna(last) \
                and recorded else "–"
            ax.annotate(text, xy=(0.98, y), xycoords=("axes fraction", "data"), ha="right",
                        va="center", color=colour, fontsize="small")
            continue
        err = None
        if math.isfinite(rec.ci_low):
            err = [[rec.mean - rec.ci_low], [rec.ci_high - rec.mean]]
        ax.errorbar([rec.mean], [y], xerr=err, fmt="o", color=colour, ecolor=colour,
                    capsize=3, markersize=7, zorder=3)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.1)  # from 0, with room right of the largest marker
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first method on top
    xlabel = _XLABELS.get(figure, figure)
    ax.set(xlabel=xlabel, title=xlabel.split(" (")[0].capitalize() + " by method")
    ax.grid(axis="x", color="0.9", linewidth=0.8)
    ax.set_axisbelow(True)
    return ax
