"""Analysis of satkit runs: pure functions over pandas data (no plotting here).

Load run directories (:func:`load_run`, :func:`load_runs`, :func:`from_tensorboard`),
measure when saturation sets in (:func:`onset_step`, :func:`postponement`), treat individual
saturation as time-to-event data (:func:`survival`, :func:`median_time_to_saturation`,
:func:`logrank`), summarise a run (:func:`run_table`, :func:`saturation_summary`) and
across seeds (:func:`seed_summary`, :func:`paired_test`), compare with the paper
(:func:`paper_table`), rank softmax regularisers against each other (:func:`rank_methods`)
find the samples that never saturate and the mislabeled ones among them (:func:`data_map`,
:func:`label_issue_scores`, :func:`detection_quality`), measure calibration
(:func:`calibration`, :func:`fit_temperature` for post-hoc temperature scaling,
:func:`calibration_table` per method) and write a Markdown :func:`report`.

Saturation has two views (``saturation="clean"`` or ``"noisy"``, the training logits) and
per sample two events (``event="first"`` or ``"settled"``): see :mod:`satkit.analysis.views`.
No torch import here.
"""

from satkit.analysis.calibration import (
    calibration,
    expected_calibration_error,
    fit_temperature,
    reliability_table,
)
from satkit.analysis.detection import auroc, average_precision, precision_at_k
from satkit.analysis.distribution import p_target_distribution
from satkit.analysis.errors import RunError
from satkit.analysis.eventfiles import from_tensorboard, histograms_from_tensorboard
from satkit.analysis.label_issues import (
    REGIONS,
    SCORES,
    data_map,
    detection_quality,
    label_issue_scores,
)
from satkit.analysis.labels import format_alpha2, method_label, method_setting
from satkit.analysis.markdown import markdown_table
from satkit.analysis.onset import onset_step, postponement, step_window, window_mean
from satkit.analysis.paper import paper_results, paper_table, paper_table_markdown
from satkit.analysis.ranking import has_several_methods, rank_methods, ranking_markdown
from satkit.analysis.reporting import calibration_table, postponement_table, report
from satkit.analysis.runs import Run, as_runs, find_run_dirs, load_run
from satkit.analysis.seeds import (
    comparison_table,
    paired_test,
    seed_summary,
    sort_methods,
    t_interval,
)
from satkit.analysis.summary import run_table, saturation_summary
from satkit.analysis.survival_analysis import (
    logrank,
    median_time_to_saturation,
    saturation_times,
    survival,
)
from satkit.analysis.tidy import load_runs, tidy_metrics

__all__ = [
    "REGIONS",
    "Run",
    "RunError",
    "SCORES",
    "as_runs",
    "auroc",
    "average_precision",
    "calibration",
    "calibration_table",
    "comparison_table",
    "data_map",
    "detection_quality",
    "expected_calibration_error",
    "find_run_dirs",
    "fit_temperature",
    "format_alpha2",
    "from_tensorboard",
    "has_several_methods",
    "histograms_from_tensorboard",
    "label_issue_scores",
    "load_run",
    "load_runs",
    "logrank",
    "markdown_table",
    "median_time_to_saturation",
    "method_label",
    "method_setting",
    "onset_step",
    "p_target_distribution",
    "paired_test",
    "paper_results",
    "paper_table",
    "paper_table_markdown",
    "postponement",
    "postponement_table",
    "precision_at_k",
    "rank_methods",
    "ranking_markdown",
    "reliability_table",
    "report",
    "run_table",
    "saturation_summary",
    "saturation_times",
    "seed_summary",
    "sort_methods",
    "step_window",
    "survival",
    "t_interval",
    "tidy_metrics",
    "window_mean",
]
