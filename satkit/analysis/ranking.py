"""Which softmax regulariser postpones saturation, and at what cost? (issue 7, "Comparison")

:func:`rank_methods` puts every method of a set of runs (softmax, Noisy Softmax at each
alpha2, label smoothing, ...; one method = one group of
:data:`satkit.analysis.seeds.GROUP_KEYS`) on one row, with the five figures issue 7 ranks
them on, and :func:`ranking_markdown` renders it. The figures, per method over its runs
(seeds):

* **test error** -- mean and Student-t interval over seeds (lower is better);
* **saturation onset** -- the step at which the batch median of p_y first reaches tau
  (:func:`satkit.analysis.onset_step`), mean over seeds (later is better);
* **median individual-saturation time** -- the Kaplan-Meier median step at which a training
  sample saturates, the seeds' samples pooled, each censored at its run's last step
  (:func:`satkit.analysis.median_time_to_saturation`; later is better);
* **late gradient flow** -- the mean ``grad_target_mean`` (|dL/df_y|) over each run's late
  window, mean over seeds (more is better: the samples still steer SGD);
* **cost per step relative to softmax** -- see :func:`rank_methods` (lower is better);

and beside them the calibration of the final models (issue 23): the test ECE with its
interval over seeds (lower is better, ranked), the equal-mass ECE, and, for runs with a
validation split, the fitted temperature and the test ECE after temperature scaling -- the
baseline a training-time method has to beat. The rows are sorted by test error, or by any of
:data:`RANK_BY` (``rank_by="test_ece"``).

"Better" for the saturation figures means "postpones saturation more"; whether that helps is
what the test-error column says. The saturation figures are of one view, ``saturation=``
``"clean"`` (the eval-mode logits) or ``"noisy"`` (the logits each loss trained on: where
Noisy Softmax, a margin or a temperature postpone saturation; the same as clean for softmax
and the loss-side regularisers).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from satkit.analysis.markdown import format_interval, markdown_table
from satkit.analysis.onset import Window
from satkit.analysis.runs import Run, as_runs
from satkit.analysis.seeds import GROUP_KEYS, sort_methods, t_interval, with_method_columns
from satkit.analysis.summary import run_table
from satkit.analysis.survival_analysis import median_time_to_saturation
from satkit.methods import NOISY, SOFTMAX
from satkit.schema import DEFAULT_TAU, view_column

__all__ = ["RANKING_COLUMNS", "RANK_BY", "has_several_methods", "rank_methods",
           "ranking_markdown"]

#: The columns of :func:`rank_methods`, in order.
RANKING_COLUMNS = (
    *GROUP_KEYS, "method", "seeds", "last_step",
    "test_error", "test_error_ci_low", "test_error_ci_high",
    "test_ece", "test_ece_ci_low", "test_ece_ci_high",
    "test_ece_adaptive", "test_ece_adaptive_ci_low", "test_ece_adaptive_ci_high",
    "temperature", "test_ece_ts", "test_ece_ts_ci_low", "test_ece_ts_ci_high",
    "onset_step", "onset_never",
    "median_saturation_step", "median_saturation_ci_low", "median_saturation_ci_high",
    "saturated_fraction",
    "grad_target_late",
    "seconds_per_step", "cost_vs_softmax",
    "rank_test_error", "rank_ece", "rank_onset", "rank_median_saturation", "rank_grad_late",
    "rank_cost",
)
#: What the rows can be sorted by (``rank_by``): mean figures where lower is better.
RANK_BY = ("test_error", "test_ece", "test_ece_adaptive", "test_ece_ts")
# rank column -> (sort key column, ascending: True when a lower value ranks first)
_RANKS = {"rank_test_error": ("test_error", True), "rank_ece": ("test_ece", True),
          "rank_onset": ("_onset_key", False), "rank_median_saturation": ("_median_key", False),
          "rank_grad_late": ("grad_target_late", False), "rank_cost": ("cost_vs_softmax", True)}


def has_several_methods(runs_or_table) -> bool:
    """True when the runs hold a method other than softmax / Noisy Softmax, and at least two
    methods: then reports rank them (an alpha2 sweep keeps its own tables).

    Args:
        runs_or_table: runs / paths, or a :func:`satkit.analysis.run_table` frame.
    """
    if isinstance(runs_or_table, pd.DataFrame):
        table = with_method_columns(runs_or_table)
        groups = table[list(GROUP_KEYS)].astype(str).drop_duplicates()
        losses = set(table["loss"])
    else:
        runs = as_runs(runs_or_table)
        groups = {(r.dataset, r.loss, r.setting, r.noise, r.alpha2) for r in runs}
        losses = {r.loss for r in runs}
    return len(groups) > 1 and bool(losses - {SOFTMAX, NOISY})


def _onset_key(rows: pd.DataFrame, runs: list[Run], stat: str) -> float:
    """Mean onset, a run that never saturated counting as its last step + 1 (a lower bound);
    ``stat`` named in the view's naming."""
    keys = []
    for i, row in rows.iterrows():
        if math.isfinite(row["onset_step"]):
            keys.append(row["onset_step"])
        elif len(runs[i].metrics) and stat in runs[i].metrics and pd.notna(row["last_step"]):
            keys.append(float(row["last_step"]) + 1)
    return float(np.mean(keys)) if keys else math.nan


