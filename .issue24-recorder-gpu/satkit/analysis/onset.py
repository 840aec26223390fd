"""When does softmax saturate, and how much later does Noisy Softmax? (arXiv 1708.03769)

Definitions used throughout satkit:

* **onset step**: the first recorded step at which a batch statistic of the target
  probability (default: the batch median, ``p_target_median``), smoothed by a trailing rolling
  mean over ``window`` recorded rows, reaches ``tau`` (default
  :data:`satkit.schema.DEFAULT_TAU`). In the ``"clean"`` view p_y is that of the eval-mode
  logits; in the ``"noisy"`` view that of the logits the loss was computed on (see
  :mod:`satkit.analysis.views`). The default ``window=1`` is the raw definition; use a
  ``window`` of 5-20 for small, noisy batches.
* **windows** over a run: ``late=0.25`` means the last 25 % of the recorded step range,
  ``early=0.1`` the first 10 %; a pair ``(start, stop)`` is an explicit, inclusive step
  interval. For two runs the window is taken on the *shorter* run's step range, so both are
  averaged over the same steps.
"""

from __future__ import annotations

import math

import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.runs import Run
from satkit.analysis.survival_analysis import median_time_to_saturation
from satkit.analysis.views import check_event, check_view, require_column
from satkit.schema import DEFAULT_TAU, view_column
from satkit.validation import check_int, check_real

__all__ = ["onset_step", "postponement", "step_window", "window_mean"]

Window = float | tuple[int, int]


def _metrics(run_or_metrics: Run | pd.DataFrame) -> pd.DataFrame:
    return run_or_metrics.metrics if isinstance(run_or_metrics, Run) else run_or_metrics


def _column(metrics: Run | pd.DataFrame, name: str) -> pd.Series:
    path = metrics.path / "metrics.parquet" if isinstance(metrics, Run) else None
    return require_column(_metrics(metrics), name, "metrics", path)


def _stat_column(stat: str, saturation: str) -> str:
    if "noisy" in stat:
        raise ValueError(f"stat is named as in the clean view (e.g. 'p_target_median') and "
                         f"saturation picks the view; got stat={stat!r}")
    return view_column(stat, check_view(saturation))


def onset_step(metrics: Run | pd.DataFrame, tau: float = DEFAULT_TAU, *,
               saturation: str = "clean", stat: str = "p_target_median",
               window: int = 1) -> int | None:
    """First step at which the smoothed batch statistic of p_y reaches ``tau``.

    Args:
        metrics: a metrics table (``step`` and the statistic's column) or a :class:`Run`.
        tau: the saturation threshold on p_y, in (0, 1].
        saturation: the view, ``"clean"`` or ``"noisy"`` (see :mod:`satkit.analysis.views`).
        stat: the statistic, named as in the clean view (``p_target_median``,
            ``p_target_mean``, ``p_target_q10``, ``p_target_q90``); the view maps it to its
            column (``p_target_median`` -> ``p_target_noisy_median``).
        window: trailing rolling-mean window in *recorded rows* (1 = no smoothing, the
            default; rows where the statistic is NaN are skipped within a window).

    Returns:
        The step (int), or None when the statistic never reaches tau or the table is empty.

    Raises:
        RunError: the view's column or ``step`` is missing (a run recorded before the noisy
            view existed has no ``p_target_noisy_median``).
        ValueError: a bad ``tau``, ``window`` or ``saturation``; a ``stat`` in noisy naming.

    Example:
        >>> m = pd.DataFrame({"step": [0, 10, 20, 30], "p_target_median": [.5, .995, .9, .999],
        ...                   "p_target_noisy_median": [.3, .8, .9, .995]})
        >>> onset_step(m), onset_step(m, window=2), onset_step(m, saturation="noisy")
        (10, None, 30)
    """
    tau = check_real("tau", tau, lo=0.0, hi=1.0, lo_open=True)
    window = check_int("window", window, minimum=1)
    values = _column(metrics, _stat_column(stat, saturation))
    steps = _column(metrics, "step")
    if len(steps) == 0:
        return None
    if not steps.is_monotonic_increasing:
        order = steps.argsort(kind="stable")
        values, steps = values.iloc[order], steps.iloc[order]
    smooth = values.astype("float64").rolling(window, min_periods=1).mean() if window > 1 \
        else values.astype("float64")
    hits = (smooth >= tau).to_numpy()
    return int(steps.iloc[hits.argmax()]) if hits.any() else None


def step_window(metrics: Run | pd.DataFrame, window: Window, *,
                from_start: bool = False) -> tuple[int, int]:
    """Resolve a window spec to an inclusive ``(start, stop)`` step interval.

    Args:
        metrics: the run (or metrics table) whose recorded step range is used.
        window: a fraction ``f`` in (0, 1] of the step range -- the last ``f`` of it, or the
            first ``f`` with ``from_start=True`` -- or an explicit ``(start, stop)``.

    Raises:
        RunError: the table is empty; ValueError: a fraction outside (0, 1].
    """
    if isinstance(window, tuple):
        return int(window[0]), int(window[1])
    steps = _column(metrics, "step")
    if len(steps) == 0:
        where = f"{metrics.path / 'metrics.parquet'}: " if isinstance(metrics, Run) else ""
        raise RunError(f"{where}metrics table is empty: no step window to average over")
    first, last = int(steps.iloc[0]), int(steps.iloc[-1])
    if not 0 < window <= 1:
        raise ValueError(f"a window fraction must be in (0, 1], got {window}")
    span = (last - first) * window
    return (first, math.floor(first + span)) if from_start else (math.ceil(last - span), last)


