"""The dashboard: one figure composing the plots (what ``satkit plot`` and every run save)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from satkit.analysis import Run, has_several_methods, run_table
from satkit.analysis.views import VIEWS
from satkit.plots._common import PlotData, run_sort_key, runs_of
from satkit.plots.curves import feature_norms, gradient_curves, noise_curves, saturation_curves
from satkit.plots.distribution import p_target_heatmap
from satkit.plots.methods import method_comparison
from satkit.plots.reliability import reliability
from satkit.plots.survival_curves import survival
from satkit.plots.sweep import alpha_sweep
from satkit.schema import DEFAULT_TAU

__all__ = ["dashboard"]

_COLUMNS = 4
_ROW_HEIGHT = 4.2
_SUMMARY_FIGURES = ("test_error", "onset_step", "onset_step_noisy", "grad_target_late")


def _has_noise(runs: list[Run]) -> bool:
    """Whether some run subtracted a noise (or margin) from its target logit."""
    for run in runs:
        if "noise_mean" in run.metrics:
            values = run.metrics["noise_mean"].to_numpy(dtype="float64", na_value=np.nan)
            if np.any(np.isfinite(values) & (values != 0)):
                return True
    return False


def _several_seeds(runs: list[Run]) -> bool:
    labels = [(r.dataset, r.label) for r in runs]
    return len(set(labels)) < len(labels)


def _summary_row(runs: list[Run]) -> str | None:
    """``"methods"``, ``"alpha2"`` or None: which per-method summary row means something
    (None for a single method: one point per panel says nothing)."""
    if has_several_methods(runs):
        return "methods"
    sweep = {(r.dataset, r.noise, r.alpha2) for r in runs if r.loss in ("softmax", "noisy")}
    return "alpha2" if len(sweep) > 1 else None


def _title(runs: list[Run], pooled: bool) -> str:
    datasets = ", ".join(sorted({r.dataset for r in runs if r.dataset})) or "runs"
    methods = list(dict.fromkeys(r.label for r in sorted(runs, key=run_sort_key)))
    named = ", ".join(methods) if len(methods) <= 4 else f"{len(methods)} methods"
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} seeds" if seeds \
        else "seed unknown"
    spread = ("curves: mean over seeds, band: their range; survival: seeds pooled" if pooled
              else "one curve per run")
    return (f"Softmax saturation on {datasets}: {named} ({len(runs)} run(s), {seed_text})\n"
            f"clean p_y (eval-mode logits) beside p_y of the training logits (what the loss "
            f"saw); {spread}")


def dashboard(runs: PlotData, *, figsize: tuple[float, float] | None = None,
              tau: float = DEFAULT_TAU, max_points: int | None = 2000,
              title: str | None = None) -> Figure:
    """One figure with the satkit plots of a set of runs (e.g. softmax vs alpha2 values).

    Four panels a row:

    1. saturation in both views side by side: p_y over training (clean, training logits)
       and the samples' survival curves (clean, training logits);
    2. only with more than one method (or alpha2): test error, onset (clean), onset
       (training logits) and late gradient per method (:func:`satkit.plots.method_comparison`)
       or against alpha2 (:func:`satkit.plots.alpha_sweep`);
    3. then, flowing on: the target-logit gradient, the noise (only when some run has noise
       or a margin), the feature / weight norms, the clean p_y heatmap of every run and the
       reliability diagram of every method that kept test predictions
       (:func:`satkit.plots.reliability`, seeds pooled).

    When a method has several seeds its curves are the mean over them with their range as a
    band and its survival curve pools them; otherwise each run is its own curve. One legend
    for the figure, below it; the title says what is shown.

    Args:
        runs: run(s) or directories (comparison directories expand to their runs).
        figsize: inches (default: 22 wide, 4.2 per row).
        tau: the threshold drawn on the saturation curves and of the onsets.
        max_points: points per line (block means).
        title: figure title (default: data set, methods, runs and seeds, and the views).

    Returns:
        A :class:`matplotlib.figure.Figure` (not shown; the caller saves or closes it).

    Raises:
        RunError: a run directory is missing or corrupt.
    """
    runs = sorted(runs_of(runs), key=run_sort_key)
    pooled = _several_seeds(runs)
    summary = _summary_row(runs)
    flowing = [lambda ax: gradient_curves(runs, ax=ax, max_points=max_points,
                                          aggregate=pooled, legend=False)]
    if _has_noise(runs):
        flowing.append(lambda ax: noise_curves(runs, ax=ax, max_points=max_points,
                                               legend=False))
    flowing.append(lambda ax: feature_norms(runs, ax=ax, max_points=max_points, legend=True))
    flowing += [(lambda ax, r=run: p_target_heatmap([r], ax=ax)) for run in runs]
    flowing += [(lambda ax, m=members, t=f"Reliability: {label}": reliability(m, ax=ax, title=t))
                for label, members in _predicted(runs).items()]
    top = 1 + (summary is not None)
    rows = top + math.ceil(len(flowing) / _COLUMNS)
    fig = Figure(figsize=figsize or (22, _ROW_HEIGHT * rows), layout="constrained")
    axes = fig.subplots(rows, _COLUMNS, squeeze=False)
    for k, view in enumerate(VIEWS):
        saturation_curves(runs, ax=axes[0, k], saturation=view, tau=tau, max_points=max_points,
                          aggregate=pooled, legend=False)
        survival(runs, ax=axes[0, 2 + k], saturation=view, pool=pooled, legend=False)
    if summary is not None:
        table = run_table(runs, tau=tau)
        # the test-error sweep takes the runs: it tells CIFAR10 from CIFAR10+ for the paper
        _fill(axes[1], [
            (lambda ax, f=figure: method_comparison(table, ax=ax, figure=f))
            if summary == "methods" else
            (lambda ax, f=figure: alpha_sweep(runs if f == "test_error" else table, ax=ax,
                                              figure=f, legend=f == "test_error"))
            for figure in _SUMMARY_FIGURES])
    _fill(axes[top:].ravel(), flowing)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", frameon=False,
                   ncols=min(len(labels), 6), title="runs")
    fig.suptitle(title or _title(runs, pooled), fontsize="x-large")
    return fig


def _predicted(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs that kept test predictions, by method (their seeds pooled in one diagram)."""
    several = len({r.dataset for r in runs}) > 1
    methods: dict[str, list[Run]] = {}
    for run in runs:
        if not run.test_predictions.empty:
            label = f"{run.label}, {run.dataset}" if several else run.label
            methods.setdefault(label, []).append(run)
    return methods


def _fill(axes, draws: list) -> list[Axes]:
    """Draw ``draws[i](axes[i])``; axes left over are switched off."""
    for ax, draw in zip(axes, draws, strict=False):
        draw(ax)
    for ax in list(axes)[len(draws):]:
        ax.set_axis_off()
    return list(axes)
