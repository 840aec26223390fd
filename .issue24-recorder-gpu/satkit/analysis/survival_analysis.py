"""Individual saturation as time-to-event data (arXiv 1708.03769's "individual saturation").

Each training sample's *event* is a step of the run's samples table: by default
``first_saturated_step`` (the first step at which its p_y reached the recorder's last
threshold), or ``settled_step`` (``event="settled"``: from then on it was never again seen
below it), in the clean view or under the training logits (``saturation="noisy"``; see
:mod:`satkit.analysis.views`). A sample without the event is *right-censored* at the run's
last step: it had not saturated (or settled) by then, and nothing is known after. Samples the
run never saw (``last_seen_step`` missing or negative) are left out. The survival curve S(t)
is the fraction of samples without the event by step t (Kaplan-Meier, :func:`scipy.stats.ecdf`
on censored data).

Softmax should show a curve that falls early; Noisy Softmax one that falls later, most
clearly under the training logits.
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
from satkit.analysis.views import check_event, check_view, event_column, require_column
from satkit.validation import check_choice

__all__ = ["ALTERNATIVES", "SURVIVAL_COLUMNS", "logrank", "median_time_to_saturation",
           "saturation_times", "survival"]

SURVIVAL_COLUMNS = ("step", "survival", "ci_low", "ci_high", "at_risk", "events", "censored")
#: :func:`logrank`'s alternatives, and scipy's name for each with run a as scipy's ``x``.
#: scipy's "greater" means x's failure (here: saturation) rate is *higher*: x saturates earlier.
ALTERNATIVES = {"two-sided": "two-sided", "a_earlier": "greater", "a_later": "less"}

RunOrSamples = Run | pd.DataFrame | Sequence[Run]


def saturation_times(run_or_samples: RunOrSamples, *, saturation: str = "clean",
                     event: str = "first",
                     last_step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ``(time, observed)`` arrays from a run or its samples table.

    Args:
        run_or_samples: a :class:`Run`, a samples table (the event's column, optionally
            ``last_seen_step``), or a list of runs (e.g. the seeds of one method): their
            samples are pooled, each censored at its own run's last step.
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        event: ``"first"`` (``first_saturated_step``) or ``"settled"`` (``settled_step``).
        last_step: the censoring step of samples without the event. Default: the run's last
            recorded step; for a bare table, the largest ``last_seen_step``.

    Returns:
        ``time`` (float64 steps) and ``observed`` (bool; False = right-censored at
        ``last_step``), one entry per sample the run saw.

    Raises:
        RunError: the table lacks the event's column (e.g. ``settled_step_noisy`` in a run
            recorded before it existed), or some samples lack the event and no censoring step
            is known.
        ValueError: a bad ``saturation`` or ``event``.

    Example:
        >>> samples = pd.DataFrame({"first_saturated_step": pd.array([3, None], dtype="Int64"),
        ...                         "settled_step": pd.array([7, None], dtype="Int64")})
        >>> saturation_times(samples, event="settled", last_step=9)
        (array([7., 9.]), array([ True, False]))
    """
    column = event_column(event, saturation)
    if isinstance(run_or_samples, list | tuple):
        pooled = [saturation_times(run, saturation=saturation, event=event, last_step=last_step)
                  for run in run_or_samples]
        if not pooled:
            return np.array([], dtype="float64"), np.array([], dtype=bool)
        return (np.concatenate([t for t, _ in pooled]),
                np.concatenate([sat for _, sat in pooled]))
    path = None
    if isinstance(run_or_samples, Run):
        samples, path = run_or_samples.samples, run_or_samples.path / "samples.parquet"
        if last_step is None:
            last_step = run_or_samples.last_step
    else:
        samples = run_or_samples
    require_column(samples, column, "samples", path)
    if "last_seen_step" in samples.columns:
        seen = samples["last_seen_step"].astype("Float64")
        samples = samples[(seen >= 0).fillna(False).to_numpy(dtype=bool)]
        if last_step is None and seen.notna().any():
            last_step = int(seen.max())
    times = samples[column].astype("Float64")
    observed = times.notna().to_numpy(dtype=bool)
    if not observed.all() and last_step is None:
        raise RunError(f"some samples have no {column} but the censoring step is unknown: "
                       "pass last_step")
    times = times.fillna(float(last_step) if last_step is not None else 0.0)
    return times.to_numpy(dtype="float64"), observed


def _censored(times: np.ndarray, saturated: np.ndarray) -> stats.CensoredData:
    return stats.CensoredData(uncensored=times[saturated], right=times[~saturated])


def survival(run_or_samples: RunOrSamples, *, saturation: str = "clean", event: str = "first",
             last_step: int | None = None, confidence: float = 0.95,
             method: str = "log-log") -> pd.DataFrame:
    """Kaplan-Meier curve of the fraction of samples not yet saturated, with a pointwise CI.

    Args:
        run_or_samples: a :class:`Run`, its samples table, or a list of runs (pooled, see
            :func:`saturation_times`).
        saturation, event: the view and the event (see :func:`saturation_times`).
        last_step: censoring step for samples without the event (see
            :func:`saturation_times`).
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
        RunError, ValueError: see :func:`saturation_times`.

    Example:
        >>> samples = pd.DataFrame({"first_saturated_step": pd.array([2, 2, 5, None],
        ...                                                         dtype="Int64")})
        >>> survival(samples, last_step=9)[["step", "survival", "at_risk", "events"]]
           step  survival  at_risk  events
        0   2.0      0.50        4       2
        1   5.0      0.25        2       1
        2   9.0      0.25        1       0
    """
    times, saturated = saturation_times(run_or_samples, saturation=saturation, event=event,
                                        last_step=last_step)
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