def _never(rows: pd.DataFrame, runs: list[Run], stat: str) -> int:
    return int(sum(not math.isfinite(row["onset_step"]) and len(runs[i].metrics) > 0
                   and stat in runs[i].metrics for i, row in rows.iterrows()))


def _survival(runs: list[Run], saturation: str) -> dict:
    column = view_column("first_saturated_step", saturation)  # absent from older runs
    with_samples = [r for r in runs if len(r.samples) and column in r.samples]
    if not with_samples:
        return {"median_saturation_step": math.nan, "median_saturation_ci_low": math.nan,
                "median_saturation_ci_high": math.nan, "saturated_fraction": math.nan,
                "_median_key": math.nan}
    m = median_time_to_saturation(with_samples, saturation=saturation)
    last = max((r.last_step for r in with_samples if r.last_step is not None), default=None)
    # not reached: more than half the samples were still unsaturated at the end -> the
    # median lies beyond the last step; rank it as last step + 1 (a lower bound)
    key = m["median"] if math.isfinite(m["median"]) else \
        (math.nan if last is None else float(last) + 1)
    return {"median_saturation_step": m["median"], "median_saturation_ci_low": m["ci_low"],
            "median_saturation_ci_high": m["ci_high"],
            "saturated_fraction": m["events"] / m["n"] if m["n"] else math.nan,
            "_median_key": key}


def _interval(group: pd.DataFrame, figure: str, confidence: float) -> dict[str, float]:
    mean, low, high = t_interval(group[figure].astype("float64"), confidence)
    return {figure: mean, f"{figure}_ci_low": low, f"{figure}_ci_high": high}


