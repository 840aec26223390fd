"""Per-step curves of the recorder's metrics, one line per run, coloured by method / alpha2.

Every function takes ``data`` -- the tidy frame of :func:`satkit.analysis.load_runs`, a
:class:`~satkit.analysis.Run`, a list of runs, or run/comparison directories -- plus
``ax=None`` (draw on the current Axes) and returns the Axes. Runs of the same method (seeds)
share a colour and a single legend entry (see :mod:`satkit.plots.palette`). Long runs are
block-averaged to ``max_points`` points per line.

With ``aggregate=True`` the seeds of a method become one line, their mean per step bin (at
most 200 bins), with the spread across seeds as a band (:func:`seaborn.lineplot`; by default
``errorbar=("pi", 100)``, the range of the seeds: with a handful of seeds a bootstrap 95 % CI
is no narrower and far slower to compute); a method with a single seed is drawn as its line
alone, without a band.

The saturation plots take ``saturation="clean"`` (p_y of the eval-mode logits) or
``"noisy"`` (p_y of the training logits, see :mod:`satkit.analysis.views`). A run that did
not record the chosen view is left out, and the panel says so in a note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis.views import check_view
from satkit.plots._common import (
    PlotData,
    RunSeries,
    as_series,
    get_ax,
    labelled_once,
    note,
    sort_key,
    step_axis,
    view_text,
)
from satkit.plots._common import legend as draw_legend
from satkit.schema import DEFAULT_TAU, view_column
from satkit.validation import check_choice

__all__ = ["feature_norms", "gradient_curves", "noise_curves", "saturated_fraction",
           "saturation_curves"]

ErrorBar = str | tuple[str, float] | None
_AGGREGATE_POINTS = 200  # step bins of an aggregated curve: seaborn's interval is per bin


def _draw(series: RunSeries, column: str, ax: Axes, *, linestyle: str | None = None,
          label_suffix: str = "", **kwargs):
    style = series.style()
    label = labelled_once(ax, style["label"] + label_suffix)
    return ax.plot(series.frame["step"], series.frame[column], color=style["color"],
                   linestyle=linestyle or style["linestyle"], label=label, **kwargs)


def _each(data: PlotData, columns: Sequence[str], max_points: int | None) -> list[RunSeries]:
    return sorted((s for s in as_series(data, columns, max_points) if columns[0] in s.frame),
                  key=sort_key)


def _methods(series: list[RunSeries]) -> list[list[RunSeries]]:
    """The series grouped by method (legend label), in legend order."""
    groups: dict[str, list[RunSeries]] = {}
    for s in series:
        groups.setdefault(s.style()["label"], []).append(s)
    return list(groups.values())


def _binned(group: list[RunSeries], column: str, max_points: int | None) -> pd.DataFrame:
    """``step, value, run``: each run's mean per common step bin, so seeds share x values."""
    steps = np.concatenate([s.frame["step"].to_numpy(dtype="float64") for s in group])
    distinct = np.unique(steps)
    if max_points is None or distinct.size <= max_points:
        centres = distinct
        index = [np.searchsorted(distinct, s.frame["step"].to_numpy(dtype="float64"))
                 for s in group]
    else:
        edges = np.linspace(distinct[0], distinct[-1], max_points + 1)
        centres = (edges[1:] + edges[:-1]) / 2
        index = [np.clip(np.searchsorted(edges, s.frame["step"].to_numpy(dtype="float64"),
                                         side="right") - 1, 0, max_points - 1) for s in group]
    frames = [pd.DataFrame({"bin": i, "value": s.frame[column].to_numpy(dtype="float64"),
                            "run": s.name}).groupby(["run", "bin"], as_index=False).mean()
              for s, i in zip(group, index, strict=True)]
    out = pd.concat(frames, ignore_index=True)
    out["step"] = centres[out["bin"].to_numpy()]
    return out


def _with_column(data: PlotData, column: str, extra: Sequence[str],
                 max_points: int | None) -> tuple[list[RunSeries], int]:
    """The runs that have ``column`` (legend order), and how many runs ``data`` holds."""
    series = as_series(data, list(dict.fromkeys([column, *extra])), max_points)
    total = data["run"].nunique() if isinstance(data, pd.DataFrame) else len(series)
    return sorted((s for s in series if column in s.frame), key=sort_key), total


