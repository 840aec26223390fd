"""A summary figure against alpha2, with seed intervals and the paper's values.

Only softmax and Noisy Softmax runs have an alpha2: the other methods of a comparison are left
out here (:func:`satkit.plots.method_comparison` draws every method).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis import paper_results, run_table, seed_summary
from satkit.analysis.paper import PAPER_BENCHMARKS, benchmark_of
from satkit.analysis.seeds import with_method_columns
from satkit.methods import NOISY, SOFTMAX
from satkit.plots._common import PlotData, get_ax, note, runs_of
from satkit.plots._common import legend as draw_legend
from satkit.plots.palette import alpha2_color

__all__ = ["alpha_sweep"]

_YLABELS = {"test_error": "test error (%)", "best_test_error": "best test error (%)",
            "onset_step": "saturation onset, clean (training step)",
            "onset_step_noisy": "saturation onset, training logits (training step)",
            "grad_target_late": "late |∂L/∂f_y| (batch mean)",
            "median_saturation_step": "median sample saturation, clean (training step)",
            "median_saturation_step_noisy":
                "median sample saturation, training logits (training step)"}
_LINTHRESH = 0.01  # alpha2 = 0 (softmax) sits on a linear stretch of a symlog axis


def _tables(data: PlotData) -> tuple[pd.DataFrame, list[str]]:
    if isinstance(data, pd.DataFrame) and {"run", "alpha2"} <= set(data.columns):
        table = data
        benchmarks = {str(d).upper() for d in table.get("dataset", [])}
    else:
        runs = runs_of(data)
        table = run_table(runs)
        benchmarks = {benchmark_of(r) for r in runs}
    table = with_method_columns(table)
    table = table[table["loss"].isin([SOFTMAX, NOISY])]
    return table, [b for b in PAPER_BENCHMARKS if b in benchmarks]


def _lines(summary: pd.DataFrame):
    """One line per data set and noise variant, each starting from its softmax baseline."""
    for dataset, rows in summary.groupby("dataset", sort=False):
        base = rows[rows["noise"] == "none"]
        variants = [n for n in rows["noise"].unique() if n != "none"] or ["none"]
        for noise in variants:
            group = rows[rows["noise"] == noise] if noise == "none" else \
                pd.concat([base, rows[rows["noise"] == noise]])
            yield dataset, noise, group.sort_values("alpha2")


def _spread(n: pd.Series, confidence: float) -> str:
    """The legend's word for the points: an interval only where there are several seeds."""
    if (n <= 1).all():
        return "one seed"
    text = f"mean ± {confidence:.0%} CI over seeds"
    return text if (n > 1).all() else f"{text} (one seed: no interval)"


def alpha_sweep(data: PlotData, *, ax: Axes | None = None, figure: str = "test_error",
                confidence: float = 0.95, paper: bool = True, seeds: bool = True,
                legend: bool = True) -> Axes:
    """One per-run figure (test error, onset, ...) against alpha2, mean and t-interval.

    The y axis starts at 0 (every figure here is non-negative), so a difference of a step or
    two is not blown up into a V; the interval across seeds shows how much of a difference
    the seeds support. With one seed per alpha2 there is no interval, and the legend says
    "one seed" rather than "mean ± CI".

    Args:
        data: run(s), directories, or a :func:`satkit.analysis.run_table` frame.
        ax: the Axes to draw on.
        figure: a run-table column: ``test_error`` (default), ``onset_step``,
            ``onset_step_noisy``, ``grad_target_late``, ``median_saturation_step``, ...
        confidence: level of the across-seed Student-t interval (error bars).
        paper: overlay the paper's errors (arXiv 1708.03769, Tables 2-4) when ``figure`` is
            a test error and the runs are on a paper benchmark (CIFAR10, CIFAR10+,
            CIFAR100).
        seeds: also draw each seed's value as a small point (only where a point has several).
        legend: draw a legend.

    Returns:
        The Axes (x: alpha2 on a symlog scale, 0 = softmax; y: the figure, from 0). Runs
        without a finite value (e.g. a run that never saturated, for ``onset_step``) are
        left out, and so are runs of other methods (label smoothing, ...), which have no
        alpha2.
    """
    ax = get_ax(ax)
    table, benchmarks = _tables(data)
    summary = seed_summary(table, figures=(figure,), confidence=confidence)
    missing = summary[summary["n"] == 0]
    summary = summary[summary["n"] > 0]
    for dataset, noise, group in _lines(summary):
        x = group["alpha2"].to_numpy()
        y = group["mean"].to_numpy()
        err = np.vstack([y - group["ci_low"].to_numpy(), group["ci_high"].to_numpy() - y])
        ax.plot(x, y, color="0.3", linewidth=1, zorder=1)
        if (group["n"] > 1).any():
            ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="none", ecolor="0.3", capsize=3)
        variant = "" if noise in ("annealed", "none") else f" ({noise})"
        ax.scatter(x, y, c=[alpha2_color(a) for a in x], s=40, zorder=3,
                   label=f"measured{variant}, {dataset}: {_spread(group['n'], confidence)}")
    if len(missing):
        values = ", ".join(f"{a:g}" for a in sorted(set(missing["alpha2"])))
        note(ax, f"no value (never reached or not recorded): α² = {values}")
    if seeds and figure in table and len(summary) and (summary["n"] > 1).any():
        ax.scatter(table["alpha2"], table[figure], s=10, color="0.55", alpha=0.7, zorder=2,
                   label="single seeds")
    if paper and figure in ("test_error", "best_test_error"):
        ref = paper_results().dropna(subset=["alpha2"]).sort_values("alpha2")
        for benchmark in benchmarks:
            rows = ref[ref["benchmark"] == benchmark]
            ax.plot(rows["alpha2"], rows["error"], "s--", color="0.5", markersize=4,
                    linewidth=1, label=f"paper, {benchmark}")
    ax.set_xscale("symlog", linthresh=_LINTHRESH)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.1)  # from 0, with room above the highest marker
    ax.set(xlabel="α² (noise variance; 0 = softmax)", ylabel=_YLABELS.get(figure, figure),
           title=f"{_YLABELS.get(figure, figure).split(' (')[0].capitalize()} vs α²")
    draw_legend(ax, legend, loc="best")
    return ax
