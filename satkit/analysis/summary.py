"""One row of summary figures per run: the unit the across-seed statistics work on."""

from __future__ import annotations

import math

import pandas as pd

from satkit.analysis.onset import Window, onset_step, step_window, window_mean
from satkit.analysis.runs import Run, as_runs
from satkit.analysis.survival_analysis import median_time_to_saturation

__all__ = ["RUN_TABLE_FIGURES", "run_table"]

#: The per-run figures :func:`run_table` computes (and :func:`seed_summary` summarises).
RUN_TABLE_FIGURES = ("test_error", "best_test_error", "onset_step", "grad_target_late",
                     "p_target_late", "noise_late", "feature_norm_late",
                     "median_saturation_step", "seconds_per_step")

_LATE_COLUMNS = {"grad_target_late": "grad_target_mean", "p_target_late": "p_target_mean",
                 "noise_late": "noise_mean", "feature_norm_late": "feature_norm_mean"}


def _test_error(run: Run, key: str, reduce) -> float:
    if key in run.summary and run.summary[key] is not None:
        return float(run.summary[key])
    errors = run.epochs["test_error"].dropna() if "test_error" in run.epochs else pd.Series()
    return float(reduce(errors)) if len(errors) else math.nan


def _late_means(run: Run, late: Window) -> dict[str, float]:
    if len(run.metrics) == 0:
        return dict.fromkeys(_LATE_COLUMNS, math.nan)
    window = step_window(run.metrics, late)
    return {name: window_mean(run.metrics, column, window) if column in run.metrics else math.nan
            for name, column in _LATE_COLUMNS.items()}


def _onset(run: Run, tau: float, stat: str, window: int) -> float:
    if len(run.metrics) and stat in run.metrics:
        onset = onset_step(run.metrics, tau=tau, stat=stat, window=window)
    else:  # nothing recorded here: trust what the trainer wrote
        onset = run.summary.get("onset_step")
    return math.nan if onset is None else float(onset)


def _median_saturation(run: Run) -> float:
    if len(run.samples) == 0:
        return math.nan
    return median_time_to_saturation(run)["median"]


def run_table(runs, *, tau: float = 0.99, stat: str = "p_target_median", window: int = 1,
              late: Window = 0.25) -> pd.DataFrame:
    """Summary figures of each run, one row per run.

    Args:
        runs: runs, or paths / globs / comparison directories (see
            :func:`satkit.analysis.as_runs`).
        tau, stat, window: the onset definition (:func:`satkit.analysis.onset_step`); the
            onset is recomputed from the metrics so every run uses the same definition.
        late: the late window of each run (fraction of its step range or ``(start, stop)``).

    Returns:
        Columns ``run, dataset, model, alpha2, noise, loss, setting, method, seed,
        last_step`` (``loss`` is the method's name, ``setting`` its main parameter, ``method``
        the readable label of :func:`satkit.analysis.method_label`; ``last_step`` the last
        recorded step) then
        :data:`RUN_TABLE_FIGURES`: ``test_error``/``best_test_error`` (%, from summary.json,
        else the last/min of epochs.csv), ``onset_step`` (NaN = never saturated),
        ``grad_target_late``, ``p_target_late``, ``noise_late``, ``feature_norm_late``
        (late-window means), ``median_saturation_step`` (per-sample median time to
        saturation; NaN when not reached or no samples table), ``seconds_per_step``
        (training wall time per step from summary.json). Missing figures are NaN.
        ``noise`` is ``"none"`` for softmax runs.
    """
    rows = []
    for run in as_runs(runs):
        rows.append({
            "run": run.name, "dataset": run.dataset,
            "model": str(run.config.get("model", run.summary.get("model", ""))),
            "alpha2": run.alpha2, "noise": run.noise, "loss": run.loss, "setting": run.setting,
            "method": run.label, "seed": run.seed,
            "last_step": run.last_step,
            "test_error": _test_error(run, "test_error", lambda e: e.iloc[-1]),
            "best_test_error": _test_error(run, "best_test_error", lambda e: e.min()),
            "onset_step": _onset(run, tau, stat, window),
            **_late_means(run, late),
            "median_saturation_step": _median_saturation(run),
            "seconds_per_step": run.seconds_per_step,
        })
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    table["last_step"] = table["last_step"].astype("Int64")
    return table