def _draw_methods(data: PlotData, column: str, ax: Axes, *, max_points: int | None,
                  aggregate: bool, errorbar: ErrorBar, extra: Sequence[str] = (),
                  **kwargs) -> tuple[list[RunSeries], int]:
    """One line per run, or (``aggregate``) per method with its across-seed band; returns
    the runs drawn and the number of runs in ``data``."""
    series, total = _with_column(data, column, extra, None if aggregate else max_points)
    if not aggregate:
        for s in series:
            _draw(s, column, ax, **kwargs)
        return series, total
    import seaborn as sns  # lazily: importing satkit.plots does not import seaborn

    for group in _methods(series):
        style = group[0].style()
        points = _AGGREGATE_POINTS if max_points is None else min(max_points, _AGGREGATE_POINTS)
        sns.lineplot(data=_binned(group, column, points), x="step", y="value", ax=ax,
                     color=style["color"], linestyle=style["linestyle"],
                     label=labelled_once(ax, style["label"]),
                     errorbar=errorbar if len(group) > 1 else None, **kwargs)
    return series, total


def _missing_note(ax: Axes, drawn: int, total: int) -> None:
    if drawn < total:
        note(ax, f"not recorded by {total - drawn} of {total} run(s)")


def _legend(ax: Axes, show: bool) -> None:
    if not show and ax.get_legend() is not None:
        ax.get_legend().remove()  # seaborn adds one on its own
    draw_legend(ax, show, loc="best")


def saturation_curves(data: PlotData, *, ax: Axes | None = None, saturation: str = "clean",
                      stat: str = "p_target_median",
                      band: tuple[str, str] | None = ("p_target_q10", "p_target_q90"),
                      tau: float | None = DEFAULT_TAU, max_points: int | None = 2000,
                      aggregate: bool = False, errorbar: ErrorBar = ("pi", 100),
                      band_style: str = "fill", steps: str = "linear",
                      legend: bool = True) -> Axes:
    """Target probability over training: early vs postponed saturation at a glance.

    By default the batch median, whose crossing of ``tau`` is the run's onset step
    (:func:`satkit.analysis.onset_step`), with the batch's q10-q90 band.

    Args:
        data: tidy frame, run(s) or directories (see the module docstring).
        ax: the Axes to draw on (default: the current one).
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        stat: the per-step statistic drawn as a line, named as in the clean view
            (``p_target_median``, the default, or ``p_target_mean``); the view maps it to its
            column.
        band: two columns (clean naming) bounding a band per run (default the batch
            q10-q90), or None. Not drawn with ``aggregate``, whose band is across seeds.
        band_style: ``"fill"`` (a shaded band) or ``"lines"`` (its two edges as thin dotted
            lines of the run's colour: several runs stay apart).
        tau: draw the saturation threshold as a dotted line (None: don't).
        max_points: at most this many points per line (block means).
        aggregate: one line per method, the mean over its seeds with their interval band
            (see the module docstring).
        errorbar: seaborn's band across seeds for ``aggregate``: ``("pi", 100)`` (default,
            the range of the seeds), ``("ci", 95)`` (bootstrap interval of the mean),
            ``"sd"``, or None.
        steps: the step axis, ``"linear"`` or ``"log"`` (see
            :data:`satkit.plots._common.STEP_SCALES`).
        legend: draw a legend naming each method.

    Returns:
        The Axes (x: training step, y: p_y of the view, 0 to 1).

    Raises:
        ValueError: a bad ``saturation``.
    """
    ax = get_ax(ax)
    check_view(saturation)
    column = view_column(stat, saturation)
    band = None if band is None else tuple(view_column(c, saturation) for c in band)
    drawn, total = _draw_methods(data, column, ax, max_points=max_points, aggregate=aggregate,
                                 errorbar=errorbar, extra=band or (), linewidth=1.5)
    check_choice("band_style", band_style, ("fill", "lines"))
    if band and not aggregate:
        for s in drawn:
            if not all(c in s.frame for c in band):
                continue
            if band_style == "fill":
                ax.fill_between(s.frame["step"], s.frame[band[0]], s.frame[band[1]],
                                color=s.style()["color"], alpha=0.12, linewidth=0)
            else:
                for column in band:
                    ax.plot(s.frame["step"], s.frame[column], color=s.style()["color"],
                            linestyle=":", linewidth=1.0, alpha=0.8, label="_nolegend_")
    _missing_note(ax, len(drawn), total)
    if tau is not None:
        ax.axhline(tau, color="0.5", linestyle="--", linewidth=0.9, label=f"τ = {tau:g}")
    what = "dotted: q10 and q90" if band_style == "lines" else "band: q10–q90"
    spread = f" (seed mean; {_errorbar_text(errorbar)})" if aggregate else \
        (f" ({what})" if band else "")
    ax.set(ylim=(0, 1.02),
           ylabel=f"{view_text(saturation)}, batch {stat.removeprefix('p_target_')}",
           title=f"Saturation, {view_text(saturation)}{spread.replace(' (', ', ', 1)[:-1]}"
           if spread else f"Saturation, {view_text(saturation)}")
    step_axis(ax, steps)
    _legend(ax, legend)
    return ax


