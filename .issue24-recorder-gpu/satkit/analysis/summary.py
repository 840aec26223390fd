"""Summary figures of a run: one row per run (the unit the across-seed statistics work on),
and the JSON-ready summary the trainer writes into summary.json."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.onset import Window, onset_step, step_window, window_mean
from satkit.analysis.runs import Run, as_runs, load_run
from satkit.analysis.survival_analysis import median_time_to_saturation
from satkit.analysis.views import event_column
from satkit.schema import DEFAULT_TAU, VIEWS, view_column

__all__ = ["CALIBRATION_FIGURES", "NOISY_VIEW_FIGURES", "RUN_TABLE_COLUMNS",
           "RUN_TABLE_FIGURES", "run_table", "saturation_summary"]

#: What :func:`run_table` says about each run before its figures.
RUN_TABLE_COLUMNS = ("run", "dataset", "model", "alpha2", "noise", "loss", "setting", "method",
                     "seed", "last_step", "finished", "epochs", "epochs_planned", "noisy_view")

#: The per-run figures :func:`run_table` computes (and :func:`seed_summary` summarises).
RUN_TABLE_FIGURES = ("test_error", "best_test_error", "onset_step", "onset_step_noisy",
                     "grad_target_late", "p_target_late", "noise_late", "feature_norm_late",
                     "median_saturation_step", "median_saturation_step_noisy",
                     "median_settled_step", "median_settled_step_noisy", "seconds_per_step",
                     "test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
                     "test_overconfidence", "temperature", "test_ece_ts", "test_nll_ts")
#: The calibration figures among them: NaN means "not measured" (a run without a validation
#: split has no temperature; runs written before satkit measured calibration have none).
CALIBRATION_FIGURES = ("test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
                       "test_overconfidence", "temperature", "test_ece_ts", "test_nll_ts")
#: The per-epoch ones (epochs.csv stands in for summary.json, as for the test error).
_EPOCH_CALIBRATION = CALIBRATION_FIGURES[:5]
#: The figures a run recorded before the training-logit view and the settled event cannot
#: give (NaN there means "not recorded", not "never reached"; see ``noisy_view``).
NOISY_VIEW_FIGURES = ("onset_step_noisy", "median_saturation_step_noisy", "median_settled_step",
                      "median_settled_step_noisy")

_LATE_COLUMNS = {"grad_target_late": "grad_target_mean", "p_target_late": "p_target_mean",
                 "noise_late": "noise_mean", "feature_norm_late": "feature_norm_mean"}
# run-table figure -> (event, view) of its per-sample Kaplan-Meier median
_MEDIANS = {"median_saturation_step": ("first", "clean"),
            "median_saturation_step_noisy": ("first", "noisy"),
            "median_settled_step": ("settled", "clean"),
            "median_settled_step_noisy": ("settled", "noisy")}


def _test_error(run: Run, key: str, reduce) -> float:
    if key in run.summary and run.summary[key] is not None:
        return float(run.summary[key])
    errors = run.epochs["test_error"].dropna() if "test_error" in run.epochs else pd.Series()
    return float(reduce(errors)) if len(errors) else math.nan


def _calibration(run: Run) -> dict[str, float]:
    """The calibration figures of summary.json; the per-epoch ones from epochs.csv's last row
    when the summary lacks them (an unfinished run)."""
    out = {}
    for name in CALIBRATION_FIGURES:
        value = run.summary.get(name)
        if value is None and name in _EPOCH_CALIBRATION and name in run.epochs \
                and len(run.epochs):
            value = run.epochs[name].iloc[-1]
        out[name] = math.nan if value is None or pd.isna(value) else float(value)
    return out


def _late_means(run: Run, late: Window) -> dict[str, float]:
    if len(run.metrics) == 0:
        return dict.fromkeys(_LATE_COLUMNS, math.nan)
    window = step_window(run.metrics, late)
    return {name: window_mean(run.metrics, column, window) if column in run.metrics else math.nan
            for name, column in _LATE_COLUMNS.items()}


def _onset(run: Run, tau: float, stat: str, window: int, saturation: str) -> float:
    if len(run.metrics) and view_column(stat, saturation) in run.metrics:
        onset = onset_step(run.metrics, tau, saturation=saturation, stat=stat, window=window)
    else:  # nothing recorded here: trust what the trainer wrote (None when it has nothing)
        onset = run.summary.get(view_column("onset_step", saturation))
    return math.nan if onset is None else float(onset)


def _median(run: Run, event: str, saturation: str) -> float:
    if len(run.samples) == 0 or event_column(event, saturation) not in run.samples:
        return math.nan
    return median_time_to_saturation(run, saturation=saturation, event=event)["median"]


def _has_noisy_view(run: Run) -> bool:
    return "p_target_noisy_median" in run.metrics or "first_saturated_step_noisy" in run.samples


def run_table(runs, *, tau: float = DEFAULT_TAU, stat: str = "p_target_median",
              window: int = 1, late: Window = 0.25) -> pd.DataFrame:
    """Summary figures of each run, one row per run.

    Args:
        runs: runs, or paths / globs / comparison directories (see
            :func:`satkit.analysis.as_runs`).
        tau, stat, window: the onset definition (:func:`satkit.analysis.onset_step`; ``stat``
            in clean naming); the onsets are recomputed from the metrics so every run uses
            the same definition. The per-sample medians use the recorder's threshold (the
            samples table's).
        late: the late window of each run (fraction of its step range or ``(start, stop)``).

    Returns:
        Columns :data:`RUN_TABLE_COLUMNS` (``run, dataset, model, alpha2, noise, loss,
        setting, method, seed, last_step, finished, epochs, epochs_planned, noisy_view``) then
        :data:`RUN_TABLE_FIGURES`. ``loss`` is the method's name, ``setting`` its main
        parameter, ``method`` the readable label of :func:`satkit.analysis.method_label`,
        ``noise`` ``"none"`` for every method but Noisy Softmax; ``last_step`` the last
        recorded step; ``finished`` whether every planned epoch ran (:attr:`Run.finished`),
        ``epochs``/``epochs_planned`` finished and planned epochs (nullable); ``noisy_view``
        whether the run recorded the training-logit view and the settled event.

        Figures: ``test_error``/``best_test_error`` (%, from summary.json, else the
        last/min of epochs.csv); ``onset_step`` (clean) and ``onset_step_noisy`` (training
        logits), NaN = never reached; ``grad_target_late``, ``p_target_late``,
        ``noise_late``, ``feature_norm_late`` (late-window means);
        ``median_saturation_step[_noisy]`` (Kaplan-Meier median of the samples'
        first_saturated_step[_noisy]) and ``median_settled_step[_noisy]`` (of their
        settled_step[_noisy]), NaN when not reached or no samples table;
        ``seconds_per_step`` (training wall time per step from summary.json); the
        :data:`CALIBRATION_FIGURES` ``test_ece``, ``test_ece_adaptive``, ``test_brier``,
        ``test_confidence``, ``test_overconfidence`` (of the last epoch: summary.json, else
        epochs.csv), ``temperature``, ``test_ece_ts``, ``test_nll_ts`` (post-hoc temperature
        scaling; NaN without a validation split). The :data:`NOISY_VIEW_FIGURES` are NaN for
        a run without ``noisy_view``: not recorded.
    """
    rows = []
    for run in as_runs(runs):
        rows.append({
            "run": run.name, "dataset": run.dataset,
            "model": str(run.config.get("model", run.summary.get("model", ""))),
            "alpha2": run.alpha2, "noise": run.noise, "loss": run.loss, "setting": run.setting,
            "method": run.label, "seed": run.seed,
            "last_step": run.last_step, "finished": run.finished, "epochs": run.epochs_done,
            "epochs_planned": run.epochs_planned, "noisy_view": _has_noisy_view(run),
            "test_error": _test_error(run, "test_error", lambda e: e.iloc[-1]),
            "best_test_error": _test_error(run, "best_test_error", lambda e: e.min()),
            "onset_step": _onset(run, tau, stat, window, "clean"),
            "onset_step_noisy": _onset(run, tau, stat, window, "noisy"),
            **_late_means(run, late),
            **{name: _median(run, *spec) for name, spec in _MEDIANS.items()},
            "seconds_per_step": run.seconds_per_step,
            **_calibration(run),
        })
    table = pd.DataFrame(rows)
    for column in ("seed", "last_step", "epochs", "epochs_planned"):
        table[column] = table[column].astype("Int64")
    return table[[*RUN_TABLE_COLUMNS, *RUN_TABLE_FIGURES]]


def _json_number(value: float | None, integer: bool = False) -> int | float | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if integer else float(value)


def saturation_summary(run: Run | str | Path, *, tau: float = DEFAULT_TAU,
                       late: Window = 0.25) -> dict:
    """The saturation figures of one run for its summary.json, JSON-ready.

    Args:
        run: a :class:`Run` or a run directory (the trainer passes its run directory once
            the recorder has closed, so the figures cover the whole run, also after
            ``--resume``).
        tau: the onset threshold on the batch median of p_y (:func:`onset_step`).
        late: the late window, a fraction of the recorded step range (default: the last
            quarter) or ``(start, stop)``.

    Returns:
        ``{"onset_step", "onset_step_noisy", "median_sample_onset",
        "median_sample_onset_noisy", "grad_target_late"}``: the onset in each view (int; None
        when never reached); the Kaplan-Meier median of the samples' first_saturated_step in
        each view (int; None when fewer than half saturated); the mean ``grad_target_mean``
        (|dL/df_y|) over the late window (float). A figure the run's tables cannot give
        (nothing recorded, no samples table, a run without the noisy-view columns) is None.
        Only ints, floats and None: never NaN.

    Raises:
        RunError: the run directory is missing or corrupt.

    Example:
        >>> saturation_summary(run_dir)      # doctest: +SKIP
        {'onset_step': 92, 'onset_step_noisy': 108, 'median_sample_onset': 21,
         'median_sample_onset_noisy': 30, 'grad_target_late': 0.0021}
    """
    run = run if isinstance(run, Run) else load_run(run)
    out: dict[str, int | float | None] = {}
    for view in VIEWS:
        has_onset = len(run.metrics) > 0 and view_column("p_target_median", view) in run.metrics
        onset = onset_step(run, tau, saturation=view) if has_onset else None
        out[view_column("onset_step", view)] = onset
    for view in VIEWS:
        try:
            median = _median(run, "first", view)
        except RunError:  # e.g. never-saturated samples of a run whose last step is unknown
            median = math.nan
        out[view_column("median_sample_onset", view)] = _json_number(median, integer=True)
    grad = None
    if len(run.metrics) and "grad_target_mean" in run.metrics:
        grad = _json_number(window_mean(run, "grad_target_mean", step_window(run, late)))
    out["grad_target_late"] = grad
    return out
