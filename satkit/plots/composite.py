"""The dashboard: one figure composing every plot (what ``satkit plot`` saves)."""

from __future__ import annotations

from satkit.analysis import has_several_methods
from satkit.plots._common import run_sort_key, runs_of
from satkit.plots.curves import (
    feature_norms,
    gradient_curves,
    noise_curves,
    saturated_fraction,
    saturation_curves,
)
from satkit.plots.distribution import p_target_heatmap
from satkit.plots.methods import method_comparison
from satkit.plots.survival_curves import survival
from satkit.plots.sweep import alpha_sweep

__all__ = ["dashboard"]


def _heatmap_runs(runs):
    """The softmax run and, of the same seed if possible, the noisiest Noisy Softmax run
    (else the first other method; else the first two runs)."""
    ordered = sorted(runs, key=lambda r: (r.seed or 0, *run_sort_key(r)))
    soft = next((r for r in ordered if r.loss == "softmax"), ordered[0])
    others = [r for r in ordered if r is not soft and r.seed == soft.seed] or \
        [r for r in ordered if r is not soft]
    noisy = [r for r in others if r.loss == "noisy"]
    if noisy:
        return soft, max(noisy, key=lambda r: r.alpha2)
    return soft, others[0] if others else None


def dashboard(runs, *, figsize: tuple[float, float] = (22, 14), tau: float = 0.99,
              max_points: int | None = 2000, title: str | None = None):
    """One figure with every satkit plot, for a set of runs (e.g. softmax vs alpha2 values).

    Layout (3 x 4): saturation curves, saturated fraction, survival, p_y heatmap (softmax);
    gradient, noise, norms, p_y heatmap (largest alpha2 of the same seed, else another
    method); test error, onset and late gradient against alpha2 -- or, when the runs hold
    regularisers besides softmax / Noisy Softmax, per method
    (:func:`satkit.plots.method_comparison`) -- and a shared legend.

    Args:
        runs: run(s) or directories (comparison directories expand to their runs).
        figsize: inches.
        tau: the threshold drawn on the saturation curves.
        max_points: points per line (block means).
        title: figure title (default: the data set(s) and number of runs).

    Returns:
        A :class:`matplotlib.figure.Figure` (not shown; the caller saves or closes it).

    Raises:
        RunError: a run directory is missing or corrupt.
    """
    from matplotlib.figure import Figure

    runs = runs_of(runs)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(3, 4)
    common = {"max_points": max_points, "legend": False}
    saturation_curves(runs, ax=axes[0, 0], tau=tau, **common)
    saturated_fraction(runs, ax=axes[0, 1], legend=True, max_points=max_points)
    survival(runs, ax=axes[0, 2], legend=False)
    gradient_curves(runs, ax=axes[1, 0], **common)
    noise_curves(runs, ax=axes[1, 1], **common)
    feature_norms(runs, ax=axes[1, 2], legend=True, max_points=max_points)
    soft, noisy = _heatmap_runs(runs)
    p_target_heatmap([soft], ax=axes[0, 3])
    if noisy is not None:
        p_target_heatmap([noisy], ax=axes[1, 3])
    else:
        axes[1, 3].set_axis_off()
    by_method = has_several_methods(runs)
    for ax, figure in zip(axes[2, :3], ("test_error", "onset_step", "grad_target_late"),
                          strict=True):
        if by_method:
            method_comparison(runs, ax=ax, figure=figure)
        else:
            alpha_sweep(runs, ax=ax, figure=figure, legend=figure == "test_error")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    axes[2, 3].set_axis_off()
    axes[2, 3].legend(handles, labels, loc="center", frameon=False, title="runs")
    datasets = sorted({r.dataset for r in runs if r.dataset})
    fig.suptitle(title or f"satkit: {', '.join(datasets) or 'runs'} — {len(runs)} run(s)",
                 fontsize="x-large")
    return fig