def _errorbar_text(errorbar: ErrorBar) -> str:
    """What the band of an aggregated curve is: ``"band: range of seeds"``, ..."""
    if errorbar is None:
        return "no band"
    if isinstance(errorbar, tuple):
        kind, level = errorbar
        if kind == "pi":
            return "band: range of seeds" if level == 100 else f"band: central {level:g}% of seeds"
        return f"band: {level:g}% CI" if kind == "ci" else f"band: {kind} {level:g}"
    return f"band: {errorbar}"


def gradient_curves(data: PlotData, *, ax: Axes | None = None,
                    column: str = "grad_target_mean", max_points: int | None = 2000,
                    aggregate: bool = False, errorbar: ErrorBar = ("pi", 100),
                    late: float | None = None, steps: str = "linear",
                    legend: bool = True) -> Axes:
    """Mean target-logit gradient |dL/df_y| over training, log scale: dying vs flowing.

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        column: the gradient column (``grad_target_mean``, ``grad_logits_norm_mean``,
            ``grad_features_norm_mean``, ``grad_weight_norm``).
        max_points: at most this many points per line.
        aggregate, errorbar: one line per method with its across-seed band (see
            :func:`saturation_curves`).
        late: shade the last ``late`` fraction of the steps, the window of the summary's late
            gradient (``0.25``: ``grad_target_late``, the last quarter); None: no shading.
        steps: the step axis, ``"linear"`` or ``"log"``.
        legend: draw a legend naming each method.

    Returns:
        The Axes (log y; non-positive values are not drawn).
    """
    ax = get_ax(ax)
    drawn, _ = _draw_methods(data, column, ax, max_points=max_points, aggregate=aggregate,
                             errorbar=errorbar, linewidth=1.5)
    if late is not None and drawn:
        last = max(float(s.frame["step"].max()) for s in drawn)
        ax.axvspan(last * (1 - late), last, color="0.9", zorder=0, linewidth=0)
        ax.text(last * (1 - late / 2), 0.98, f"late: last {late:.0%}", ha="center", va="top",
                transform=ax.get_xaxis_transform(), fontsize="x-small", color="0.35")
    names = {"grad_target_mean": "|∂L/∂f_y| (batch mean)",
             "grad_logits_norm_mean": "||∂L/∂f|| (batch mean)",
             "grad_features_norm_mean": "||∂L/∂X|| (batch mean)",
             "grad_weight_norm": "||∂L/∂W|| of the head"}
    titles = {"grad_target_mean": "Gradient on the target logit",
              "grad_logits_norm_mean": "Gradient on all logits",
              "grad_features_norm_mean": "Gradient sent back into the network",
              "grad_weight_norm": "Gradient on the class weights"}
    ax.set(ylabel=names.get(column, column) + ", log scale", yscale="log",
           title=titles.get(column, column))
    step_axis(ax, steps)
    _legend(ax, legend)
    return ax


def noise_curves(data: PlotData, *, ax: Axes | None = None, column: str = "noise_mean",
                 max_points: int | None = 2000, steps: str = "linear",
                 legend: bool = True) -> Axes:
    """Mean noise subtracted from the target logit over training (its annealing).

    Args:
        data: tidy frame, run(s) or directories; softmax runs draw a flat zero line.
        ax: the Axes to draw on.
        column: ``noise_mean`` or ``noise_max``.
        max_points: at most this many points per line.
        steps: the step axis, ``"linear"`` or ``"log"``.
        legend: draw a legend naming each method.

    Returns:
        The Axes (y: noise in logit units).
    """
    ax = get_ax(ax)
    for s in _each(data, [column], max_points):
        _draw(s, column, ax, linewidth=1.5)
    ax.set(ylabel=f"noise on f_y, batch {column.removeprefix('noise_')} (logit units)",
           title="Noise on the target logit (annealing)")
    step_axis(ax, steps)
    if ax.get_ylim()[0] > 0:  # anchor at zero, but keep the "negative" family's noise visible
        ax.set_ylim(bottom=0)
    _legend(ax, legend)
    return ax


