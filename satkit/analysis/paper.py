"""The paper's reported test errors (arXiv 1708.03769, Tables 2-4) next to measured ones."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from satkit.analysis.labels import method_label, method_order
from satkit.analysis.markdown import markdown_table
from satkit.analysis.runs import Run, as_runs
from satkit.analysis.seeds import t_interval
from satkit.analysis.summary import run_table
from satkit.methods import DISTURB_LABEL, NOISY

__all__ = ["PAPER_BENCHMARKS", "benchmark_of", "paper_results", "paper_table",
           "paper_table_markdown"]

#: Benchmarks of the paper's table, in its column order.
PAPER_BENCHMARKS = ("CIFAR10", "CIFAR10+", "CIFAR100")
DISTURBLABEL = "DisturbLabel (Xie et al. 2016)"
# (alpha2 or None for DisturbLabel, errors in % for CIFAR10, CIFAR10+, CIFAR100)
_PAPER_ROWS = (
    (0.0, (8.11, 6.98, 31.77)),
    (1.0, (9.09, 8.77, 35.23)),
    (0.5, (7.84, 7.13, 30.22)),
    (0.1, (7.39, 6.36, 28.48)),
    (0.05, (7.58, 6.61, 29.99)),
    (None, (9.45, 6.98, 32.99)),
)
_NOTES = {"mnist": "paper: MNIST errors around 0.3-0.5 %",
          "digits": "not in the paper (satkit's embedded default)"}


def paper_results() -> pd.DataFrame:
    """The paper's test errors (%), tidy: ``benchmark, method, alpha2, error``.

    ``alpha2`` is NaN for DisturbLabel. Values are the paper's CIFAR tables (arXiv 1708.03769).

    Example:
        >>> r = paper_results()
        >>> float(r.query("benchmark == 'CIFAR100' and alpha2 == 0.1").error.iloc[0])
        28.48
    """
    rows = []
    for alpha2, errors in _PAPER_ROWS:
        method = DISTURBLABEL if alpha2 is None else method_label(alpha2)
        for benchmark, error in zip(PAPER_BENCHMARKS, errors, strict=True):
            rows.append({"benchmark": benchmark, "method": method,
                         "alpha2": math.nan if alpha2 is None else alpha2, "error": error})
    return pd.DataFrame(rows)


def benchmark_of(run: Run) -> str:
    """The paper's name for a run's data set: ``CIFAR10`` / ``CIFAR10+`` (augmented) /
    ``CIFAR100``; other data sets keep their own name (``mnist``, ``digits``)."""
    dataset = run.dataset.lower()
    augment = bool(run.config.get("augment", False))
    return {"cifar10": "CIFAR10+" if augment else "CIFAR10",
            "cifar100": "CIFAR100"}.get(dataset, dataset)


def _measured(runs: list[Run], confidence: float) -> pd.DataFrame:
    table = run_table(runs)
    table["benchmark"] = [benchmark_of(r) for r in runs]
    rows = []
    keys = ["benchmark", "loss", "setting", "noise", "alpha2"]
    for (benchmark, loss, setting, noise, alpha2), group in table.groupby(keys):
        mean, low, high = t_interval(group["test_error"], confidence)
        # measured DisturbLabel runs sit on the paper's DisturbLabel row (its rate unstated)
        paper_row = loss == DISTURB_LABEL and benchmark in PAPER_BENCHMARKS
        rows.append({"benchmark": benchmark,
                     "method": DISTURBLABEL if paper_row
                     else method_label(alpha2, noise, loss, setting),
                     "alpha2": math.nan if paper_row else alpha2, "_order": method_order(loss),
                     "measured_error": mean, "ci_low": low, "ci_high": high,
                     "n_seeds": int(np.isfinite(group["test_error"].astype(float)).sum())})
    return pd.DataFrame(rows, columns=["benchmark", "method", "alpha2", "_order",
                                       "measured_error", "ci_low", "ci_high", "n_seeds"])


def paper_table(runs, *, confidence: float = 0.95) -> pd.DataFrame:
    """Measured test errors side by side with the paper's.

    Args:
        runs: runs or paths (see :func:`satkit.analysis.as_runs`).
        confidence: level of the across-seed t-interval of the measured error.

    Returns:
        One row per (benchmark, method): ``benchmark, method, alpha2, paper_error,
        measured_error, ci_low, ci_high, n_seeds, delta`` (measured - paper, in points),
        ``note``. For a paper benchmark every paper row is listed (unmeasured ones with NaN
        measured values); a data set the paper's table lacks lists only measured rows, with
        a note. Errors are in %. Measured DisturbLabel runs on a paper benchmark share the
        paper's DisturbLabel row; other regularisers get rows of their own.
    """
    runs = as_runs(runs)
    measured = _measured(runs, confidence)
    paper = paper_results().rename(columns={"error": "paper_error"})
    paper = paper[paper["benchmark"].isin(measured["benchmark"])]
    out = paper.merge(measured, on=["benchmark", "method", "alpha2"], how="outer", sort=False)
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["delta"] = out["measured_error"] - out["paper_error"]
    out["note"] = [_NOTES.get(b, "") for b in out["benchmark"]]
    order = {b: i for i, b in enumerate(dict.fromkeys([*PAPER_BENCHMARKS,
                                                       *measured["benchmark"]]))}
    out["_b"], out["_a"] = out["benchmark"].map(order), out["alpha2"].fillna(np.inf)
    # softmax and Noisy Softmax by alpha2, then DisturbLabel, then the other regularisers
    out["_order"] = out["_order"].where(out["method"] != DISTURBLABEL, 1.5).fillna(
        method_order(NOISY))
    out = out.sort_values(["_b", "_order", "_a", "method"], kind="stable", ignore_index=True)
    return out.drop(columns=["_b", "_a", "_order"])[["benchmark", "method", "alpha2", "paper_error",
                                           "measured_error", "ci_low", "ci_high", "n_seeds",
                                           "delta", "note"]]


def paper_table_markdown(table: pd.DataFrame) -> str:
    """Render :func:`paper_table`'s frame as Markdown (no ``tabulate`` needed)."""
    shown = table.drop(columns=["alpha2"]).rename(columns={
        "paper_error": "paper error %", "measured_error": "measured error %",
        "ci_low": "95% CI low", "ci_high": "95% CI high", "n_seeds": "seeds",
        "delta": "measured - paper"})
    return markdown_table(shown, floatfmt=".2f")
