"""Across seeds: is a difference between methods (or alpha2 settings) real?

Statistics over the per-run figures of :func:`satkit.analysis.run_table`: a mean with a 95 %
Student-t interval per method, and a paired test of each method against the softmax
baseline over runs that share a seed (the seed fixes the initialisation and data order, so
pairing removes that variance). A *method* is one group of :data:`GROUP_KEYS`: Noisy Softmax
at each alpha2 and noise variant, and each regulariser at each setting, are separate methods.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from satkit.analysis.labels import method_label, method_order
from satkit.analysis.markdown import Format, format_interval, format_sig
from satkit.analysis.summary import (
    CALIBRATION_FIGURES,
    NOISY_VIEW_FIGURES,
    RUN_TABLE_FIGURES,
    run_table,
)
from satkit.methods import NOISY, SOFTMAX

__all__ = ["COMPARISON_FIGURES", "GROUP_KEYS", "WILCOXON_MIN_PAIRS", "comparison_table",
           "figure_cells", "paired_test", "seed_summary", "sort_methods", "t_interval",
           "with_method_columns"]

#: Runs are grouped by these columns: one group per data set x method (``loss``) x its setting
#: (``"ε=0.1"``) x noise variant x alpha2.
GROUP_KEYS = ("dataset", "loss", "setting", "noise", "alpha2")
#: Below this many pairs the exact two-sided Wilcoxon signed-rank p-value cannot fall below
#: 2 / 2**5 = 0.0625 (n = 5), so the test could never reject at 5 %: it is reported as NaN.
WILCOXON_MIN_PAIRS = 6


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of the finite ``values``.

    Returns:
        ``(mean, low, high)``; the bounds are NaN with fewer than two finite values, the mean
        is NaN with none.

    Example:
        >>> m, lo, hi = t_interval([1.0, 2.0, 3.0])
        >>> m, round(hi - m, 3)
        (2.0, 2.484)
    """
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return mean, mean - float(half), mean + float(half)


def with_method_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the method columns a hand-built or older run table may lack.

    ``loss`` defaults to ``"softmax"`` where alpha2 == 0 and ``"noisy"`` elsewhere, ``setting``
    to ``""``, ``noise`` to ``"none"`` for non-noisy rows and ``"annealed"`` otherwise, and
    ``dataset`` to ``""``. A table that has them all is returned as is.
    """
    missing = [c for c in ("dataset", "loss", "setting", "noise") if c not in table]
    if not missing:
        return table
    table = table.copy()
    alpha2 = table["alpha2"].astype("float64")
    if "dataset" in missing:
        table["dataset"] = ""
    if "loss" in missing:
        table["loss"] = np.where(alpha2 == 0, SOFTMAX, NOISY)
    if "setting" in missing:
        table["setting"] = ""
    if "noise" in missing:
        table["noise"] = np.where((table["loss"] == NOISY) & (alpha2 != 0), "annealed", "none")
    return table


def sort_methods(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by data set, then method (softmax, Noisy Softmax by alpha2, then the
    regularisers in :data:`satkit.analysis.labels.METHODS` order), noise and setting."""
    keys = pd.DataFrame({"dataset": frame["dataset"].astype(str),
                         "order": frame["loss"].map(method_order),
                         "alpha2": frame["alpha2"].astype("float64"),
                         "noise": frame["noise"].astype(str),
                         "setting": frame["setting"].astype(str)}, index=frame.index)
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def _table(runs, options: dict) -> pd.DataFrame:
    is_table = isinstance(runs, pd.DataFrame) and {"run", "alpha2"} <= set(runs.columns)
    return with_method_columns(runs if is_table else run_table(runs, **options))


def seed_summary(runs, *, figures=RUN_TABLE_FIGURES, confidence: float = 0.95,
                 **run_table_options) -> pd.DataFrame:
    """Mean and Student-t interval of each summary figure, per method across seeds.

    Args:
        runs: runs / paths (see :func:`satkit.analysis.as_runs`) or a :func:`run_table` frame.
        figures: which per-run figures to summarise (columns of the run table).
        confidence: interval level (0.95).
        **run_table_options: ``tau``, ``stat``, ``window``, ``late`` for :func:`run_table`.

    Returns:
        Tidy: ``dataset, loss, setting, noise, alpha2, figure, n, mean, sd, ci_low,
        ci_high``, sorted by dataset and method (:func:`sort_methods`). ``n`` counts finite
        values only (a run that never saturated has no onset and does not count there);
        ``sd``/CI are NaN when ``n < 2``.
    """
    table = _table(runs, run_table_options)
    rows = []
    for keys, group in table.groupby(list(GROUP_KEYS), sort=True, dropna=False):
        for figure in figures:
            values = group[figure].to_numpy(dtype="float64", na_value=np.nan) \
                if figure in group else np.array([])
            finite = values[np.isfinite(values)]
            mean, low, high = t_interval(finite, confidence)
            rows.append({**dict(zip(GROUP_KEYS, keys, strict=True)), "figure": figure,
                         "n": int(finite.size), "mean": mean,
                         "sd": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
                         "ci_low": low, "ci_high": high})
    out = pd.DataFrame(rows, columns=[*GROUP_KEYS, "figure", "n", "mean", "sd", "ci_low",
                                      "ci_high"])
    return sort_methods(out)


