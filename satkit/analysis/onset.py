"""When does softmax saturate, and how much later does Noisy Softmax? (PAPER.md sections 1, 7)

Definitions used throughout satkit:

* **onset step**: the first recorded step at which a batch statistic of the clean target
  probability (default: the batch median ``p_target_median``), smoothed by a trailing
  rolling mean over ``window`` recorded rows, reaches ``tau`` (default 0.99). The default
  ``window=1`` (no smoothing) is the raw definition used for PAPER.md section 7's numbers
  (median p_y >= 0.99 at step 99 vs 148); use ``window`` of 5-20 for small, noisy batches.
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

__all__ = ["onset_step", "postponement", "step_window", "window_mean"]

Window = float | tuple[int, int]


def _metrics(run_or_metrics: Run | pd.DataFrame) -> pd.DataFrame:
    return run_or_metrics.metrics if isinstance(run_or_metrics, Run) else run_or_metrics


def _column(metrics: pd.DataFrame, name: str) -> pd.Series:
    if name not in metrics.columns:
        raise RunError(f"metrics table has no column {name!r}; has {list(metrics.columns)}")
    return metrics[name]


def onset_step(metrics: Run | pd.DataFrame, *, tau: float = 0.99, stat: str = "p_target_median",
               window: int = 1) -> int | None:
    """First step at which the smoothed statistic reaches ``tau``.

    Args:
        metrics: a metrics table (``step`` + ``stat`` columns) or a :class:`Run`.
        tau: the saturation threshold on p_target.
        stat: the column to threshold (``p_target_median``, ``p_target_mean``, ``p_target_q10``).
        window: trailing rolling-mean window in *recorded rows* (1 = no smoothing, the
            default; rows where the statistic is NaN are skipped within a window).

    Returns:
        The step (int), or None when the statistic never reaches tau or the table is empty.

    Raises:
        RunError: ``stat`` or ``step`` is not a column; ValueError: ``window < 1``.

    Example:
        >>> m = pd.DataFrame({"step": [0, 10, 20, 30], "p_target_median": [.5, .995, .9, .999]})
        >>> onset_step(m), onset_step(m, window=2)
        (10, None)
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    metrics = _metrics(metrics)
    values, steps = _column(metrics, stat), _column(metrics, "step")
    if len(metrics) == 0:
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
    steps = _column(_metrics(metrics), "step")
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


def postponement(softmax_run: Run | pd.DataFrame, noisy_run: Run | pd.DataFrame, *,
                 tau: float = 0.99, stat: str = "p_target_median", window: int = 1,
                 late: Window = 0.25, early: Window = 0.1) -> dict:
    """How much Noisy Softmax postpones saturation relative to plain softmax.

    Args:
        softmax_run: the baseline run (alpha2 = 0) or its metrics table.
        noisy_run: the Noisy Softmax run or its metrics table.
        tau, stat, window: the onset definition (see :func:`onset_step`).
        late: the late window (fraction of the shorter run's step range, or ``(start, stop)``)
            over which ``grad_target_mean`` is averaged: "gradient kept flowing".
        early: the early window for the noise annealing ratio (fraction from the start, or
            ``(start, stop)``).

    Returns:
        A dict with

        * ``onset_ratio`` = onset_noisy / onset_softmax (NaN when either run never reaches
          tau or the softmax onset is step 0; ``noisy_censored`` is True when only the
          noisy run never saturated -- then the true ratio exceeds
          ``onset_ratio_lower_bound`` = last noisy step / onset_softmax);
        * ``grad_ratio_late`` = late mean grad_target_mean, noisy / softmax (> 1: more
          gradient still flows);
        * ``noise_annealing`` = late / early mean ``noise_mean`` of the noisy run (< 1: the
          noise anneals; NaN when the run has no noise column or no early noise);
        * the raw numbers: ``onset_softmax``, ``onset_noisy``, ``grad_late_softmax``,
          ``grad_late_noisy``, ``noise_early``, ``noise_late``, ``late_window``,
          ``early_window``, ``tau``.

    Raises:
        RunError: a table is empty or lacks a needed column.
    """
    for run in (softmax_run, noisy_run):
        step_window(run, 1.0)  # RunError naming the file when a table is empty
    soft, noisy = _metrics(softmax_run), _metrics(noisy_run)
    onset_soft = onset_step(soft, tau=tau, stat=stat, window=window)
    onset_noisy = onset_step(noisy, tau=tau, stat=stat, window=window)
    late_w = _common_window(soft, noisy, late)
    early_w = step_window(noisy, early, from_start=True)
    grad_soft = window_mean(soft, "grad_target_mean", late_w)
    grad_noisy = window_mean(noisy, "grad_target_mean", late_w)
    has_noise = "noise_mean" in noisy.columns
    noise_early = window_mean(noisy, "noise_mean", early_w) if has_noise else math.nan
    noise_late = window_mean(noisy, "noise_mean", step_window(noisy, late)) if has_noise \
        else math.nan
    censored = onset_noisy is None and onset_soft is not None
    return {
        "onset_ratio": _ratio(onset_noisy, onset_soft) if onset_soft else math.nan,
        "grad_ratio_late": _ratio(grad_noisy, grad_soft),
        "noise_annealing": _ratio(noise_late, noise_early),
        "noisy_censored": censored,
        "onset_ratio_lower_bound": _ratio(step_window(noisy, 1.0)[1], onset_soft)
        if censored and onset_soft else math.nan,
        "onset_softmax": onset_soft,
        "onset_noisy": onset_noisy,
        "grad_late_softmax": grad_soft,
        "grad_late_noisy": grad_noisy,
        "noise_early": noise_early,
        "noise_late": noise_late,
        "late_window": late_w,
        "early_window": early_w,
        "tau": tau,
    }
