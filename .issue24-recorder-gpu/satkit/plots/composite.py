"""The dashboard: six panels that tell the saturation story at slide size (what ``satkit plot``
and every run save), and the plumbing the other named figures share
(:mod:`satkit.plots.figures`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from satkit.analysis import Run
from satkit.plots._common import PlotData, run_sort_key, runs_of
from satkit.plots.curves import gradient_curves, noise_curves, saturation_curves
from satkit.plots.learning import learning_curves
from satkit.plots.survival_curves import survival
from satkit.schema import DEFAULT_TAU

__all__ = ["FONT", "compose", "dashboard"]

#: Text sizes of the composed figures: readable when a 13-inch-wide figure fills a slide.
FONT = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
        "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 14}
#: The dashboard's size in inches (16:9, a slide): at the default 110 dpi, 1430 x 825 pixels.
DASHBOARD_SIZE = (13.0, 7.5)


def has_noise(runs: list[Run]) -> bool:
    """Whether some run subtracted a noise (or margin) from its target logit."""
    for run in runs:
        if "noise_mean" in run.metrics:
            values = run.metrics["noise_mean"].to_numpy(dtype="float64", na_value=np.nan)
            if np.any(np.isfinite(values) & (values != 0)):
                return True
    return False


def several_seeds(runs: list[Run]) -> bool:
    """Whether some method has more than one run (its seeds are then pooled / aggregated)."""
    labels = [(r.dataset, r.label) for r in runs]
    return len(set(labels)) < len(labels)


def title_of(runs: list[Run], what: str) -> str:
    """A figure's title: ``what`` on the data set, the methods and the seeds (two lines)."""
    datasets = ", ".join(sorted({r.dataset for r in runs if r.dataset})) or "runs"
    methods = list(dict.fromkeys(r.label for r in sorted(runs, key=run_sort_key)))
    named = ", ".join(methods) if len(methods) <= 3 else f"{len(methods)} methods"
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds" if seeds \
        else "seed unknown"
    return f"{what} on {datasets}: {named} ({len(runs)} run(s), {seed_text})"


def compose(runs: PlotData, draws: Sequence[Callable[[Axes, list[Run], bool], object]], *,
            columns: int, size: tuple[float, float], title: str | None,
            subtitle: str, legend_from: int | None = 0) -> Figure:
    """A figure of panels: ``draws[i](ax, runs, pooled)`` on a grid of ``columns``; one legend
    for the figure below it (taken from panel ``legend_from``), the title above.

    Args:
        runs: run(s) or directories (sorted softmax first).
        draws: one callable per panel.
        columns: panels per row.
        size: the figure's size in inches.
        title: the first title line (default: :func:`title_of` the runs).
        subtitle: the second title line (what the panels show, how seeds are drawn).
        legend_from: the panel whose legend entries name the runs (None: no figure legend).
    """
    runs = sorted(runs_of(runs), key=run_sort_key)
    pooled = several_seeds(runs)
    rows = -(-len(draws) // columns)
    with mpl.rc_context(FONT):
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False).ravel()
        for ax, draw in zip(axes, draws, strict=False):
            draw(ax, runs, pooled)
        for ax in axes[len(draws):]:
            ax.set_axis_off()
        handles, labels = ([], []) if legend_from is None else \
            axes[legend_from].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", frameon=False,
                       ncols=min(len(labels), 5))
        spread = ("; curves: mean over seeds, band: their range; survival: seeds pooled"
                  if pooled else "")
        fig.suptitle(f"{title or title_of(runs, 'Softmax saturation')}\n{subtitle}{spread}")
    return fig


def dashboard(runs: PlotData, *, figsize: tuple[float, float] | None = None,
              tau: float = DEFAULT_TAU, max_points: int | None = 2000,
              title: str | None = None, steps: str = "log") -> Figure:
    """Six panels that tell the story of a set of runs (e.g. softmax vs alpha2 values):

    * top: the batch median of p_y with its q10-q90 band, clean and under the training
      logits, and the target-logit gradient |dL/df_y| (log scale, the late window shaded);
    * bottom: the samples' survival curves (first saturation), clean and under the training
      logits, and the noise on the target logit (the test error per epoch when no run has
      noise or a margin).

    The saturation panels have a log-scaled step axis (``steps="log"``): saturation happens in
    the first few percent of a run, which a linear axis squeezes against the left edge; the
    gradient and noise panels keep a linear one, where the late part of the run is visible.
    With several seeds per method the curves are the mean over them with their range as a band
    and the survival curves pool them. The other figures (saturated fractions, settled
    samples, the summary against alpha2 or by method, the p_y distributions, norms, gradient
    norms, learning curves) are :data:`satkit.plots.FIGURES`.

    Args:
        runs: run(s) or directories (comparison directories expand to their runs).
        figsize: inches (default :data:`DASHBOARD_SIZE`, a 16:9 slide).
        tau: the threshold drawn on the p_y panels.
        max_points: points per line (block means).
        title: the title's first line (default: data set, methods, runs and seeds).
        steps: the step axis of the saturation panels, ``"log"`` or ``"linear"``.

    Returns:
        A :class:`matplotlib.figure.Figure` (not shown; the caller saves or closes it).

    Raises:
        RunError: a run directory is missing or corrupt.
    """
    def p_y(view: str):
        return lambda ax, rs, pooled: saturation_curves(
            rs, ax=ax, saturation=view, tau=tau, max_points=max_points, aggregate=pooled,
            band_style="lines", steps=steps, legend=False)

    def first(view: str):
        return lambda ax, rs, pooled: survival(rs, ax=ax, saturation=view, pool=pooled,
                                               steps=steps, legend=False)

    runs = runs_of(runs)
    last = (lambda ax, rs, pooled: noise_curves(rs, ax=ax, max_points=max_points,
                                                legend=False)) if has_noise(runs) else \
        (lambda ax, rs, pooled: learning_curves(rs, ax=ax, legend=False))
    draws = [p_y("clean"), p_y("noisy"),
             lambda ax, rs, pooled: gradient_curves(rs, ax=ax, max_points=max_points,
                                                    aggregate=pooled, late=0.25, legend=False),
             first("clean"), first("noisy"), last]
    return compose(runs, draws, columns=3, size=figsize or DASHBOARD_SIZE, title=title,
                   subtitle="clean p_y (eval-mode logits) beside p_y of the training logits "
                            "(what the loss saw)")
