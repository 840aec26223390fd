"""Figures of which samples never saturate: the data map, the suspicion scores of clean vs
corrupted samples, and survival curves of saturation per Data Maps region (seaborn).

Each takes one run (a :class:`~satkit.analysis.Run` or its directory), draws on ``ax`` and
returns it; seaborn is imported when a figure is drawn and changes no global style.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from satkit.analysis import Run, label_issue_scores, survival
from satkit.analysis import data_map as data_map_table
from satkit.analysis.label_issues import REGIONS
from satkit.analysis.views import VIEW_LABELS, check_view
from satkit.plots._common import STEP_LABEL, PlotData, get_ax, note, runs_of
from satkit.plots._common import legend as draw_legend

__all__ = ["data_map", "region_survival", "score_distributions"]

#: Okabe-Ito colours of the regions and of clean vs corrupted samples.
REGION_COLORS = {"easy-to-learn": "#0072B2", "ambiguous": "#E69F00", "hard-to-learn": "#D55E00"}
_KIND_COLORS = {"clean label": "#0072B2", "corrupted label": "#D55E00"}


def _one_run(data: PlotData) -> Run:
    runs = runs_of(data)
    if len(runs) != 1:
        raise ValueError(f"this plot draws one run, got {len(runs)}")
    return runs[0]


def _kind(frame: pd.DataFrame) -> pd.Series | None:
    """"clean label" / "corrupted label" per row, when the run knows and has both."""
    if "label_corrupted" not in frame:
        return None
    bad = frame["label_corrupted"].astype(bool)
    if not bad.any():
        return None
    return bad.map({False: "clean label", True: "corrupted label"})


def data_map(data: PlotData, *, ax: Axes | None = None, saturation: str = "clean",
             ambiguous: float = 0.2, easy: float = 0.5, max_points: int = 5000,
             density: bool = True, seed: int = 0) -> Axes:
    """The data map of a run: confidence (mean p_y over a sample's visits) against variability
    (their standard deviation), one point per sample, coloured by correctness; corrupted
    labels (when the run was trained with ``--label-noise``) drawn as crosses; density
    contours where points overlap; the region thresholds as dashed lines.

    Args:
        data: one run or its directory.
        saturation: the view of confidence and variability.
        ambiguous, easy: the region thresholds (:func:`satkit.analysis.data_map`).
        max_points: at most this many points (a random sample, ``seed``; the contours use
            every sample).
        density: draw the density contours.

    Returns:
        The Axes (x: variability, y: confidence).
    """
    import seaborn as sns

    ax = get_ax(ax)
    run = _one_run(data)
    frame = data_map_table(run, saturation=check_view(saturation), ambiguous=ambiguous,
                           easy=easy)
    kind = _kind(frame)
    if density and len(frame) > 10 and frame["variability"].std() > 0:
        sns.kdeplot(x=frame["variability"], y=frame["confidence"], ax=ax, levels=6,
                    color="0.55", linewidths=0.8, warn_singular=False)
    shown = frame.sample(min(len(frame), max_points), random_state=seed) \
        if len(frame) > max_points else frame
    style = None if kind is None else kind.loc[shown.index].rename("label")
    sns.scatterplot(x=shown["variability"], y=shown["confidence"], hue=shown["correctness"],
                    hue_norm=(0, 1), palette="viridis", style=style,
                    markers={"clean label": "o", "corrupted label": "X"} if kind is not None
                    else True, s=14, alpha=0.7, linewidth=0, ax=ax, legend="brief")
    ax.axvline(ambiguous, color="0.3", linestyle="--", linewidth=0.8)
    ax.plot([0, ambiguous], [easy, easy], color="0.3", linestyle="--", linewidth=0.8)
    counts = frame["region"].value_counts()
    for region, (x, y, ha) in {"easy-to-learn": (0.01, 0.98, "left"),
                               "hard-to-learn": (0.01, 0.02, "left"),
                               "ambiguous": (0.99, 0.98, "right")}.items():
        ax.text(x, y, f"{region} ({counts.get(region, 0) / max(len(frame), 1):.0%})",
                transform=ax.transAxes, ha=ha, va="top" if y > 0.9 else "bottom",
                fontsize="small", color=REGION_COLORS[region])
    if len(shown) < len(frame):
        note(ax, f"{len(shown)} of {len(frame)} samples drawn")
    ax.set(xlabel=f"variability: std of {_p_text(saturation)} over visits",
           ylabel=f"confidence: mean {_p_text(saturation)}", ylim=(-0.02, 1.02),
           xlim=(0, max(0.5, float(frame["variability"].max()) * 1.05)),
           title=f"Data map of {run.name}")
    draw_legend(ax, True, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def _p_text(saturation: str) -> str:
    return f"p_y ({VIEW_LABELS[saturation]})"


def score_distributions(data: PlotData, *, ax: Axes | None = None, score: str = "aum",
                        saturation: str = "clean", bins: int = 40) -> Axes:
    """The distribution of one suspicion score (:func:`satkit.analysis.label_issue_scores`,
    higher = more suspicious) over the samples, clean and corrupted labels apart (each
    normalised to its own area) when the run knows which labels were corrupted.

    Returns:
        The Axes (x: the score, y: density). Samples with an infinite score (``forgetting``:
        never learned) are counted in a note, not drawn.
    """
    import seaborn as sns

    ax = get_ax(ax)
    run = _one_run(data)
    s = label_issue_scores(run, score, saturation=saturation)
    frame = pd.DataFrame({"score": s.to_numpy()}, index=s.index)
    kind = _kind(run.samples.set_index("index").loc[s.index])
    if kind is not None:
        frame["label"] = kind.to_numpy()
    finite = np.isfinite(frame["score"])
    sns.histplot(frame[finite], x="score", hue="label" if kind is not None else None,
                 palette=_KIND_COLORS if kind is not None else None, bins=bins,
                 stat="density", common_norm=False, element="step", ax=ax)
    if (~finite).any():
        note(ax, f"{int((~finite).sum())} sample(s) never learned (score +inf) not drawn")
    ax.set(xlabel=f"{score} score (higher = more suspicious)", ylabel="density",
           title=f"Suspicion score {score!r}, {run.name}")
    return ax


def region_survival(data: PlotData, *, ax: Axes | None = None, saturation: str = "noisy",
                    ambiguous: float = 0.2, easy: float = 0.5) -> Axes:
    """Kaplan-Meier curves of the fraction of samples not yet saturated (p_y >= tau, in the
    view ``saturation``), one per Data Maps region (regions from the clean view).

    Returns:
        The Axes (x: training step, y: fraction of the region's samples not yet saturated).
    """
    ax = get_ax(ax)
    run = _one_run(data)
    check_view(saturation)
    frame = data_map_table(run, ambiguous=ambiguous, easy=easy)
    samples = run.samples.set_index("index").loc[frame["index"]].reset_index()
    samples["region"] = frame["region"].to_numpy()
    for region in REGIONS:
        part = samples[samples["region"] == region]
        if not len(part):
            continue
        curve = survival(part, saturation=saturation, last_step=run.last_step)
        steps = np.concatenate([[0.0], curve["step"].to_numpy(dtype="float64")])
        ax.step(steps, np.concatenate([[1.0], curve["survival"]]), where="post",
                color=REGION_COLORS[region], label=f"{region} ({len(part)})", linewidth=1.5)
    ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1)
    ax.set(xlabel=STEP_LABEL, ylabel="fraction of the region not yet saturated",
           ylim=(0, 1.02), title=f"Saturation per region, {_p_text(saturation)}")
    draw_legend(ax, True, loc="best")
    return ax