def median_time_to_saturation(run_or_samples: RunOrSamples, *, saturation: str = "clean",
                              event: str = "first", last_step: int | None = None,
                              confidence: float = 0.95, method: str = "log-log") -> dict:
    """Median step at which a sample saturates (or settles), with a confidence interval.

    Args:
        run_or_samples: a :class:`Run`, its samples table, or a list of runs (pooled).
        saturation, event: the view and the event (see :func:`saturation_times`).
        last_step, confidence, method: see :func:`survival`.

    The median is the first step at which the survival curve is <= 0.5. Its interval inverts
    the pointwise interval of the curve (Brookmeyer & Crowley 1982, as R's ``survfit``):
    ``ci_low`` is the first step at which the pointwise *lower* bound is <= 0.5 and
    ``ci_high`` the first step at which the pointwise *upper* bound is <= 0.5.

    Returns:
        ``{"median", "ci_low", "ci_high", "n", "events", "confidence", "saturation",
        "event"}``; ``median`` and the bounds are floats, NaN when not reached within the run
        (fewer than half the samples had the event: the median is then only known to exceed
        the last step). Empty table: all NaN with ``n = 0``.

    Raises:
        RunError, ValueError: see :func:`saturation_times`.

    Example:
        >>> samples = pd.DataFrame({"first_saturated_step": pd.array([2, 2, 5, None],
        ...                                                         dtype="Int64")})
        >>> median_time_to_saturation(samples, last_step=9)["median"]
        2.0
    """
    curve = survival(run_or_samples, saturation=saturation, event=event, last_step=last_step,
                     confidence=confidence, method=method)
    steps = curve["step"].to_numpy(dtype="float64")
    return {
        "median": _first_at_or_below(steps, curve["survival"].to_numpy(), 0.5),
        "ci_low": _first_at_or_below(steps, curve["ci_low"].to_numpy(), 0.5),
        "ci_high": _first_at_or_below(steps, curve["ci_high"].to_numpy(), 0.5),
        "n": int(curve["at_risk"].iloc[0]) if len(curve) else 0,
        "events": int(curve["events"].sum()) if len(curve) else 0,
        "confidence": confidence,
        "saturation": saturation,
        "event": event,
    }


def logrank(run_a: Run | pd.DataFrame | Sequence[Run], run_b: Run | pd.DataFrame | Sequence[Run],
            *, saturation: str = "clean", event: str = "first",
            alternative: str = "two-sided", last_step_a: int | None = None,
            last_step_b: int | None = None) -> dict:
    """Log-rank test that two runs' samples saturate at the same rate (:func:`scipy.stats.logrank`).

    The statistic is ``z = (O_a - E_a) / sqrt(V)``: ``O_a`` the events observed in run a,
    ``E_a`` those expected under the null hypothesis (at each event step, the pooled events
    times a's share of the pooled samples at risk), ``V`` the hypergeometric variance. z > 0:
    a saturates earlier than b would have it under the null.

    Args:
        run_a, run_b: runs, lists of runs (pooled seeds) or samples tables (e.g. softmax and
            Noisy Softmax).
        saturation, event: the view and the event (see :func:`saturation_times`).
        alternative: the alternative hypothesis: ``"two-sided"`` (the rates differ),
            ``"a_earlier"`` (a saturates earlier: its saturation rate is higher at some
            steps) or ``"a_later"``. ``"a_earlier"`` is scipy's ``"greater"`` with a as x:
            scipy's "less" means x's *failure* rate is lower, i.e. x saturates *later*.
        last_step_a, last_step_b: censoring steps (see :func:`saturation_times`).

    Returns:
        ``{"statistic", "pvalue", "alternative", "sided", "saturation", "event", "n_a",
        "n_b", "events_a", "events_b"}``: ``statistic`` is z; ``pvalue`` is one-sided for
        ``"a_earlier"``/``"a_later"`` and two-sided for ``"two-sided"``, which ``sided``
        says (``"one-sided"`` or ``"two-sided"``). Statistic and p-value are NaN when either
        table is empty or no sample saturated in either run (nothing to compare).

    Raises:
        ValueError: an unknown ``alternative`` (scipy's ``"less"``/``"greater"`` are not
            accepted: say which run saturates earlier), ``saturation`` or ``event``.
        RunError: see :func:`saturation_times`.

    Example:
        >>> early = pd.DataFrame({"first_saturated_step": pd.array([1, 2, 3, 4], dtype="Int64")})
        >>> late = pd.DataFrame({"first_saturated_step": pd.array([5, 6, 7, 8], dtype="Int64")})
        >>> res = logrank(early, late, alternative="a_earlier")
        >>> res["sided"], round(res["statistic"], 2), round(res["pvalue"], 4)
        ('one-sided', 2.71, 0.0034)
        >>> round(logrank(early, late, alternative="a_later")["pvalue"], 4)
        0.9966
    """
    alternative = check_choice("alternative", alternative, ALTERNATIVES)
    check_view(saturation)
    check_event(event)
    ta, sa = saturation_times(run_a, saturation=saturation, event=event, last_step=last_step_a)
    tb, sb = saturation_times(run_b, saturation=saturation, event=event, last_step=last_step_b)
    out = {"statistic": math.nan, "pvalue": math.nan, "alternative": alternative,
           "sided": "two-sided" if alternative == "two-sided" else "one-sided",
           "saturation": saturation, "event": event, "n_a": int(ta.size), "n_b": int(tb.size),
           "events_a": int(sa.sum()), "events_b": int(sb.sum())}
    if ta.size and tb.size and (sa.any() or sb.any()):
        res = stats.logrank(_censored(ta, sa), _censored(tb, sb),
                            alternative=ALTERNATIVES[alternative])
        out["statistic"], out["pvalue"] = float(res.statistic), float(res.pvalue)
    return out
