"""The Markdown report of ``satkit report``: every table of the analysis in one document."""

from __future__ import annotations

import math

import pandas as pd

from satkit.analysis.labels import method_label, method_order
from satkit.analysis.markdown import markdown_table
from satkit.analysis.onset import Window, postponement
from satkit.analysis.paper import paper_table, paper_table_markdown
from satkit.analysis.ranking import has_several_methods, rank_methods, ranking_markdown
from satkit.analysis.runs import Run, as_runs
from satkit.analysis.seeds import GROUP_KEYS, WILCOXON_MIN_PAIRS, paired_test, seed_summary
from satkit.analysis.summary import run_table
from satkit.analysis.survival_analysis import logrank, median_time_to_saturation

__all__ = ["baseline_pairs", "report"]

_SEED_FIGURES = ("test_error", "onset_step", "grad_target_late", "median_saturation_step")


def baseline_pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pair every run that is not plain softmax (Noisy Softmax, a regulariser) with a softmax
    run of the same data set.

    The softmax run with the same seed is preferred, else the first one. Runs without a
    softmax baseline of their data set are left out.
    """
    pairs = []
    for run in runs:
        if run.loss == "softmax":
            continue
        bases = [b for b in runs if b.loss == "softmax" and b.dataset == run.dataset]
        same_seed = [b for b in bases if b.seed == run.seed]
        if bases:
            pairs.append(((same_seed or bases)[0], run))
    return pairs


def _interval(mean: float, low: float, high: float, fmt: str) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(low):
        return format(mean, fmt)
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def _seed_section(table: pd.DataFrame) -> str:
    summary = seed_summary(table, figures=_SEED_FIGURES)
    fmts = {"test_error": ".2f", "onset_step": ".0f", "grad_target_late": ".3g",
            "median_saturation_step": ".0f"}
    rows = []
    for (dataset, loss, setting, noise, alpha2), group in summary.groupby(list(GROUP_KEYS),
                                                                          sort=False):
        row = {"dataset": dataset, "method": method_label(alpha2, noise, loss, setting)}
        for rec in group.itertuples():
            row[rec.figure] = _interval(rec.mean, rec.ci_low, rec.ci_high, fmts[rec.figure])
        row["seeds"] = int(group["n"].max())
        rows.append(row)
    shown = pd.DataFrame(rows).rename(columns={
        "test_error": "test error %", "onset_step": "onset step",
        "grad_target_late": "late |dL/df_y|", "median_saturation_step": "median sample onset"})
    return ("## Across seeds\n\nMean and 95% Student-t interval over seeds (a single seed: "
            "the value alone). Onsets count only runs that saturated.\n\n"
            + markdown_table(shown))


def _postponement_section(pairs, tau: float, window: int, late: Window) -> str:
    rows = []
    for base, run in pairs:
        if base.metrics.empty or run.metrics.empty:
            rows.append({"run": run.name, "baseline": base.name,
                         "onset softmax": "no metrics recorded"})
            continue
        p = postponement(base, run, tau=tau, window=window, late=late)
        rows.append({"run": run.name, "baseline": base.name,
                     "onset softmax": p["onset_softmax"], "onset run": p["onset_noisy"],
                     "onset ratio": (f"> {p['onset_ratio_lower_bound']:.2f}"
                                     if p["noisy_censored"] else p["onset_ratio"]),
                     "late grad ratio": p["grad_ratio_late"],
                     "noise late/early": p["noise_annealing"]})
    if not rows:
        return "## Postponement\n\nNo softmax baseline (alpha2 = 0) to compare against.\n"
    return ("## Postponement\n\nEach run against the softmax run of its data set (same seed "
            "when there is one). Onset ratio > 1: the run saturates later; late grad "
            "ratio > 1: more target-logit gradient still flows late in training; noise "
            "late/early < 1: the noise anneals (Noisy Softmax; margin heads report their "
            "margin here).\n\n" + markdown_table(pd.DataFrame(rows)))


def _survival_section(runs: list[Run], pairs) -> str:
    base_of = {id(run): base for base, run in pairs}
    rows = []
    for run in runs:
        if len(run.samples) == 0:
            continue
        m = median_time_to_saturation(run)
        row = {"run": run.name, "samples": m["n"], "saturated": m["events"],
               "median step": _interval(m["median"], m["ci_low"], m["ci_high"], ".0f")}
        if math.isnan(m["median"]):
            row["median step"] = f"not reached by step {run.last_step}"
        elif math.isnan(m["ci_high"]):
            row["median step"] += " (upper bound not reached)"
        base = base_of.get(id(run))
        if base is not None and len(base.samples):
            test = logrank(base, run)
            row["log-rank vs"], row["p-value"] = base.name, test["pvalue"]
        rows.append(row)
    if not rows:
        return "## Individual saturation\n\nNo run kept a per-sample table.\n"
    return ("## Individual saturation\n\nTime to saturation per sample (Kaplan-Meier; samples "
            "that never saturated are censored at the run's last step): median step with "
            "95% interval, and a log-rank test against the softmax baseline.\n\n"
            + markdown_table(pd.DataFrame(rows), formats={"p-value": ".3g"}))


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
            f"seed: paired t-test; Wilcoxon signed-rank only with >= {WILCOXON_MIN_PAIRS} "
            "pairs.\n\n" + markdown_table(shown, formats={"pvalue": ".3g",
                                                         "wilcoxon_pvalue": ".3g"}))


def _ranking_section(runs: list[Run], tau: float, window: int, late: Window) -> str:
    ranking = rank_methods(runs, tau=tau, window=window, late=late)
    return ("## Ranking of the methods\n\nEvery method on the five figures of issue 7, best "
            "first on test error; (#k) is the rank on that figure within the data set (later "
            "onset, later median sample onset and more late gradient rank higher: they "
            "postpone saturation more). Cost per step is the measured training wall time per "
            "step relative to softmax on the machine that trained the runs (noisy when it "
            "was busy; `benchmarks/bench_heads.py` is the controlled measurement). Onset: "
            "mean over seeds that saturated; median sample onset: Kaplan-Meier over the "
            "seeds' pooled samples, censored at the last step.\n\n"
            + ranking_markdown(ranking))


def report(runs, *, tau: float = 0.99, window: int = 1, late: Window = 0.25) -> str:
    """Build the Markdown report for a set of runs.

    Sections: runs table, a ranking of the methods (:func:`satkit.analysis.rank_methods`;
    only when the runs hold a softmax regulariser besides softmax / Noisy Softmax, see
    :func:`satkit.analysis.has_several_methods`), across-seed intervals, postponement
    against softmax, individual saturation (survival medians, log-rank), paired test of test
    error, the paper's table.

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
    shown = table[["run", "dataset", "method", "seed", "last_step", "test_error", "onset_step",
                   "grad_target_late"]].rename(columns={"test_error": "test error %",
                                                        "onset_step": "onset step",
                                                        "grad_target_late": "late |dL/df_y|"})
    pairs = baseline_pairs(runs)
    late_text = f"the last {late:.0%} of steps" if isinstance(late, float) else f"steps {late}"
    parts = [
        "# satkit report\n",
        f"{len(runs)} run(s). Onset: first step at which the batch median of the clean p_y "
        f"reaches {tau:g} (rolling window {window}); late window: {late_text}.\n",
        "## Runs\n\n" + markdown_table(shown, formats={"onset step": ".0f",
                                                        "late |dL/df_y|": ".3g"}),
        *([_ranking_section(runs, tau, window, late)] if has_several_methods(runs) else []),
        _seed_section(table),
        _postponement_section(pairs, tau, window, late),
        _survival_section(runs, pairs),
        _paired_section(table),
        "## Paper comparison\n\nPAPER.md section 5 (the paper's table) next to the measured "
        "test errors.\n\n" + paper_table_markdown(paper_table(runs)),
    ]
    return "\n".join(parts)
