"""Per-step curves of the recorder's metrics, one line per run, coloured by method / alpha2.

Every function takes ``data`` -- the tidy frame of :func:`satkit.analysis.load_runs`, a
:class:`~satkit.analysis.Run`, a list of runs, or run/comparison directories -- plus
``ax=None`` (draw on the current Axes) and returns the Axes. Runs of the same method (seeds)
share a colour and a single legend entry (see :mod:`satkit.plots.palette`). Long runs are
block-averaged to ``max_points`` points per line.
"""

from __future__ import annotations

from collections.abc import Sequence

from satkit.plots._common import STEP_LABEL, as_series, get_ax, labelled_once, sort_key
from satkit.plots._common import legend as draw_legend

__all__ = ["feature_norms", "gradient_curves", "noise_curves", "saturated_fraction",
           "saturation_curves"]


def _draw(series, column: str, ax, *, linestyle=None, label_suffix: str = "", **kwargs):
    style = series.style()
    label = labelled_once(ax, style["label"] + label_suffix)
    return ax.plot(series.frame["step"], series.frame[column], color=style["color"],
                   linestyle=linestyle or style["linestyle"], label=label, **kwargs)


def _each(data, columns: Sequence[str], max_points):
    return sorted((s for s in as_series(data, columns, max_points) if columns[0] in s.frame),
                  key=sort_key)


def saturation_curves(data, *, ax=None, stat: str = "p_target_mean",
                      band: tuple[str, str] | None = ("p_target_q10", "p_target_q90"),
                      tau: float | None = 0.99, max_points: int | None = 2000,
                      legend: bool = True):
    """Clean target probability over training: early vs postponed saturation at a glance.

    Args:
        data: tidy frame, run(s) or directories (see the module docstring).
        ax: the Axes to draw on (default: the current one).
        stat: the per-step statistic drawn as a line (``p_target_mean``, ``p_target_median``).
        band: two columns bounding a shaded band (default the batch q10-q90), or None.
        tau: draw the saturation threshold as a dotted line (None: don't).
        max_points: at most this many points per line (block means).
        legend: draw a legend naming each method.

    Returns:
        The Axes (x: training step, y: p_y (clean), 0 to 1).
    """
    ax = get_ax(ax)
    for s in _each(data, [stat, *(band or ())], max_points):
        (line,) = _draw(s, stat, ax, linewidth=1.5)
        if band and all(c in s.frame for c in band):
            ax.fill_between(s.frame["step"], s.frame[band[0]], s.frame[band[1]],
                            color=line.get_color(), alpha=0.12, linewidth=0)
    if tau is not None:
        ax.axhline(tau, color="0.4", linestyle=":", linewidth=1, label=f"τ = {tau:g}")
    ax.set(xlabel=STEP_LABEL, ylabel=f"p_y (clean), {stat.removeprefix('p_target_')}"
           + (" with q10–q90" if band else ""), ylim=(0, 1.02), title="Saturation")
    _legend(ax, legend)
    return ax


def _legend(ax, show: bool) -> None:
    draw_legend(ax, show, loc="best")


def gradient_curves(data, *, ax=None, column: str = "grad_target_mean",
                    max_points: int | None = 2000, legend: bool = True):
    """Mean target-logit gradient |dL/df_y| over training, log scale: dying vs flowing.

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        column: the gradient column (``grad_target_mean``, ``grad_logits_norm_mean``,
            ``grad_features_norm_mean``, ``grad_weight_norm``).
        max_points: at most this many points per line.
        legend: draw a legend naming each method.

    Returns:
        The Axes (log y; non-positive values are not drawn).
    """
    ax = get_ax(ax)
    for s in _each(data, [column], max_points):
        _draw(s, column, ax, linewidth=1.5)
    ylabel = "|∂L/∂f_y| (batch mean)" if column == "grad_target_mean" else column
    ax.set(xlabel=STEP_LABEL, ylabel=ylabel + ", log scale", yscale="log",
           title="Gradient on the target logit")
    _legend(ax, legend)
    return ax


