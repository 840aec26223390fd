"""The distribution of per-sample p_target over training time (for a heatmap).

Two sources, by preference:

* ``"histograms"``: the per-sample p_target histograms the TensorBoard sink writes every few
  steps (exact up to the histogram's buckets), used when there are at least
  :data:`MIN_SLICES` of them (a run's first few steps alone say nothing about saturation);
* ``"quantiles"``: the metrics table's batch quantiles ``p_target_q10``, ``p_target_median``,
  ``p_target_q90`` (``p_target_noisy_*`` in the training-logit view), read as a
  piecewise-uniform distribution (10 % of the batch on [0, q10], 40 % on [q10, median], 40 %
  on [median, q90], 10 % on [q90, 1]). Coarse, but always available.

Both are rebinned onto equal-width p bins over [0, 1], assuming mass uniform within a source
bucket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.eventfiles import histograms_from_tensorboard
from satkit.analysis.runs import Run
from satkit.analysis.views import check_view
from satkit.schema import view_column
from satkit.validation import check_choice

__all__ = ["DISTRIBUTION_COLUMNS", "MIN_SLICES", "p_target_distribution"]

DISTRIBUTION_COLUMNS = ("step", "p_low", "p_high", "fraction", "source")
#: The fewest histogram steps ``source="auto"`` draws from; with fewer, the batch quantiles.
MIN_SLICES = 10
_QUANTILES = (("p_target_q10", 0.1), ("p_target_median", 0.5), ("p_target_q90", 0.9))


def _rebin(x: np.ndarray, cdf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mass per bin of a piecewise-linear CDF given at knots ``x`` (clipped to [0, 1])."""
    x = np.maximum.accumulate(np.clip(x, 0.0, 1.0))
    cdf = cdf / cdf[-1] if cdf[-1] > 0 else cdf
    return np.diff(np.interp(edges, x, cdf, left=0.0, right=1.0))


def _thin(steps: np.ndarray, max_steps: int) -> np.ndarray:
    if steps.size <= max_steps:
        return np.arange(steps.size)
    return np.unique(np.linspace(0, steps.size - 1, max_steps).round().astype(int))


def _from_quantiles(metrics: pd.DataFrame, edges: np.ndarray, max_steps: int,
                    saturation: str) -> list:
    columns = [view_column(c, saturation) for c, _ in _QUANTILES]
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise RunError(f"metrics table lacks {missing}: no p_target distribution to draw")
    q = metrics[columns].to_numpy(dtype="float64", na_value=np.nan)
    steps = metrics["step"].to_numpy()
    levels = np.array([0.0, *(lvl for _, lvl in _QUANTILES), 1.0])
    out = []
    for i in _thin(steps, max_steps):
        if np.isnan(q[i]).any():
            continue
        out.append((steps[i], _rebin(np.array([0.0, *q[i], 1.0]), levels, edges)))
    return out


def _from_histograms(buckets: pd.DataFrame, edges: np.ndarray, max_steps: int) -> list:
    out = []
    groups = list(buckets.groupby("step", sort=True))
    for k in _thin(np.arange(len(groups)), max_steps):
        step, b = groups[k]
        x = np.column_stack([b["left"], b["right"]]).ravel()
        cum = np.cumsum(b["count"].to_numpy())
        cdf = np.column_stack([cum - b["count"].to_numpy(), cum]).ravel()
        out.append((step, _rebin(x, cdf.astype("float64"), edges)))
    return out


def p_target_distribution(run: Run, *, saturation: str = "clean", bins: int = 20,
                          max_steps: int = 200, source: str = "auto") -> pd.DataFrame:
    """Fraction of samples per p_target bin, per step.

    Args:
        run: a loaded run.
        saturation: the view, ``"clean"`` or ``"noisy"`` (the training logits).
        bins: number of equal-width p bins over [0, 1].
        max_steps: at most this many steps (evenly thinned), to keep a heatmap light.
        source: ``"auto"`` (the view's histograms when the run has at least
            :data:`MIN_SLICES` steps of them, else the quantiles), ``"histograms"`` or
            ``"quantiles"`` (see the module docstring).

    Returns:
        Tidy: ``step, p_low, p_high, fraction, source``; per step the fractions sum to 1.
        Empty (these columns) when the run recorded nothing.

    Raises:
        RunError: ``source="histograms"`` but there are none for the view; quantile columns
            missing (e.g. the training-logit quantiles of a run recorded before them).
        ValueError: a bad ``source`` or ``saturation``.
    """
    check_choice("source", source, ("auto", "histograms", "quantiles"))
    check_view(saturation)
    edges = np.linspace(0.0, 1.0, bins + 1)
    buckets = None
    if source != "quantiles" and any(run.path.glob("events.out.tfevents.*")):
        buckets = histograms_from_tensorboard(run.path, saturation=saturation)
    enough = buckets is not None and len(buckets) and (
        source == "histograms" or buckets["step"].nunique() >= MIN_SLICES)
    if enough:
        rows, used = _from_histograms(buckets, edges, max_steps), "histograms"
    elif source == "histograms":
        raise RunError(f"{run.path}: no p_target histograms of the {saturation} view in the "
                       "TensorBoard event files")
    else:
        rows, used = _from_quantiles(run.metrics, edges, max_steps, saturation), "quantiles"
    if not rows:
        return pd.DataFrame({c: [] for c in DISTRIBUTION_COLUMNS})
    steps = np.repeat([s for s, _ in rows], bins)
    return pd.DataFrame({"step": steps, "p_low": np.tile(edges[:-1], len(rows)),
                         "p_high": np.tile(edges[1:], len(rows)),
                         "fraction": np.concatenate([f for _, f in rows]), "source": used})
