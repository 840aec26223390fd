"""Heatmap of the per-sample p_target distribution over training."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis import Run, p_target_distribution
from satkit.analysis.views import check_view
from satkit.plots._common import PlotData, get_ax, runs_of, step_axis, view_text

__all__ = ["p_target_heatmap"]


def _pick(data: PlotData, run: str | int | None) -> Run:
    runs = runs_of(data)
    if run is None:
        return runs[0]
    if isinstance(run, int):
        return runs[run]
    for r in runs:
        if r.name == run:
            return r
    raise KeyError(f"no run named {run!r}; have {[r.name for r in runs]}")


def p_target_heatmap(data: PlotData, *, ax: Axes | None = None, run: str | int | None = None,
                     saturation: str = "clean", bins: int = 20, max_steps: int = 200,
                     source: str = "auto", cmap: str = "cividis", colorbar: bool = True,
                     steps: str = "linear", title: str | None = None) -> Axes:
    """Distribution of the per-sample p_y over training steps, as a heatmap.

    Args:
        data: a run, runs, directories, or the frame of
            :func:`satkit.analysis.p_target_distribution` (``step, p_low, p_high,
            fraction``).
        ax: the Axes to draw on.
        run: which run when ``data`` holds several (name or position; default the first).
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        bins, max_steps, source: see :func:`satkit.analysis.p_target_distribution`
            (TensorBoard histograms when there are enough, else the batch quantiles).
        cmap: a perceptually uniform, colour-blind-safe colormap (``cividis``).
        colorbar: add a colour bar labelled "fraction of samples".
        steps: the step axis, ``"linear"`` or ``"log"``.
        title: default: the run's method label, seed, the view and the data source.

    Returns:
        The Axes (x: training step, y: p_y bin of the view, colour: fraction of samples). An
        empty distribution draws an empty, labelled Axes.

    Raises:
        RunError: the run lacks the view's columns (see
            :func:`satkit.analysis.p_target_distribution`).
    """
    ax = get_ax(ax)
    check_view(saturation)
    if isinstance(data, pd.DataFrame) and "fraction" in data:
        dist, label = data, title or "p_y distribution"
    else:
        chosen = _pick(data, run)
        dist = p_target_distribution(chosen, saturation=saturation, bins=bins,
                                     max_steps=max_steps, source=source)
        label = title or (f"{chosen.label}"
                          f"{'' if chosen.seed is None else f', seed {chosen.seed}'}")
        if not len(dist):
            label += " (no data)"
        elif not title:
            used = dist["source"].iloc[0]
            what = (f"{dist['step'].nunique()} histograms" if used == "histograms"
                    else "the batch quantiles q10, median, q90")
            label += f"\n{view_text(saturation)}, from {what}"
    if len(dist):
        grid = dist.pivot_table(index="p_low", columns="step", values="fraction")
        columns = grid.columns.to_numpy(dtype="float64")
        x_edges = _edges(columns)
        y_edges = np.append(grid.index.to_numpy(), dist["p_high"].max())
        mesh = ax.pcolormesh(x_edges, y_edges, grid.to_numpy(), cmap=cmap, shading="flat",
                             vmin=0, vmax=max(float(np.nanmax(grid.to_numpy())), 1e-9))
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label="fraction of samples")
    ax.set(ylabel=view_text(saturation), ylim=(0, 1), title=label)
    step_axis(ax, steps)
    return ax


def _edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges halfway between recorded steps (one step wide for a single step)."""
    if steps.size == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    mids = (steps[1:] + steps[:-1]) / 2
    return np.concatenate([[steps[0] - (mids[0] - steps[0])], mids,
                           [steps[-1] + (steps[-1] - mids[-1])]])

