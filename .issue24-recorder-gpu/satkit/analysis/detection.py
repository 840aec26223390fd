"""How well a score finds the positives (e.g. corrupted labels): AUROC, average precision and
precision at k, with ties handled exactly. Pure NumPy/SciPy.

Every function takes ``scores`` (higher = more likely positive) and ``positive`` (bool), one
entry per item, both finite-length 1-D; scores may be +-inf but not NaN.

* :func:`auroc`: the probability that a random positive scores above a random negative, ties
  counting one half (the Mann-Whitney U statistic over n_pos * n_neg, from mid-ranks);
* :func:`average_precision`: the area under the precision-recall step curve taken at each
  distinct score, ``sum_t (R_t - R_{t-1}) P_t`` (the definition scikit-learn uses);
* :func:`precision_at_k`: the share of positives among the k highest scores; where the k-th
  place falls inside a group of tied scores, the *expected* share under a random order of
  that group (so a constant score gets the base rate, not whatever order the data came in).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["auroc", "average_precision", "precision_at_k"]


def _check(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and positive must be 1-D of one length, got {s.shape} and "
                         f"{y.shape}")
    if y.dtype != bool:
        raise ValueError(f"positive must be boolean, got {y.dtype}")
    if np.isnan(s).any():
        raise ValueError("scores must not be NaN")
    if y.all() or not y.any():
        raise ValueError("need at least one positive and one negative item")
    return s, y


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half).

    Example:
        >>> auroc(np.array([0.9, 0.8, 0.8, 0.1]), np.array([True, True, False, False]))
        0.875
    """
    s, y = _check(scores, positive)
    ranks = stats.rankdata(s)  # mid-ranks of ties
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision: ``sum_t (R_t - R_{t-1}) P_t`` over the distinct scores t, highest
    first (tied items enter together).

    Example:
        >>> average_precision(np.array([0.9, 0.8, 0.7, 0.1]), np.array([True, False, True, False]))
        0.8333333333333333
    """
    s, y = _check(scores, positive)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    true_pos = np.cumsum(y)[last_of_tie]
    taken = np.flatnonzero(last_of_tie) + 1
    precision = true_pos / taken
    recall = true_pos / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_at_k(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores (expected over random orders of a
    tie group cut by the k-th place).

    Example:
        >>> precision_at_k(np.array([3.0, 2.0, 2.0, 1.0]), np.array([True, True, False, False]), 2)
        0.75
    """
    s, y = _check(scores, positive)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(s):
        raise ValueError(f"k must be an integer in [1, {len(s)}], got {k!r}")
    kth = np.sort(s)[::-1][k - 1]
    above = s > kth
    tied = s == kth
    from_tie = k - int(above.sum())
    hits = y[above].sum() + from_tie * y[tied].mean()
    return float(hits / k)
