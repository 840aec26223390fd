"""Survival curves of individual saturation (Kaplan-Meier, with confidence bands)."""

from __future__ import annotations

import numpy as np

from satkit.analysis import survival as survival_curve
from satkit.plots._common import STEP_LABEL, get_ax, labelled_once, run_sort_key, runs_of
from satkit.plots._common import legend as draw_legend
from satkit.plots.palette import run_style

__all__ = ["survival"]


def survival(data, *, ax=None, confidence: float = 0.95, band: bool = True,
             median_line: bool = True, legend: bool = True):
    """Fraction of samples not yet saturated vs step, one step curve per run.

    Args:
        data: a run, runs or directories (each needs its samples table; runs without one are
            skipped).
        ax: the Axes to draw on.
        confidence: level of the pointwise band (log-log interval, see
            :func:`satkit.analysis.survival`).
        band: shade the pointwise band.
        median_line: a dotted line at 0.5 (where a curve crosses it is the median time).
        legend: draw a legend naming each method.

    Returns:
        The Axes (x: training step, y: fraction of samples not yet saturated, 0 to 1).
    """
    ax = get_ax(ax)
    for run in sorted(runs_of(data), key=run_sort_key):
        if len(run.samples) == 0:
            continue
        curve = survival_curve(run, confidence=confidence)
        # S(t) = 1 before the first event: start every curve at (0, 1)
        steps = np.concatenate([[0.0], curve["step"].to_numpy(dtype="float64")])
        style = run_style(run.alpha2, run.noise, run.loss, run.setting)
        ax.step(steps, np.concatenate([[1.0], curve["survival"]]), where="post",
                color=style["color"], linestyle=style["linestyle"],
                label=labelled_once(ax, style["label"]), linewidth=1.5)
        if band:
            ax.fill_between(steps, np.concatenate([[1.0], curve["ci_low"]]),
                            np.concatenate([[1.0], curve["ci_high"]]), step="post",
                            color=style["color"], alpha=0.15, linewidth=0)
    if median_line:
        ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1)
    ax.set(xlabel=STEP_LABEL, ylabel="fraction of samples not yet saturated", ylim=(0, 1.02),
           title="Individual saturation (Kaplan-Meier)")
    draw_legend(ax, legend, loc="best")
    return ax