_THRESHOLD_STYLES = ("-", "--", ":", "-.")
_THRESHOLD_COLUMN = re.compile(r"saturated_frac_(noisy_)?(\d*\.?\d+(?:e-?\d+)?)")


def saturated_fraction(data: PlotData, *, ax: Axes | None = None, saturation: str = "clean",
                       thresholds: Sequence[float] | None = None,
                       max_points: int | None = 2000, steps: str = "linear",
                       legend: bool = True) -> Axes:
    """Fraction of the batch whose p_y is at or above each threshold, over training.

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        thresholds: which thresholds to draw (``saturated_frac_<tau>`` columns, or
            ``saturated_frac_noisy_<tau>``; default: all present, e.g. 0.9 and 0.99).
            Colour = method; line style = threshold (highest solid).
        max_points: at most this many points per line.
        steps: the step axis, ``"linear"`` or ``"log"``.
        legend: draw a legend naming each method and threshold.

    Returns:
        The Axes (y: fraction of batch, 0 to 1).

    Raises:
        ValueError: a bad ``saturation``.
    """
    ax = get_ax(ax)
    check_view(saturation)
    if thresholds:
        columns = [view_column(f"saturated_frac_{t:g}", saturation) for t in thresholds]
    else:
        columns = _threshold_columns(data, saturation)
    if columns:
        series, total = _with_column(data, columns[-1], columns, max_points)
    else:  # no run recorded this view
        series, total = [], _run_count(data)
    for s in series:
        for k, column in enumerate(reversed(columns)):
            if column in s.frame:
                tau = _THRESHOLD_COLUMN.fullmatch(column).group(2)
                _draw(s, column, ax, linestyle=_THRESHOLD_STYLES[k % 4],
                      label_suffix=f", p_y ≥ {tau}", linewidth=1.3)
    _missing_note(ax, len(series), total)
    ax.set(ylabel=f"fraction of batch with {view_text(saturation)} ≥ τ",
           ylim=(-0.02, 1.02), title=f"Saturated fraction of the batch, {view_text(saturation)}")
    step_axis(ax, steps)
    _legend(ax, legend)
    return ax


def _run_count(data: PlotData) -> int:
    if isinstance(data, pd.DataFrame):
        return data["run"].nunique() if "run" in data else 0
    from satkit.plots._common import runs_of

    return len(runs_of(data))


def _threshold_columns(data: PlotData, saturation: str) -> list[str]:
    """The view's ``saturated_frac_<tau>`` columns of ``data``, by increasing tau."""
    if isinstance(data, pd.DataFrame) and "metric" in data:
        names = {str(c) for c in data["metric"].astype(str).unique()}
    else:
        from satkit.plots._common import runs_of

        names = {c for run in runs_of(data) for c in run.metrics.columns}
    found = [(m, c) for c in names if (m := _THRESHOLD_COLUMN.fullmatch(c))
             and bool(m.group(1)) == (saturation == "noisy")]
    return [c for m, c in sorted(found, key=lambda mc: float(mc[0].group(2)))]


def feature_norms(data: PlotData, *, ax: Axes | None = None, max_points: int | None = 2000,
                  steps: str = "linear", legend: bool = True) -> Axes:
    """Feature norm ||X|| (solid) and target weight norm ||W_y|| (dashed) over training.

    A collapse of both towards 0 is a known failure of Noisy Softmax without normalisation
    layers: shrinking the norms is the cheapest way to shrink the noise of Eq. 5
    (arXiv 1708.03769), which scales with ||W_y|| ||X||.

    Args:
        data: tidy frame, run(s) or directories.
        ax: the Axes to draw on.
        max_points: at most this many points per line.
        steps: the step axis, ``"linear"`` or ``"log"``.
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
    ax.set(ylabel="norm (batch mean), log scale", yscale="log",
           title="Feature and class-weight norms")
    step_axis(ax, steps)
    _legend(ax, legend)
    return ax