def _wilcoxon(diffs: np.ndarray) -> float:
    if diffs.size < WILCOXON_MIN_PAIRS or not np.any(diffs):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.wilcoxon(diffs).pvalue)


def _paired_row(base: pd.DataFrame, other: pd.DataFrame, figure: str, confidence: float) -> dict:
    merged = base.merge(other, on="seed", suffixes=("_base", ""))
    merged = merged[np.isfinite(merged[f"{figure}_base"].astype("float64"))
                    & np.isfinite(merged[figure].astype("float64"))]
    a = merged[f"{figure}_base"].to_numpy(dtype="float64")
    b = merged[figure].to_numpy(dtype="float64")
    diffs = b - a
    mean_diff, low, high = t_interval(diffs, confidence)
    t, p = math.nan, math.nan
    if diffs.size >= 2 and not np.allclose(diffs, diffs[0]):  # else t is 0/0
        res = stats.ttest_rel(b, a)
        t, p = float(res.statistic), float(res.pvalue)
    return {"n_pairs": int(diffs.size), "seeds": ",".join(map(str, merged["seed"].tolist())),
            "baseline_mean": float(a.mean()) if a.size else math.nan,
            "mean": float(b.mean()) if b.size else math.nan, "mean_diff": mean_diff,
            "ci_low": low, "ci_high": high, "t": t, "pvalue": p,
            "wilcoxon_pvalue": _wilcoxon(diffs)}


def paired_test(runs, baseline_alpha2: float = 0.0, *, figure: str = "test_error",
                confidence: float = 0.95, **run_table_options) -> pd.DataFrame:
    """Paired comparison of each method against the baseline over matching seeds.

    The baseline is plain softmax (``loss == "softmax"``, which includes Noisy Softmax at
    alpha2 = 0) or, with ``baseline_alpha2 > 0``, Noisy Softmax at that alpha2. Every other
    group of :data:`GROUP_KEYS` is paired with the baseline run of the same dataset and
    seed; ``diff = value - baseline``.

    * paired t-test (:func:`scipy.stats.ttest_rel`), two-sided, with the t-interval of the
      mean difference;
    * Wilcoxon signed-rank p-value (:func:`scipy.stats.wilcoxon`) only with at least
      :data:`WILCOXON_MIN_PAIRS` (6) pairs -- with 5 or fewer its exact p-value can never
      reach 0.05 -- else NaN.

    Args:
        runs: runs / paths or a :func:`run_table` frame.
        baseline_alpha2: the baseline's alpha2 (0.0 = plain softmax; else Noisy Softmax).
        figure: the per-run figure compared (``test_error``, ``onset_step``, ...).
        confidence: level of the interval of the mean difference.

    Returns:
        One row per compared group: ``dataset, loss, setting, noise, alpha2, n_pairs, seeds,
        baseline_mean, mean, mean_diff, ci_low, ci_high, t, pvalue, wilcoxon_pvalue``.
        Statistics are NaN with fewer than 2 pairs or when all differences are equal.
        Empty (with these columns) when no baseline run exists.
    """
    table = _table(runs, run_table_options)
    columns = [*GROUP_KEYS, "n_pairs", "seeds", "baseline_mean", "mean", "mean_diff",
               "ci_low", "ci_high", "t", "pvalue", "wilcoxon_pvalue"]
    if baseline_alpha2 == 0:
        is_base = (table["loss"] == SOFTMAX).to_numpy()
    else:
        is_base = ((table["loss"] == NOISY)
                   & np.isclose(table["alpha2"].astype("float64"), baseline_alpha2)).to_numpy()
    rows = []
    for keys, group in table[~is_base].groupby(list(GROUP_KEYS), sort=False):
        dataset = keys[0]
        base = table[is_base & (table["dataset"] == dataset)][["seed", figure]]
        if base.empty:
            continue
        base = base.drop_duplicates("seed")
        row = _paired_row(base, group[["seed", figure]].drop_duplicates("seed"), figure,
                          confidence)
        rows.append({**dict(zip(GROUP_KEYS, keys, strict=True)), **row})
    out = pd.DataFrame(rows, columns=columns)
    return sort_methods(out) if len(out) else out


