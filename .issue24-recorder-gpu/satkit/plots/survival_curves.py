"""Survival curves of individual saturation (Kaplan-Meier, with confidence bands)."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from satkit.analysis import Run
from satkit.analysis import survival as survival_curve
from satkit.analysis.views import VIEW_LABELS, check_event, check_view, event_column
from satkit.plots._common import (
    PlotData,
    get_ax,
    labelled_once,
    note,
    run_sort_key,
    runs_of,
    step_axis,
)
from satkit.plots._common import legend as draw_legend
from satkit.plots.palette import run_style

__all__ = ["survival"]

_EVENT_TEXT = {"first": "not yet saturated", "settled": "not yet settled"}
_EVENT_TITLE = {"first": "First saturation", "settled": "Settled (saturated for good)"}


def _groups(runs: list[Run], pool: bool) -> list[list[Run]]:
    """One group per run, or (``pool``) per method: its seeds, in legend order."""
    if not pool:
        return [[run] for run in runs]
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.dataset, run.label), []).append(run)
    return list(groups.values())


def survival(data: PlotData, *, ax: Axes | None = None, saturation: str = "clean",
             event: str = "first", pool: bool = False, confidence: float = 0.95,
             band: bool = True, median_line: bool = True, steps: str = "linear",
             legend: bool = True) -> Axes:
    """Fraction of samples not yet saturated vs step, one step curve per run (or method).

    Args:
        data: a run, runs or directories (each needs its samples table; runs without one are
            skipped, and so are runs without the view's column, with a note on the panel).
        ax: the Axes to draw on.
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        event: ``"first"`` (first saturation) or ``"settled"`` (from then on saturated; see
            :mod:`satkit.analysis.views`).
        pool: one curve per method, its seeds' samples pooled (each censored at its own
            run's last step), instead of one per run.
        confidence: level of the pointwise band (log-log interval, see
            :func:`satkit.analysis.survival`).
        band: shade the pointwise band.
        median_line: a dotted line at 0.5 (where a curve crosses it is the median time).
        steps: the step axis, ``"linear"`` or ``"log"``.
        legend: draw a legend naming each method.

    Returns:
        The Axes (x: training step, y: fraction of samples without the event, 0 to 1;
        the title names the event and the view).

    Raises:
        ValueError: a bad ``saturation`` or ``event``.
    """
    ax = get_ax(ax)
    column = event_column(check_event(event), check_view(saturation))
    runs = sorted(runs_of(data), key=run_sort_key)
    with_samples = [r for r in runs if len(r.samples)]
    recorded = [r for r in with_samples if column in r.samples]
    for group in _groups(recorded, pool):
        curve = survival_curve(group if pool else group[0], saturation=saturation, event=event,
                               confidence=confidence)
        # S(t) = 1 before the first event: start every curve at (0, 1)
        times = np.concatenate([[0.0], curve["step"].to_numpy(dtype="float64")])
        first = group[0]
        style = run_style(first.alpha2, first.noise, first.loss, first.setting)
        ax.step(times, np.concatenate([[1.0], curve["survival"]]), where="post",
                color=style["color"], linestyle=style["linestyle"],
                label=labelled_once(ax, style["label"]), linewidth=1.5)
        if band:
            ax.fill_between(times, np.concatenate([[1.0], curve["ci_low"]]),
                            np.concatenate([[1.0], curve["ci_high"]]), step="post",
                            color=style["color"], alpha=0.15, linewidth=0)
    if len(recorded) < len(with_samples):
        note(ax, f"not recorded by {len(with_samples) - len(recorded)} of "
                 f"{len(with_samples)} run(s)")
    if median_line:
        ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1)
    pooled = ", seeds pooled" if pool else ""
    ax.set(ylabel=f"samples {_EVENT_TEXT[event]}", ylim=(0, 1.02),
           title=f"{_EVENT_TITLE[event]}, p_y ({VIEW_LABELS[saturation]}){pooled}")
    step_axis(ax, steps)
    draw_legend(ax, legend, loc="best")
    return ax