def _mean(values: pd.Series) -> float:
    x = values.to_numpy(dtype="float64", na_value=np.nan)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def rank_methods(runs, *, tau: float = DEFAULT_TAU, stat: str = "p_target_median", window: int = 1,
                 late: Window = 0.25, confidence: float = 0.95,
                 saturation: str = "clean", rank_by: str = "test_error") -> pd.DataFrame:
    """One row per method with the figures issue 7 ranks on, and a rank per figure.

    Cost per step is *measured*: each run's ``seconds_per_step`` (summary.json: training
    wall time / steps, evaluation excluded as the trainer records it) on the machine that
    trained it, averaged over the method's runs and divided by the average of the softmax
    runs of the same data set. It therefore carries whatever else that machine was doing; a
    value near 1 is only as precise as the machine was quiet. ``benchmarks/bench_heads.py``
    is the controlled measurement (interleaved steps of every method in one process).

    Args:
        runs: runs, or paths / globs / comparison directories.
        tau, stat, window: the onset definition (:func:`satkit.analysis.onset_step`; ``stat``
            in clean naming).
        late: the late window of each run (see :func:`satkit.analysis.run_table`).
        confidence: level of the test error's Student-t interval over seeds.
        saturation: the view of the onset and the median individual-saturation time,
            ``"clean"`` or ``"noisy"`` (a run without the noisy view's columns has NaN there).
        rank_by: the figure the rows are sorted by within a data set, one of :data:`RANK_BY`
            (lowest first; methods without it last).

    Returns:
        Columns :data:`RANKING_COLUMNS`: the group keys (``dataset, loss, setting, noise,
        alpha2``), ``method`` (readable name), ``seeds`` (runs), ``last_step`` (largest over
        the runs); ``test_error`` (%) with ``test_error_ci_low/high`` (NaN for one seed);
        ``test_ece`` and ``test_ece_adaptive`` with their intervals, ``temperature`` and
        ``test_ece_ts`` with its interval (means over the runs that measured them; NaN
        without a validation split or for runs written before satkit measured them);
        ``onset_step`` (mean over the runs that saturated; NaN when none did) and
        ``onset_never`` (runs that never saturated); ``median_saturation_step`` with its
        interval (pooled Kaplan-Meier; NaN when fewer than half the samples saturated) and
        ``saturated_fraction`` (samples saturated by the end); ``grad_target_late``;
        ``seconds_per_step`` and ``cost_vs_softmax`` (NaN without a softmax run of the data
        set); ``rank_*`` (1 = best, ties share the lower rank, nullable ``Int64``, NaN
        figures unranked): lowest test error, lowest ECE, latest onset, latest median
        saturation (a run or method that never got there counts as its last step + 1, so it
        ranks as latest), most late gradient, lowest cost. Ranks are within a data set.
        Sorted by data set, then ``rank_by`` (then method order).

    Raises:
        RunError: a run directory is missing or corrupt.
        ValueError: ``rank_by`` is not one of :data:`RANK_BY`.

    Example:
        >>> ranking = rank_methods(comparison_dir)      # doctest: +SKIP
        >>> ranking[["method", "test_error", "rank_onset"]]  # doctest: +SKIP
    """
    if rank_by not in RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_BY)}; got {rank_by!r}")
    runs = as_runs(runs)
    table = with_method_columns(run_table(runs, tau=tau, stat=stat, window=window, late=late))
    table["onset_step"] = table[view_column("onset_step", saturation)]
    stat = view_column(stat, saturation)
    rows = []
    for keys, group in table.groupby(list(GROUP_KEYS), sort=False, dropna=False):
        members = [runs[i] for i in group.index]
        mean, low, high = t_interval(group["test_error"].astype("float64"), confidence)
        last = group["last_step"].dropna()
        rows.append({
            **dict(zip(GROUP_KEYS, keys, strict=True)),
            "method": members[0].label, "seeds": len(group),
            "last_step": int(last.max()) if len(last) else pd.NA,
            "test_error": mean, "test_error_ci_low": low, "test_error_ci_high": high,
            **_interval(group, "test_ece", confidence),
            **_interval(group, "test_ece_adaptive", confidence),
            "temperature": _mean(group["temperature"]),
            **_interval(group, "test_ece_ts", confidence),
            "onset_step": _mean(group["onset_step"]), "onset_never": _never(group, runs, stat),
            "_onset_key": _onset_key(group, runs, stat),
            **_survival(members, saturation),
            "grad_target_late": _mean(group["grad_target_late"]),
            "seconds_per_step": _mean(group["seconds_per_step"]),
        })
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame({c: [] for c in RANKING_COLUMNS})
    softmax = out[out["loss"] == SOFTMAX]
    # one softmax cost per data set: the mean over its runs (alpha2 = 0 and softmax alike)
    base = {d: _mean(table.loc[(table["dataset"] == d) & (table["loss"] == SOFTMAX),
                               "seconds_per_step"]) for d in softmax["dataset"].unique()}
    out["cost_vs_softmax"] = [s / base[d] if d in base and base[d] > 0 else math.nan
                              for d, s in zip(out["dataset"], out["seconds_per_step"],
                                              strict=True)]
    for rank, (key, ascending) in _RANKS.items():
        out[rank] = out.groupby("dataset")[key].rank(method="min", ascending=ascending,
                                                     na_option="keep").astype("Int64")
    out = sort_methods(out)  # method order breaks ties
    out = out.sort_values(["dataset", rank_by], kind="stable", na_position="last",
                          ignore_index=True)
    out["last_step"] = out["last_step"].astype("Int64")
    return out[list(RANKING_COLUMNS)]