#: The figures of the short comparison table: column heading and number format (a format
#: spec or a function; :func:`satkit.analysis.markdown.format_sig` is three significant figures).
COMPARISON_FIGURES: dict[str, tuple[str, Format]] = {
    "test_error": ("test error %", format_sig),
    "test_ece": ("ECE", format_sig),
    "test_ece_ts": ("ECE after TS", format_sig),
    "onset_step": ("onset step (clean)", ".0f"),
    "onset_step_noisy": ("onset step (training logits)", ".0f"),
    "median_saturation_step": ("median sample onset (clean)", ".0f"),
    "median_saturation_step_noisy": ("median sample onset (training logits)", ".0f"),
    "grad_target_late": ("late |dL/df_y|", format_sig),
}


def comparison_table(runs, *, figures: Mapping[str, tuple[str, Format]] | None = None,
                     confidence: float = 0.95,
                     **run_table_options) -> pd.DataFrame:
    """One row per method (see :data:`GROUP_KEYS`): each figure's mean across seeds, as text.

    A cell reads ``"mean"`` for one seed (no interval) and ``"mean ± half-width"`` (the
    Student-t interval) for several; a saturation figure that no run reached (e.g. the onset
    when nothing saturated) reads ``"never"``, and one the runs did not record (the
    training-logit view of runs recorded before it existed; see ``noisy_view`` in
    :func:`run_table`) reads ``"–"``. The onsets are steps (whole numbers); the test error
    and the late gradient have three significant figures.

    Returns:
        Columns ``method, alpha2, seeds`` and one per figure (``figures`` maps a run-table
        column to its heading and format; default :data:`COMPARISON_FIGURES`: test error,
        ECE and ECE after temperature scaling, onset in the clean and the training-logit
        view, median sample onset in both views, late |dL/df_y|); sorted by data set and
        method (:func:`sort_methods`). A calibration figure no run measured (ECE after
        temperature scaling without a validation split) is left out.

    Example:
        >>> t = pd.DataFrame({"run": ["a", "b"], "dataset": "d", "noise": "annealed",
        ...                   "alpha2": [0.1, 0.1], "seed": [0, 1], "test_error": [1.0, 3.0],
        ...                   "grad_target_late": [0.0021, 0.0023]})
        >>> c = comparison_table(t, figures={"test_error": ("err", ".1f"),
        ...                                  "grad_target_late": ("grad", format_sig)})
        >>> c["err"].item(), c["grad"].item()
        ('2.0 ± 12.7', '0.00220 ± 0.0013')
    """
    figures = COMPARISON_FIGURES if figures is None else figures
    rows = [{"method": method_label(alpha2, noise, loss, setting), "alpha2": alpha2,
             "seeds": seeds, **{figures[f][0]: text for f, text in cells.items()}}
            for (_dataset, loss, setting, noise, alpha2), seeds, cells
            in figure_cells(runs, figures={f: fmt for f, (_, fmt) in figures.items()},
                            confidence=confidence, **run_table_options)]
    headings = [heading for figure, (heading, _) in figures.items()
                if figure not in CALIBRATION_FIGURES or any(r.get(heading, "–") != "–"
                                                            for r in rows)]
    return pd.DataFrame(rows, columns=["method", "alpha2", "seeds", *headings])


def figure_cells(runs, *, figures: Mapping[str, Format], confidence: float = 0.95,
                 **run_table_options) -> list[tuple[tuple, int, dict[str, str]]]:
    """Each method's figures across seeds as text (the cells of :func:`comparison_table`).

    Returns:
        One ``(group keys, seeds, {figure: text})`` per group of :data:`GROUP_KEYS`, in
        :func:`sort_methods` order; ``seeds`` is the most runs with a finite value of any
        figure. A text is ``"mean"`` (one seed), ``"mean ± half-width"``, ``"never"`` (no run
        reached it) or ``"–"`` (not recorded: a noisy-view or settled figure of runs recorded
        before those existed, a calibration figure not measured).
    """
    table = _table(runs, run_table_options)
    summary = seed_summary(table, figures=list(figures), confidence=confidence)
    out = []
    for keys, group in summary.groupby(list(GROUP_KEYS), sort=False, dropna=False):
        members = table
        for key, value in zip(GROUP_KEYS, keys, strict=True):
            members = members[members[key] == value]
        recorded = "noisy_view" not in members or bool(members["noisy_view"].any())
        cells = {}
        for r in group.itertuples(index=False):
            known = recorded or r.figure not in NOISY_VIEW_FIGURES
            cells[r.figure] = _cell(r, figures[r.figure]) if known else "–"
        out.append((keys, int(group["n"].max()) if len(group) else 0, cells))
    return out


def _cell(r, fmt: Format) -> str:
    if r.n == 0 or not math.isfinite(r.mean):
        return "–" if r.figure in CALIBRATION_FIGURES else "never"
    return format_interval(r.mean, r.ci_high - r.mean, fmt)