def noise_curves(data, *, ax=None, column: str = "noise_mean", max_points: int | None = 2000,
                 legend: bool = True):
    """Mean noise subtracted from the target logit over training (its annealing).

    Args:
        data: tidy frame, run(s) or directories; softmax runs draw a flat zero line.
        ax: the Axes to draw on.
        column: ``noise_mean`` or ``noise_max``.
        max_points: at most this many points per line.
        legend: draw a legend naming each method.

    Returns:
        The Axes (y: noise in logit units).
    """
    ax = get_ax(ax)
    for s in _each(data, [column], max_points):
        _draw(s, column, ax, linewidth=1.5)
    ax.set(xlabel=STEP_LABEL, ylabel=f"noise on f_y, {column.removeprefix('noise_')} (logit units)",
           title="Noise (annealing)")
    if ax.get_ylim()[0] > 0:  # anchor at zero, but keep the "negative" family's noise visible
        ax.set_ylim(bottom=0)
    _legend(ax, legend)
    return ax


_THRESHOLD_STYLES = ("-", "--", ":", "-.")


def saturated_fraction(data, *, ax=None, thresholds: Sequence[float] | None = None,
                       max_points: int | None = 2000, legend: bool = True):
    """Fraction of the batch whose clean p_y is at or above each threshold, over training.

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        thresholds: which ``saturated_frac_<tau>`` columns to draw (default: all present,
            e.g. 0.9 and 0.99). Colour = method; line style = threshold (highest solid).
        max_points: at most this many points per line.
        legend: draw a legend naming each method and threshold.

    Returns:
        The Axes (y: fraction of batch, 0 to 1).
    """
    ax = get_ax(ax)
    candidates = [f"saturated_frac_{t:g}" for t in thresholds] if thresholds else None
    series = as_series(data, candidates or _threshold_columns(data), max_points)
    columns = candidates or sorted({c for s in series for c in s.frame if _is_threshold(c)},
                                   key=lambda c: float(c.rsplit("_", 1)[1]))
    for s in sorted(series, key=sort_key):
        for k, column in enumerate(reversed(columns)):
            if column in s.frame:
                tau = column.rsplit("_", 1)[1]
                _draw(s, column, ax, linestyle=_THRESHOLD_STYLES[k % 4],
                      label_suffix=f", p_y ≥ {tau}", linewidth=1.3)
    ax.set(xlabel=STEP_LABEL, ylabel="fraction of batch with p_y ≥ τ", ylim=(-0.02, 1.02),
           title="Saturated fraction of the batch")
    _legend(ax, legend)
    return ax


def _threshold_columns(data) -> list[str]:
    import pandas as pd

    if isinstance(data, pd.DataFrame) and "metric" in data:
        names = data["metric"].astype(str).unique()
    else:
        from satkit.plots._common import runs_of

        names = {c for run in runs_of(data) for c in run.metrics.columns}
    return [c for c in names if _is_threshold(str(c))]


def _is_threshold(column: str) -> bool:
    """``saturated_frac_<tau>`` of the clean view (not the ``_noisy`` ones)."""
    head, _, tau = column.rpartition("_")
    return head == "saturated_frac" and tau.replace(".", "", 1).isdigit()


def feature_norms(data, *, ax=None, max_points: int | None = 2000, legend: bool = True):
    """Feature norm ||X|| (solid) and target weight norm ||W_y|| (dashed) over training.

    A collapse of both towards 0 is the failure of PAPER.md section 7 (Noisy Softmax without
    normalisation shrinks the norms to shrink the noise).

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        max_points: at most this many points per line.
        legend: draw a legend naming each method and norm.

    Returns:
        The Axes (log y).
    """
    ax = get_ax(ax)
    columns = ["feature_norm_mean", "weight_norm_target_mean"]
    for s in sorted(as_series(data, columns, max_points), key=sort_key):
        if columns[0] in s.frame:
            _draw(s, columns[0], ax, linestyle="-", label_suffix=", ||X||", linewidth=1.5)
        if columns[1] in s.frame:
            _draw(s, columns[1], ax, linestyle="--", label_suffix=", ||W_y||", linewidth=1.2)
    ax.set(xlabel=STEP_LABEL, ylabel="norm (batch mean), log scale", yscale="log",
           title="Feature and class-weight norms")
    _legend(ax, legend)
    return ax