def _with_rank(text: str, rank) -> str:
    return text if pd.isna(rank) else f"{text} (#{int(rank)})"


def _error_cell(r) -> str:
    if not math.isfinite(r.test_error):
        return "–"
    return format_interval(r.test_error, r.test_error_ci_high - r.test_error)


def _interval_cell(mean: float, high: float) -> str:
    return format_interval(mean, high - mean) if math.isfinite(mean) else "–"


def _scaled_cell(r) -> str:
    if not math.isfinite(r.test_ece_ts):
        return "–"
    return f"{_interval_cell(r.test_ece_ts, r.test_ece_ts_ci_high)} (T = {r.temperature:.3g})"


def _onset_cell(r) -> str:
    if math.isfinite(r.onset_step):
        text = f"{r.onset_step:.0f}"
        return text + (f" ({r.onset_never} of {r.seeds} never)" if r.onset_never else "")
    if r.onset_never:
        return f"never by {r.last_step}" if pd.notna(r.last_step) else "never"
    return "–"


def _median_cell(r) -> str:
    if math.isfinite(r.median_saturation_step):
        text = f"{r.median_saturation_step:.0f}"
        if math.isfinite(r.median_saturation_ci_low):
            high = f"{r.median_saturation_ci_high:.0f}" \
                if math.isfinite(r.median_saturation_ci_high) else "–"
            text += f" [{r.median_saturation_ci_low:.0f}, {high}]"
        return text
    if math.isfinite(r.saturated_fraction):
        return f"> {r.last_step}, {r.saturated_fraction:.0%} saturated"
    return "–"


def ranking_markdown(ranking: pd.DataFrame) -> str:
    """Render :func:`rank_methods` as a Markdown table: each figure followed by its rank.

    ``(#1)`` is the best on that figure within the data set. The test error and the ECEs
    read ``mean ± half-width`` of their interval (one seed: the mean); "ECE after TS" is the
    test ECE after temperature scaling with the mean fitted temperature (the column is left
    out when no run had a validation split; "–": the method's runs had none); "never by N" =
    no run of the method saturated by its last step N; the median sample onset reads
    ``median [low, high]`` (95% interval; "–" for a bound not reached) or ``> N, x%
    saturated`` when fewer than half the samples saturated; cost is the measured wall time
    per step relative to softmax.
    """
    rows = []
    several = ranking["dataset"].nunique() > 1
    scaled = bool(ranking["test_ece_ts"].notna().any()) if len(ranking) else False
    for r in ranking.itertuples(index=False):
        row = {"dataset": r.dataset} if several else {}
        cost = f"{r.cost_vs_softmax:.2f}×" if math.isfinite(r.cost_vs_softmax) else "–"
        row.update({
            "method": r.method, "seeds": r.seeds,
            "test error %": _with_rank(_error_cell(r), r.rank_test_error),
            "ECE": _with_rank(_interval_cell(r.test_ece, r.test_ece_ci_high), r.rank_ece),
            "adaptive ECE": _interval_cell(r.test_ece_adaptive, r.test_ece_adaptive_ci_high),
            **({"ECE after TS": _scaled_cell(r)} if scaled else {}),
            "onset step": _with_rank(_onset_cell(r), r.rank_onset),
            "median sample onset": _with_rank(_median_cell(r), r.rank_median_saturation),
            "late |dL/df_y|": _with_rank(f"{r.grad_target_late:.3g}"
                                         if math.isfinite(r.grad_target_late) else "–",
                                         r.rank_grad_late),
            "cost vs softmax": _with_rank(cost, r.rank_cost),
        })
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))
