"""The Markdown report of ``satkit report``: every table of the analysis in one document.

Saturation is reported in both views side by side (:mod:`satkit.analysis.views`): the clean
p_y (eval-mode logits) and the p_y of the training logits, the softmax the loss -- and its
vanishing gradient p_y - 1 -- is computed on.
"""

from __future__ import annotations

import math

import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.label_report import label_issues_section
from satkit.analysis.labels import method_label, method_order
from satkit.analysis.markdown import format_sig, markdown_table
from satkit.analysis.onset import Window, postponement
from satkit.analysis.paper import paper_table, paper_table_markdown
from satkit.analysis.ranking import has_several_methods, rank_methods, ranking_markdown
from satkit.analysis.runs import Run, as_runs
from satkit.analysis.seeds import WILCOXON_MIN_PAIRS, figure_cells, paired_test
from satkit.analysis.summary import run_table
from satkit.analysis.survival_analysis import logrank, median_time_to_saturation
from satkit.analysis.views import VIEW_LABELS, event_column
from satkit.methods import SOFTMAX
from satkit.schema import DEFAULT_TAU, VIEWS, view_column

__all__ = ["baseline_pairs", "calibration_table", "postponement_table", "report",
           "run_status"]

_SEED_FIGURES = {"test_error": ("test error %", format_sig),
                 "test_ece": ("ECE", format_sig),
                 "onset_step": ("onset step (clean)", ".0f"),
                 "onset_step_noisy": ("onset step (training logits)", ".0f"),
                 "median_saturation_step": ("median sample onset (clean)", ".0f"),
                 "median_saturation_step_noisy": ("median sample onset (training logits)", ".0f"),
                 "grad_target_late": ("late |dL/df_y|", format_sig)}
_VIEWS_TEXT = (
    "Two views of saturation (a sample is saturated when its p_y >= {tau:g}):\n\n"
    "* **clean**: p_y of the eval-mode logits, what the model predicts. Noisy Softmax changes "
    "only the training logits, so this onset need not move, and on easy data it barely does.\n"
    "* **training logits**: p_y of the logits the loss was computed on (Noisy Softmax's noise "
    "on the target logit, a margin, a temperature; the same as clean for softmax and the loss "
    "regularisers). Its p_y - 1 is the gradient on the target logit, so this is the view in "
    "which saturation is postponed, or not.\n")
_PVALUES_TEXT = (
    "P-values: the log-rank p-values are **one-sided** (alternative: softmax saturates "
    "earlier than the run); the paired t-test and Wilcoxon p-values are **two-sided**.\n")


