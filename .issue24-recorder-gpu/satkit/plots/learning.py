"""Per-epoch learning curves (``epochs.csv``): test and training error, losses, learning rate."""

from __future__ import annotations

from matplotlib.axes import Axes

from satkit.plots._common import PlotData, get_ax, labelled_once, run_sort_key, runs_of
from satkit.plots._common import legend as draw_legend
from satkit.plots.palette import run_style

__all__ = ["learning_curves"]

_YLABELS = {"test_error": "test error (%)", "train_error": "training error (%)",
            "test_loss": "test loss (clean logits)", "train_loss": "training loss",
            "lr": "learning rate"}


def learning_curves(data: PlotData, *, ax: Axes | None = None, column: str = "test_error",
                    legend: bool = True) -> Axes:
    """One per-epoch figure of the runs against the epoch: a marker per finished epoch.

    Args:
        data: run(s) or directories (their ``epochs.csv``; runs without one are skipped).
        ax: the Axes to draw on (default: the current one).
        column: an ``epochs.csv`` column: ``test_error`` (default), ``train_error``,
            ``test_loss``, ``train_loss``, ``lr``.
        legend: draw a legend naming each method.

    Returns:
        The Axes (x: epoch, from 1; y: the column, from 0; the learning rate on a log scale).
    """
    ax = get_ax(ax)
    for run in sorted(runs_of(data), key=run_sort_key):
        if column not in run.epochs or not len(run.epochs):
            continue
        style = run_style(run.alpha2, run.noise, run.loss, run.setting)
        ax.plot(run.epochs["epoch"] + 1, run.epochs[column], marker="o", markersize=3.5,
                color=style["color"], linestyle=style["linestyle"], linewidth=1.5,
                label=labelled_once(ax, style["label"]))
    label = _YLABELS.get(column, column)
    ax.set(xlabel="epoch", ylabel=label, title=label.split(" (")[0].capitalize() + " per epoch")
    if column == "lr":
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    draw_legend(ax, legend, loc="best")
    return ax