def window_mean(metrics: Run | pd.DataFrame, column: str, window: tuple[int, int]) -> float:
    """Mean of ``column`` over the rows whose step lies in the inclusive ``window``.

    NaN when no row falls in the window (or all values there are NaN).
    """
    metrics = _metrics(metrics)
    steps = _column(metrics, "step")
    mask = (steps >= window[0]) & (steps <= window[1])
    values = _column(metrics, column)[mask]
    return float(values.mean()) if values.notna().any() else math.nan


def _common_window(a: pd.DataFrame, b: pd.DataFrame, window: Window) -> tuple[int, int]:
    if isinstance(window, tuple):
        return int(window[0]), int(window[1])
    shorter = a if step_window(a, 1.0)[1] <= step_window(b, 1.0)[1] else b
    return step_window(shorter, window)


def _ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None or den == 0 or math.isnan(num) or math.isnan(den):
        return math.nan
    return num / den


def _sample_median(run: Run | pd.DataFrame, saturation: str, event: str) -> float:
    """Kaplan-Meier median of a run's per-sample times (NaN for a bare metrics table, an
    empty samples table, or a median not reached)."""
    if not isinstance(run, Run) or len(run.samples) == 0:
        return math.nan
    return median_time_to_saturation(run, saturation=saturation, event=event)["median"]


def postponement(softmax_run: Run | pd.DataFrame, noisy_run: Run | pd.DataFrame, *,
                 tau: float = DEFAULT_TAU, saturation: str = "clean", event: str = "first",
                 stat: str = "p_target_median", window: int = 1, late: Window = 0.25,
                 early: Window = 0.1) -> dict:
    """How much a method (Noisy Softmax, a regulariser) postpones saturation against softmax.

    Args:
        softmax_run: the baseline run (alpha2 = 0) or its metrics table.
        noisy_run: the other run or its metrics table.
        tau, stat, window: the onset definition (see :func:`onset_step`).
        saturation: the view the onsets and sample medians are taken in (``"clean"`` or
            ``"noisy"``); the gradient and noise figures are the same in both.
        event: the per-sample event of the sample medians (``"first"`` or ``"settled"``,
            see :mod:`satkit.analysis.views`).
        late: the late window (fraction of the shorter run's step range, or ``(start, stop)``)
            over which ``grad_target_mean`` is averaged: "gradient kept flowing".
        early: the early window for the noise annealing ratio (fraction from the start, or
            ``(start, stop)``).

    Returns:
        A dict with

        * ``onset_ratio`` = onset_noisy / onset_softmax (NaN when either run never reaches
          tau or the softmax onset is step 0; ``noisy_censored`` is True when only the
          other run never saturated -- then the true ratio exceeds
          ``onset_ratio_lower_bound`` = its last step / onset_softmax);
        * ``grad_ratio_late`` = late mean grad_target_mean, other / softmax (> 1: more
          gradient still flows);
        * ``noise_annealing`` = late / early mean ``noise_mean`` of the other run (< 1: the
          noise anneals; NaN when the run has no noise column or no early noise);
        * ``median_sample_softmax``, ``median_sample_noisy`` (Kaplan-Meier median of the
          samples' ``event`` step in the view; NaN for a bare metrics table, no samples, or
          fewer than half saturated) and ``median_sample_ratio`` (other / softmax);
        * the raw numbers: ``onset_softmax``, ``onset_noisy``, ``grad_late_softmax``,
          ``grad_late_noisy``, ``noise_early``, ``noise_late``, ``late_window``,
          ``early_window``, and the settings ``tau``, ``saturation``, ``event``.

    Raises:
        RunError: a table is empty or lacks a needed column (the noisy view of a run recorded
            before it existed).
        ValueError: a bad ``saturation`` or ``event``.
    """
    check_view(saturation)
    check_event(event)
    for run in (softmax_run, noisy_run):
        step_window(run, 1.0)  # RunError naming the file when a table is empty
    onset_soft = onset_step(softmax_run, tau, saturation=saturation, stat=stat, window=window)
    onset_noisy = onset_step(noisy_run, tau, saturation=saturation, stat=stat, window=window)
    soft, noisy = _metrics(softmax_run), _metrics(noisy_run)
    late_w = _common_window(soft, noisy, late)
    early_w = step_window(noisy, early, from_start=True)
    grad_soft = window_mean(soft, "grad_target_mean", late_w)
    grad_noisy = window_mean(noisy, "grad_target_mean", late_w)
    has_noise = "noise_mean" in noisy.columns
    noise_early = window_mean(noisy, "noise_mean", early_w) if has_noise else math.nan
    noise_late = window_mean(noisy, "noise_mean", step_window(noisy, late)) if has_noise \
        else math.nan
    median_soft = _sample_median(softmax_run, saturation, event)
    median_noisy = _sample_median(noisy_run, saturation, event)
    censored = onset_noisy is None and onset_soft is not None
    return {
        "onset_ratio": _ratio(onset_noisy, onset_soft) if onset_soft else math.nan,
        "grad_ratio_late": _ratio(grad_noisy, grad_soft),
        "noise_annealing": _ratio(noise_late, noise_early),
        "noisy_censored": censored,
        "onset_ratio_lower_bound": _ratio(step_window(noisy, 1.0)[1], onset_soft)
        if censored and onset_soft else math.nan,
        "median_sample_softmax": median_soft,
        "median_sample_noisy": median_noisy,
        "median_sample_ratio": _ratio(median_noisy, median_soft),
        "onset_softmax": onset_soft,
        "onset_noisy": onset_noisy,
        "grad_late_softmax": grad_soft,
        "grad_late_noisy": grad_noisy,
        "noise_early": noise_early,
        "noise_late": noise_late,
        "late_window": late_w,
        "early_window": early_w,
        "tau": tau,
        "saturation": saturation,
        "event": event,
    }
