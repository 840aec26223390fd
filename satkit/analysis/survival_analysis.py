"""Individual saturation as time-to-event data (PAPER.md section 1).

Each training sample's *event* is its saturation onset, ``first_saturated_step`` in the run's
samples table (the first step at which its clean p_y reached the recorder's last threshold).
A sample that never saturated is *right-censored* at the run's last step: it was still
unsaturated then, and nothing is known after. Samples the run never saw (``last_seen_step``
missing or negative) are left out. The survival curve S(t) is the fraction of samples not yet
saturated at step t (Kaplan-Meier, :func:`scipy.stats.ecdf` on censored data).

Softmax should show a curve that falls early; Noisy Softmax one that falls later.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from satkit.analysis.errors import RunError
from satkit.analysis.runs import Run

__all__ = ["SURVIVAL_COLUMNS", "logrank", "median_time_to_saturation", "saturation_times",
           "survival"]

SURVIVAL_COLUMNS = ("step", "survival", "ci_low", "ci_high", "at_risk", "events", "censored")


def saturation_times(run_or_samples: Run | pd.DataFrame | Sequence[Run], *,
                     last_step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(time, saturated)`` arrays from a run or its samples table.

    Args:
        run_or_samples: a :class:`Run`, a samples table (``first_saturated_step``,
            optionally ``last_seen_step``), or a list of runs (e.g. the seeds of one
            method): their samples are pooled, each censored at its own run's last step.
        last_step: the censoring step for never-saturated samples. Default: the run's last
            recorded step; for a bare table, the largest ``last_seen_step``.

    Returns:
        ``time`` (float64 steps) and ``saturated`` (bool; False = right-censored at
        ``last_step``), one entry per sample the run saw.

    Raises:
        RunError: the table lacks ``first_saturated_step``, or some samples never saturated
            and no censoring step is known.
    """
    if isinstance(run_or_samples, list | tuple):
        pooled = [saturation_times(run, last_step=last_step) for run in run_or_samples]
        if not pooled:
            return np.array([], dtype="float64"), np.array([], dtype=bool)
        return (np.concatenate([t for t, _ in pooled]),
                np.concatenate([sat for _, sat in pooled]))
    if isinstance(run_or_samples, Run):
        samples = run_or_samples.samples
        if last_step is None:
            last_step = run_or_samples.last_step
    else:
        samples = run_or_samples
    if "first_saturated_step" not in samples.columns:
        raise RunError(f"samples table has no 'first_saturated_step'; has {list(samples.columns)}")
    if "last_seen_step" in samples.columns:
        seen = samples["last_seen_step"].astype("Float64")
        samples = samples[(seen >= 0).fillna(False).to_numpy(dtype=bool)]
        if last_step is None and seen.notna().any():
            last_step = int(seen.max())
    first = samples["first_saturated_step"].astype("Float64")
    saturated = first.notna().to_numpy(dtype=bool)
    if not saturated.all() and last_step is None:
        raise RunError("some samples never saturated but the censoring step is unknown: "
                       "pass last_step")
    times = first.fillna(float(last_step) if last_step is not None else 0.0)
    return times.to_numpy(dtype="float64"), saturated


def _censored(times: np.ndarray, saturated: np.ndarray) -> stats.CensoredData:
    return stats.CensoredData(uncensored=times[saturated], right=times[~saturated])


