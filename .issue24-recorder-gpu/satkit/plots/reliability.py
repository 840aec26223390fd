"""Reliability diagrams: is the model as often right as it is confident? (Guo et al. 2017)

A saturated softmax puts most test samples in the top confidence bin; the diagram shows
whether their accuracy follows. :func:`reliability` draws one diagram on an Axes,
:func:`reliability_figure` one per method (the seeds of a method pooled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from satkit.analysis import Run, RunError
from satkit.analysis.calibration import expected_calibration_error, reliability_table, top1
from satkit.plots._common import get_ax, run_sort_key, runs_of
from satkit.plots.palette import method_color
from satkit.schema import CALIBRATION_BINS, TEST_PREDICTIONS

__all__ = ["reliability", "reliability_figure"]

COUNT_COLOUR = "0.3"

#: What :func:`reliability` takes: run(s) or directories (their test predictions), an (N, C)
#: probability array (with ``labels``), or a frame with ``confidence`` and ``correct`` columns
#: (or ``predicted`` and ``label``, as ``test_predictions.parquet`` has).
ReliabilityData = Run | str | Sequence[Run | str] | np.ndarray | pd.DataFrame


def _from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if "correct" in frame:
        correct = frame["correct"].to_numpy(dtype=bool)
    elif {"predicted", "label"} <= set(frame.columns):
        correct = (frame["predicted"] == frame["label"]).to_numpy()
    else:
        raise ValueError("a frame for reliability() needs a 'confidence' column and 'correct' "
                         f"(or 'predicted' and 'label'); it has {list(frame.columns)}")
    if "confidence" not in frame:
        raise ValueError(f"a frame for reliability() needs a 'confidence' column; it has "
                         f"{list(frame.columns)}")
    return frame["confidence"].to_numpy(dtype=np.float64), correct


def _top1(data: ReliabilityData, labels) -> tuple[np.ndarray, np.ndarray, str | None,
                                                  str | None]:
    """(confidence, correct, label, colour) of whatever ``data`` is."""
    if isinstance(data, np.ndarray):
        if labels is None:
            raise ValueError("reliability(probs) needs labels= (one class index per row)")
        confidence, correct = top1(data, labels)
        return confidence, correct, None, None
    if isinstance(data, pd.DataFrame):
        return (*_from_frame(data), None, None)
    runs = runs_of(data)
    missing = [str(r.path) for r in runs if r.test_predictions.empty]
    if missing:
        raise RunError(f"{', '.join(missing)}: no {TEST_PREDICTIONS} (an unfinished run, or one "
                       "written before satkit kept its test predictions)")
    confidence, correct = _from_frame(pd.concat([r.test_predictions for r in runs]))
    first = runs[0]
    label = first.label if len({r.label for r in runs}) == 1 else f"{len(runs)} runs"
    if len(runs) > 1:
        label += f", {len(runs)} runs pooled"
    return confidence, correct, label, method_color(first.loss, first.alpha2)


def reliability(data: ReliabilityData, *, ax: Axes | None = None,
                labels: Sequence[int] | np.ndarray | None = None, bins: int = CALIBRATION_BINS,
                color: str | None = None, title: str | None = None, counts: bool = True,
                key: bool = True) -> Axes:
    """Reliability diagram: the accuracy per top-1 confidence bin against the diagonal.

    Bars: the accuracy of each non-empty equal-width bin; hatched: the gap to the bin's mean
    confidence (what the ECE averages, weighted by the bins' counts); dashed: perfect
    calibration. Grey bars on the right axis: the samples per bin. The ECE is in the legend.

    Args:
        data: a run or run directory (its ``test_predictions.parquet``: the final model's
            test set), several runs (their predictions pooled, e.g. one method's seeds), an
            (N, C) probability array with ``labels``, or a frame with ``confidence`` and
            ``correct`` (or ``predicted`` and ``label``) columns.
        ax: the Axes to draw on (default: the current one).
        labels: (N,) class indices, for a probability array.
        bins: equal-width bins (15, as the ECE).
        color: the bars' colour (default: the method's, else the first Okabe-Ito blue).
        title: default: the method's label (``"reliability"`` for arrays and frames).
        counts: draw the samples per bin on a twin y axis.
        key: the legend explains the diagonal, the gap and the counts too (False: only the
            accuracy bars with the ECE, for small multiples that share one key).

    Returns:
        The Axes (x: top-1 confidence, 0 to 1; y: accuracy, 0 to 1).

    Raises:
        RunError: a run without test predictions (unfinished, or written before satkit kept
            them).
        ValueError: bad arrays or frame columns.
    """
    ax = get_ax(ax)
    confidence, correct, label, default_colour = _top1(data, labels)
    table = reliability_table(confidence, correct, bins)
    ece = expected_calibration_error(confidence, correct, bins)
    filled = table[table["count"] > 0]
    width = 1.0 / bins
    colour = color or default_colour or "#0072B2"
    centres = (filled["lower"] + filled["upper"]) / 2
    ax.bar(centres, filled["accuracy"], width=width, color=colour, alpha=0.85,
           edgecolor="white", linewidth=0.6,
           label=f"accuracy (ECE = {ece:.3f}, n = {len(confidence)})")
    ax.bar(centres, filled["confidence"] - filled["accuracy"], bottom=filled["accuracy"],
           width=width, color="none", edgecolor="#D55E00", hatch="////", linewidth=0.6,
           label="gap to the mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence", ylabel="accuracy",
           title=title or (f"Reliability: {label}" if label else "Reliability"))
    if counts and len(filled):
        from matplotlib.ticker import MaxNLocator

        # over the accuracy bars, narrow and dark, scaled into the lower quarter; the twin
        # axis on the right only labels them in samples
        top = 4.0 * float(filled["count"].max())
        ax.bar(centres, filled["count"] / top, width=width * 0.35, color=COUNT_COLOUR,
               edgecolor="white", linewidth=0.8, label="samples per bin (right axis)")
        twin = ax.twinx()
        twin.set_label("<samples per bin>")  # a scale for the bars above, not a panel
        twin.set_ylim(0, top)
        twin.yaxis.set_major_locator(MaxNLocator(3, integer=True))
        twin.tick_params(axis="y", colors=COUNT_COLOUR, labelsize="x-small", pad=1)
    handles, names = ax.get_legend_handles_labels()
    if not key:
        kept = [i for i, name in enumerate(names) if name.startswith("accuracy")]
        handles, names = [handles[i] for i in kept], [names[i] for i in kept]
    ax.legend(handles, names, loc="upper left", fontsize="x-small", framealpha=0.85,
              edgecolor="none")
    if counts and len(filled):
        ax.set_zorder(twin.get_zorder() + 1)  # ax (bars, legend) in front of the empty twin
        ax.patch.set_visible(False)
    return ax


def reliability_figure(runs, *, columns: int = 4, bins: int = CALIBRATION_BINS,
                       panel_size: float = 3.6, title: str | None = None) -> Figure:
    """One reliability diagram per method (its seeds pooled), in the catalogue's order.

    Args:
        runs: runs or directories; those without test predictions are left out.
        columns: panels per row.
        bins: equal-width bins.
        panel_size: inches per panel side.
        title: the figure title (default: what is shown).

    Returns:
        A :class:`matplotlib.figure.Figure` (not shown; the caller saves or closes it).

    Raises:
        RunError: no run has test predictions.
    """
    runs = sorted(runs_of(runs), key=run_sort_key)
    kept = [r for r in runs if not r.test_predictions.empty]
    if not kept:
        raise RunError(f"none of the {len(runs)} run(s) has {TEST_PREDICTIONS}: they are "
                       "unfinished or were written before satkit kept test predictions")
    methods: dict[tuple, list[Run]] = {}
    for run in kept:
        methods.setdefault((run.dataset, run.label), []).append(run)
    rows = math.ceil(len(methods) / columns)
    ncols = min(columns, len(methods))
    fig = Figure(figsize=(panel_size * ncols + 0.6, panel_size * rows + 0.8),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, ncols, squeeze=False)).ravel()
    for ax, members in zip(axes, methods.values(), strict=False):
        reliability(members, ax=ax, bins=bins, title=members[0].label, key=False)
    for ax in axes[len(methods):]:
        ax.set_axis_off()
    _shared_key(fig)
    left = len(runs) - len(kept)
    fig.suptitle(title or ("Reliability of the final models on the test set (a method's seeds "
                           "pooled)"
                           + (f"; {left} run(s) without test predictions left out" if left
                              else "")))
    return fig


def _shared_key(fig: Figure) -> None:
    """One legend below the panels for what every diagram shares."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color="0.6", label="accuracy per confidence bin (ECE in each panel)"),
               Patch(facecolor="none", edgecolor="#D55E00", hatch="////",
                     label="gap to the bin's mean confidence"),
               Line2D([], [], linestyle="--", color="0.3", label="perfect calibration"),
               Patch(color=COUNT_COLOUR, label="samples per bin (right axis)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False,
               fontsize="small")
