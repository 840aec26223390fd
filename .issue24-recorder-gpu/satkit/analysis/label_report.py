"""The "Which samples never saturate" section of :func:`satkit.analysis.report`: per run, the
Data Maps regions, the most suspicious samples by AUM, and, for runs trained with
``--label-noise``, how well each suspicion score finds the corrupted labels."""

from __future__ import annotations

import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.label_issues import REGIONS, SCORES, data_map, detection_quality
from satkit.analysis.label_issues import label_issue_scores as scores_of
from satkit.analysis.markdown import markdown_table
from satkit.analysis.runs import Run

__all__ = ["label_issues_section"]

_TOP = 5


def label_issues_section(runs: list[Run]) -> str:
    """The Markdown section (a heading and one table; a sentence when no run has the
    per-sample dynamics)."""
    rows = []
    for run in runs:
        try:
            frame = data_map(run)
        except RunError:
            continue
        if not len(frame):
            continue
        counts = frame["region"].value_counts()
        row = {"run": run.name, "samples": len(frame),
               **{r: counts.get(r, 0) / len(frame) for r in REGIONS}}
        top = scores_of(run, "aum").sort_values(ascending=False, kind="stable").index[:_TOP]
        row["most suspicious (aum)"] = ", ".join(str(i) for i in top)
        if "label_corrupted" in frame and frame["label_corrupted"].astype(bool).any():
            row["corrupted"] = float(frame["label_corrupted"].astype(bool).mean())
            quality = detection_quality(run).set_index("score")["auroc"]
            row.update({f"AUROC {s}": quality[s] for s in SCORES})
        rows.append(row)
    head = "## Which samples never saturate\n\n"
    if not rows:
        return head + "No run kept the per-sample training dynamics.\n"
    formats = {r: ".0%" for r in (*REGIONS, "corrupted")}
    formats.update({f"AUROC {s}": ".3f" for s in SCORES})
    return (head + "Data Maps regions of the samples each run saw (ambiguous: std of the "
            "clean p_y over its visits >= 0.2; else easy-to-learn: mean p_y >= 0.5; else "
            f"hard-to-learn), the indices of the {_TOP} most suspicious samples by AUM "
            "(lowest mean margin; `satkit label-issues RUN` lists more), and, for runs trained "
            "with `--label-noise`, the fraction corrupted and the AUROC of each suspicion "
            "score for \"label was corrupted\" (0.5: chance; \"–\": not known).\n\n"
            + markdown_table(pd.DataFrame(rows), formats=formats))