def survival(run_or_samples: Run | pd.DataFrame | Sequence[Run], *, last_step: int | None = None,
             confidence: float = 0.95, method: str = "log-log") -> pd.DataFrame:
    """Kaplan-Meier curve of the fraction of samples not yet saturated, with a pointwise CI.

    Args:
        run_or_samples: a :class:`Run`, its samples table, or a list of runs (pooled, see
            :func:`saturation_times`).
        last_step: censoring step for never-saturated samples (see :func:`saturation_times`).
        confidence: level of the pointwise interval.
        method: ``"log-log"`` (default; stays inside [0, 1]) or ``"linear"`` (Greenwood),
            as in :meth:`scipy.stats._survival.EmpiricalDistributionFunction.confidence_interval`.

    Returns:
        One row per distinct event or censoring step, sorted: ``step``, ``survival`` (S just
        after the step), ``ci_low``, ``ci_high``, ``at_risk`` (samples unsaturated just before
        the step), ``events`` (samples saturating at it), ``censored``. Where the interval is
        undefined (S = 1 before any event, S = 0 at the end) it collapses onto S. Empty
        samples table: an empty frame with these columns (S(t) = 1 is implied before the
        first row).

    Raises:
        RunError: see :func:`saturation_times`.
    """
    times, saturated = saturation_times(run_or_samples, last_step=last_step)
    if times.size == 0:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in SURVIVAL_COLUMNS})
    sf = stats.ecdf(_censored(times, saturated)).sf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # undefined at S=1/S=0; filled below
        ci = sf.confidence_interval(confidence, method=method)
    steps, surv = sf.quantiles, sf.probabilities
    low = np.where(np.isnan(ci.low.probabilities), surv, ci.low.probabilities)
    high = np.where(np.isnan(ci.high.probabilities), surv, ci.high.probabilities)
    sorted_times = np.sort(times)
    at_risk = times.size - np.searchsorted(sorted_times, steps, side="left")
    events = np.searchsorted(np.sort(times[saturated]), steps, side="right") \
        - np.searchsorted(np.sort(times[saturated]), steps, side="left")
    censored = np.searchsorted(np.sort(times[~saturated]), steps, side="right") \
        - np.searchsorted(np.sort(times[~saturated]), steps, side="left")
    return pd.DataFrame({"step": steps, "survival": surv, "ci_low": low, "ci_high": high,
                         "at_risk": at_risk, "events": events, "censored": censored})


def _first_at_or_below(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    hit = values <= level
    return float(steps[hit.argmax()]) if hit.any() else math.nan


def median_time_to_saturation(run_or_samples: Run | pd.DataFrame | Sequence[Run], *,
                              last_step: int | None = None, confidence: float = 0.95,
                              method: str = "log-log") -> dict:
    """Median step at which a sample saturates, with a confidence interval.

    The median is the first step at which the survival curve is <= 0.5. Its interval inverts
    the pointwise interval of the curve (Brookmeyer & Crowley 1982, as R's ``survfit``):
    ``ci_low`` is the first step at which the pointwise *lower* bound is <= 0.5 and
    ``ci_high`` the first step at which the pointwise *upper* bound is <= 0.5.

    Returns:
        ``{"median", "ci_low", "ci_high", "n", "events", "confidence"}``; ``median`` and the
        bounds are floats, NaN when not reached within the run (fewer than half the samples
        saturated: the median is then only known to exceed the last step). Empty table:
        all NaN with ``n = 0``.

    Raises:
        RunError: see :func:`saturation_times`.
    """
    curve = survival(run_or_samples, last_step=last_step, confidence=confidence, method=method)
    steps = curve["step"].to_numpy(dtype="float64")
    return {
        "median": _first_at_or_below(steps, curve["survival"].to_numpy(), 0.5),
        "ci_low": _first_at_or_below(steps, curve["ci_low"].to_numpy(), 0.5),
        "ci_high": _first_at_or_below(steps, curve["ci_high"].to_numpy(), 0.5),
        "n": int(curve["at_risk"].iloc[0]) if len(curve) else 0,
        "events": int(curve["events"].sum()) if len(curve) else 0,
        "confidence": confidence,
    }


def logrank(run_a: Run | pd.DataFrame, run_b: Run | pd.DataFrame, *,
            last_step_a: int | None = None, last_step_b: int | None = None,
            alternative: str = "two-sided") -> dict:
    """Log-rank test that two runs' samples saturate at the same rate (:func:`scipy.stats.logrank`).

    Args:
        run_a, run_b: runs or samples tables (e.g. softmax and Noisy Softmax).
        last_step_a, last_step_b: censoring steps (see :func:`saturation_times`).
        alternative: ``"two-sided"``, ``"less"`` or ``"greater"`` (scipy's meaning: "less"
            = a's survival is lower, i.e. a saturates earlier).

    Returns:
        ``{"statistic", "pvalue", "n_a", "n_b", "events_a", "events_b"}``; statistic and
        p-value are NaN when either table is empty or no sample saturated in either run
        (nothing to compare).
    """
    ta, sa = saturation_times(run_a, last_step=last_step_a)
    tb, sb = saturation_times(run_b, last_step=last_step_b)
    out = {"statistic": math.nan, "pvalue": math.nan, "n_a": int(ta.size), "n_b": int(tb.size),
           "events_a": int(sa.sum()), "events_b": int(sb.sum())}
    if ta.size and tb.size and (sa.any() or sb.any()):
        res = stats.logrank(_censored(ta, sa), _censored(tb, sb), alternative=alternative)
        out["statistic"], out["pvalue"] = float(res.statistic), float(res.pvalue)
    return out