def baseline_pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pair every run that is not plain softmax (Noisy Softmax, a regulariser) with a softmax
    run of the same data set.

    The softmax run with the same seed is preferred, else the first one. Runs without a
    softmax baseline of their data set are left out.
    """
    pairs = []
    for run in runs:
        if run.loss == SOFTMAX:
            continue
        bases = [b for b in runs if b.loss == SOFTMAX and b.dataset == run.dataset]
        same_seed = [b for b in bases if b.seed == run.seed]
        if bases:
            pairs.append(((same_seed or bases)[0], run))
    return pairs


def run_status(run: Run) -> str:
    """``"finished"``, or ``"unfinished"`` with how far it got (``"unfinished (3/12 epochs)"``;
    the planned count when known)."""
    if run.finished:
        return "finished"
    done, planned = run.epochs_done, run.epochs_planned
    if done is None:
        return "unfinished"
    return f"unfinished ({done}/{planned} epochs)" if planned is not None \
        else f"unfinished ({done} epochs)"


def _runs_section(runs: list[Run], table: pd.DataFrame) -> str:
    recorded = {"clean": [len(r.metrics) > 0 for r in runs], "noisy": table["noisy_view"]}
    shown = pd.DataFrame({
        "run": table["run"], "dataset": table["dataset"], "method": table["method"],
        "seed": table["seed"], "status": [run_status(r) for r in runs],
        "last step": table["last_step"], "test error %": table["test_error"],
        "ECE": table["test_ece"],
        **{f"onset step ({VIEW_LABELS[view]})": [
            _onset_text(v, known) for v, known
            in zip(table[view_column("onset_step", view)], recorded[view], strict=True)]
           for view in VIEWS},
        "late |dL/df_y|": table["grad_target_late"]})
    unfinished = sum(not r.finished for r in runs)
    note = (f"\n{unfinished} run(s) unfinished: their figures cover only the steps they "
            "recorded.\n") if unfinished else ""
    return ("## Runs\n\nOnset: the first step at which the batch median of p_y reaches tau "
            "(\"never\": not within the run; \"–\": not recorded, e.g. the training-logit "
            "view of a run recorded before satkit kept it).\n\n" + markdown_table(shown) + note)


def _onset_text(value: float, recorded: bool) -> str:
    if not recorded:
        return "–"
    return "never" if math.isnan(value) else f"{value:.0f}"


def _seed_section(table: pd.DataFrame) -> str:
    rows = []
    for (dataset, loss, setting, noise, alpha2), seeds, cells in figure_cells(
            table, figures={f: fmt for f, (_, fmt) in _SEED_FIGURES.items()}):
        rows.append({"dataset": dataset, "method": method_label(alpha2, noise, loss, setting),
                     **{_SEED_FIGURES[f][0]: text for f, text in cells.items()},
                     "seeds": seeds})
    return ("## Across seeds\n\nMean ± half-width of the 95% Student-t interval over seeds "
            "(a single seed: the value alone, no interval). Onsets count only runs that "
            "saturated (\"never\": none did; \"–\": not recorded). Median sample onset: "
            "Kaplan-Meier median of the step at which a sample first saturated.\n\n"
            + markdown_table(pd.DataFrame(rows)))


def _onset_change(soft: float, run: float, recorded: bool, last_step) -> str:
    if not recorded:
        return "–"
    left = "never" if math.isnan(soft) else f"{soft:.0f}"
    if math.isnan(run):
        right = f"never by {last_step}" if last_step is not None else "never"
    else:
        right = f"{run:.0f}"
    ratio = f" (×{run / soft:.2f})" if soft > 0 and math.isfinite(run) else ""
    return f"{left} → {right}{ratio}"


def _postponement_section(pairs, table: pd.DataFrame, runs: list[Run], tau: float,
                          window: int, late: Window) -> str:
    row_of = {id(run): row for run, row in zip(runs, table.itertuples(index=False),
                                               strict=True)}
    rows = []
    for base, run in pairs:
        if base.metrics.empty or run.metrics.empty:
            rows.append({"run": run.name, "baseline": base.name,
                         "onset, clean": "no metrics recorded"})
            continue
        b, r = row_of[id(base)], row_of[id(run)]
        p = postponement(base, run, tau=tau, window=window, late=late)
        rows.append({
            "run": run.name, "baseline": base.name,
            "onset, clean": _onset_change(b.onset_step, r.onset_step, True, r.last_step),
            "onset, training logits": _onset_change(b.onset_step_noisy, r.onset_step_noisy,
                                                    b.noisy_view and r.noisy_view, r.last_step),
            "late |dL/df_y|, softmax → run": (f"{format_sig(p['grad_late_softmax'])} → "
                                              f"{format_sig(p['grad_late_noisy'])}"),
            "late grad ratio": p["grad_ratio_late"],
            "noise late/early": p["noise_annealing"]})
    if not rows:
        return "## Postponement\n\nNo softmax baseline (alpha2 = 0) to compare against.\n"
    return ("## Postponement\n\nEach run against the softmax run of its data set (same seed "
            "when there is one): the onset of softmax → the run's, in both views (×: their "
            "ratio; > 1: the run saturates later). Late grad ratio > 1: more target-logit "
            "gradient still flows late in training; noise late/early < 1: the noise anneals "
            "(Noisy Softmax; margin heads report their margin here).\n\n"
            + markdown_table(pd.DataFrame(rows)))


def postponement_table(runs, *, tau: float = DEFAULT_TAU, late: Window = 0.25) -> pd.DataFrame:
    """Is saturation postponed? Each run that is not plain softmax against the softmax run of
    its data set (same seed when there is one), in both views, in one short table.

    Columns: ``method``; ``sample onset, clean`` and ``sample onset, training logits`` (the
    Kaplan-Meier median of the step at which a sample first saturated, softmax → run);
    ``p (softmax earlier), clean`` and ``p (softmax earlier), training logits`` (one-sided
    log-rank p-values of "softmax's samples saturate earlier": small = postponed);
    ``late |dL/df_y| ratio`` (run / softmax over the last ``late`` of the steps; > 1: more
    gradient still flows) and ``noise late/early`` (< 1: the noise anneals). "–": the run did
    not record that view.

    Args:
        runs: runs or paths / globs / comparison directories.
        tau: the saturation threshold of the onsets (the per-sample record uses the
            recorder's last threshold).
        late: the late window.

    Example:
        >>> postponement_table(comparison_dir)  # doctest: +SKIP
    """
    runs = sorted(as_runs(runs), key=lambda r: (r.dataset, method_order(r.loss), r.alpha2,
                                                r.noise, r.setting, r.seed or 0))
    rows = []
    for base, run in baseline_pairs(runs):
        if base.metrics.empty or run.metrics.empty:
            continue
        p = postponement(base, run, tau=tau, late=late)
        row = {"method": run.label + ("" if run.seed is None else f", seed {run.seed}")}
        for view in VIEWS:
            row[f"sample onset, {VIEW_LABELS[view]}"] = (
                f"{_median_text(base, view, 'first')} → {_median_text(run, view, 'first')}")
        for view in VIEWS:
            row[f"p (softmax earlier), {VIEW_LABELS[view]}"] = _earlier_pvalue(base, run, view)
        row["late |dL/df_y| ratio"] = p["grad_ratio_late"]
        row["noise late/early"] = p["noise_annealing"]
        rows.append(row)
    return pd.DataFrame(rows)


def _median_text(run: Run, view: str, event: str) -> str:
    if event_column(event, view) not in run.samples:
        return "–"
    m = median_time_to_saturation(run, saturation=view, event=event)
    if math.isnan(m["median"]):
        return f"not reached by step {run.last_step}"
    high = "–" if math.isnan(m["ci_high"]) else f"{m['ci_high']:.0f}"
    low = "–" if math.isnan(m["ci_low"]) else f"{m['ci_low']:.0f}"
    return f"{m['median']:.0f} [{low}, {high}]"


def _earlier_pvalue(base: Run, run: Run, view: str) -> float:
    try:
        return logrank(base, run, saturation=view, alternative="a_earlier")["pvalue"]
    except RunError:  # a run recorded before the view existed
        return math.nan


def _survival_section(runs: list[Run], pairs) -> str:
    base_of = {id(run): base for base, run in pairs}
    rows = []
    for run in runs:
        if len(run.samples) == 0:
            continue
        n = int(run.samples["last_seen_step"].notna().sum()) if "last_seen_step" in run.samples \
            else len(run.samples)
        row = {"run": run.name, "samples": n,
               "median first step, clean": _median_text(run, "clean", "first"),
               "median first step, training logits": _median_text(run, "noisy", "first"),
               "median settled step, training logits": _median_text(run, "noisy", "settled")}
        base = base_of.get(id(run))
        if base is not None and len(base.samples):
            row["vs"] = base.name
            for view in ("clean", "noisy"):
                row[f"p {VIEW_LABELS[view]} (one-sided)"] = _earlier_pvalue(base, run, view)
        rows.append(row)
    if not rows:
        return "## Individual saturation\n\nNo run kept a per-sample table.\n"
    return ("## Individual saturation\n\nTime to saturation per sample (Kaplan-Meier; samples "
            "that never saturated are censored at the run's last step): the median first step "
            "at which a sample's p_y >= tau in each view, with its 95% interval, and the "
            "median step from which it stayed saturated under the training logits (judged at "
            "the run's end). p: one-sided log-rank test of \"softmax saturates earlier\" "
            "(`logrank(softmax, run, alternative=\"a_earlier\")`) in each view; a small p "
            "supports postponement. \"–\": not recorded.\n\n"
            + markdown_table(pd.DataFrame(rows), formats={
                "p clean (one-sided)": ".3g", "p training logits (one-sided)": ".3g"}))


def _paired_section(table: pd.DataFrame) -> str:
    test = paired_test(table)
    if test.empty or (test["n_pairs"] < 2).all():
        return ("## Paired test\n\nNeeds at least two seeds run for both softmax and another "
                "method.\n")
    shown = test.assign(method=[method_label(a, n, loss, setting) for a, n, loss, setting
                                in zip(test.alpha2, test.noise, test.loss, test.setting,
                                       strict=True)])
    shown = shown[["dataset", "method", "n_pairs", "baseline_mean", "mean", "mean_diff",
                   "ci_low", "ci_high", "pvalue", "wilcoxon_pvalue"]]
    return ("## Paired test (test error)\n\nDifference to softmax over runs with the same "
            "seed: paired t-test, two-sided; Wilcoxon signed-rank, two-sided, only with >= "
            f"{WILCOXON_MIN_PAIRS} pairs.\n\n"
            + markdown_table(shown, formats={"pvalue": ".3g", "wilcoxon_pvalue": ".3g"}))


_CALIBRATION_FIGURES = {
    "test_error": ("test error %", format_sig), "test_ece": ("ECE", format_sig),
    "test_ece_adaptive": ("adaptive ECE", format_sig), "test_brier": ("Brier", format_sig),
    "test_confidence": ("confidence", format_sig),
    "test_overconfidence": ("overconfidence", format_sig),
    "temperature": ("T", format_sig), "test_ece_ts": ("ECE after TS", format_sig),
    "test_nll_ts": ("NLL after TS", format_sig)}


def calibration_table(runs) -> pd.DataFrame:
    """Does the training method beat a single temperature? One row per method: test error,
    ECE, equal-mass ECE, Brier score, mean confidence and overconfidence of the final test
    logits, then the temperature fitted on the validation split and the test ECE and NLL
    after scaling by it (mean ± half-width of the 95 % t-interval over seeds; one seed: the
    value alone; "–": not measured, e.g. no validation split).

    Args:
        runs: runs or paths / globs / comparison directories, or a
            :func:`satkit.analysis.run_table` frame.
    """
    rows = []
    table = runs if isinstance(runs, pd.DataFrame) else run_table(runs)
    for (dataset, loss, setting, noise, alpha2), seeds, cells in figure_cells(
            table, figures={f: fmt for f, (_, fmt) in _CALIBRATION_FIGURES.items()}):
        rows.append({"dataset": dataset, "method": method_label(alpha2, noise, loss, setting),
                     "seeds": seeds,
                     **{_CALIBRATION_FIGURES[f][0]: text for f, text in cells.items()}})
    return pd.DataFrame(rows)


def _calibration_section(table: pd.DataFrame) -> str:
    return ("## Calibration\n\nA saturated softmax is a confident one. ECE: expected "
            "calibration error of the final model's top-1 confidence on the test set (15 "
            "equal-width bins; adaptive: equal-mass bins); overconfidence: mean confidence "
            "minus accuracy (> 0: overconfident). T: the one temperature fitted by NLL on the "
            "validation split (`--val-fraction`); ECE and NLL after TS: the test logits "
            "divided by it, the post-hoc baseline a training-time method has to beat. Mean ± "
            "half-width of the 95% t-interval over seeds (one seed: the value alone; \"–\": "
            "not measured).\n\n" + markdown_table(calibration_table(table)))


def _ranking_section(runs: list[Run], tau: float, window: int, late: Window,
                     rank_by: str = "test_error") -> str:
    tables = "\n\n".join(
        f"### {heading}\n\n" + ranking_markdown(rank_methods(runs, tau=tau, window=window,
                                                              late=late, saturation=view,
                                                              rank_by=rank_by))
        for view, heading in (("clean", "Clean view (eval-mode logits)"),
                              ("noisy", "Under the training logits (what each loss trained on)")))
    return ("## Ranking of the methods\n\nEvery method on the five figures of issue 7 and its "
            f"calibration, best first on {rank_by}; (#k) is the rank on that figure within "
            "the data set (later "
            "onset, later median sample onset and more late gradient rank higher: they "
            "postpone saturation more). Cost per step is the measured training wall time per "
            "step relative to softmax on the machine that trained the runs (noisy when it "
            "was busy; `benchmarks/bench_heads.py` is the controlled measurement). Onset: "
            "mean over seeds that saturated; median sample onset: Kaplan-Meier over the "
            "seeds' pooled samples, censored at the last step. Both in each view: the "
            "methods that change the logits (Noisy Softmax, margins, temperature) postpone "
            "saturation of the softmax they train on, which the clean view does not see.\n\n"
            + tables)


def report(runs, *, tau: float = DEFAULT_TAU, window: int = 1, late: Window = 0.25,
           rank_by: str = "test_error") -> str:
    """Build the Markdown report for a set of runs.

    Sections: runs table (with each run's status: finished, or unfinished with its epochs
    done / planned), a ranking of the methods (:func:`satkit.analysis.rank_methods`, sorted
    by ``rank_by``; only when the runs hold a softmax regulariser besides softmax / Noisy
    Softmax, see :func:`satkit.analysis.has_several_methods`), calibration against post-hoc
    temperature scaling (:func:`calibration_table`), across-seed intervals, postponement
    against softmax, individual saturation (survival medians, one-sided log-rank p-values),
    which samples never saturate (Data Maps regions, the most suspicious samples, and
    the detection quality of runs trained with ``--label-noise``), the paired test of test
    error (two-sided), the paper's table. Onsets and per-sample medians are given in the
    clean view and under the training logits; figures a run did not record (the
    training-logit view of older runs) read "–".

    Args:
        runs: runs or paths / globs / comparison directories.
        tau, window: the onset definition (:func:`satkit.analysis.onset_step`, on the batch
            median of p_y).
        late: the late window (:func:`satkit.analysis.postponement`).

    Returns:
        The report as one Markdown string.

    Raises:
        RunError: a run directory is missing or corrupt.
    """
    runs = sorted(as_runs(runs), key=lambda r: (r.dataset, method_order(r.loss), r.alpha2,
                                                r.noise, r.setting, r.seed or 0))
    table = run_table(runs, tau=tau, window=window, late=late)
    pairs = baseline_pairs(runs)
    late_text = f"the last {late:.0%} of steps" if isinstance(late, float) else f"steps {late}"
    parts = [
        "# satkit report\n",
        f"{len(runs)} run(s). " + _VIEWS_TEXT.format(tau=tau),
        f"Onset: first step at which the batch median of p_y reaches {tau:g} (rolling window "
        f"{window}); late window: {late_text}. " + _PVALUES_TEXT,
        _runs_section(runs, table),
        *([_ranking_section(runs, tau, window, late, rank_by)]
          if has_several_methods(runs) else []),
        _calibration_section(table),
        _seed_section(table),
        _postponement_section(pairs, table, runs, tau, window, late),
        _survival_section(runs, pairs),
        label_issues_section(runs),
        _paired_section(table),
        "## Paper comparison\n\nThe paper's table (arXiv 1708.03769, test error %) next to the "
        "measured test errors.\n\n" + paper_table_markdown(paper_table(runs)),
    ]
    return "\n".join(parts)
