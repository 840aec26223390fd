"""Calibration of a classifier's top-1 confidence, and post-hoc temperature scaling (numpy).

A saturated softmax is a confident one: ``p_y -> 1`` on the training samples goes with a top-1
probability near 1 on the test samples, whether or not the prediction is right. These are the
measures of Guo et al. 2017 ("On Calibration of Modern Neural Networks", arXiv 1706.04599),
for probabilities ``p`` (N, C) and labels ``y`` (N,):

* the *confidence* of a sample is its top-1 probability ``max_j p_j``; it is *correct* when
  its predicted class (the first class of largest probability) is its label;
* **ECE**, the expected calibration error: the confidences put in ``bins`` equal-width bins of
  [0, 1], ``sum_b (n_b / N) |accuracy_b - confidence_b|``. Bin ``b`` (from 0) is the interval
  ``(b/B, (b+1)/B]``, closed on the right as in Guo et al.: a confidence exactly on an edge
  belongs to the bin *below* it, and 1.0 to the last bin. The edges are the float64 values
  ``np.linspace(0, 1, B + 1)``; a confidence is compared with them as given (a float32 is
  widened exactly). torchmetrics' ``MulticlassCalibrationError`` puts an edge value in the bin
  above (``[b/B, (b+1)/B)``, and 1.0 in a bin of its own): the two agree everywhere else;
* **adaptive ECE** (equal-mass bins, Nixon et al. 2019): the same sum over bins that hold
  equally many samples. The confidences are ranked; a sample whose confidence has rank ``r``
  (from 0; tied confidences share the rank of the first of them) goes to bin
  ``floor(r * B / N)``, so tied confidences (a saturated softmax gives many exact 1.0) are
  never split between bins and the result does not depend on the samples' order;
* **Brier score**: ``mean_i sum_j (p_ij - 1{j = y_i})^2`` (Brier 1950, over every class: 0 to 2);
* **overconfidence**: mean confidence minus accuracy (signed; > 0: overconfident);
* **NLL**: ``mean_i -log p_{i, y_i}``.

:func:`fit_temperature` fits the one temperature ``T`` that minimises the NLL of
``softmax(logits / T)`` on held-out logits (post-hoc temperature scaling, Guo et al. 2017).

The trainer computes the same measures on the device at every evaluation
(:mod:`satkit.training.calibration`); this module is the reference, checked against
torchmetrics and a float64 hand loop. Pure numpy and scipy; no torch import.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from satkit.schema import CALIBRATION_BINS
from satkit.validation import check_int

__all__ = ["CALIBRATION_BINS", "TEMPERATURE_BOUNDS", "adaptive_calibration_error", "bin_edges",
           "brier_score", "calibration", "expected_calibration_error", "fit_temperature",
           "log_softmax", "nll", "reliability_table", "softmax", "top1"]

#: The range :func:`fit_temperature` searches (a temperature at either end is reported with a
#: warning: the NLL kept falling towards it).
TEMPERATURE_BOUNDS = (1e-2, 1e2)


def bin_edges(bins: int = CALIBRATION_BINS) -> np.ndarray:
    """The ``bins + 1`` equal-width edges of [0, 1] (float64), ``np.linspace(0, 1, bins + 1)``."""
    check_int("bins", bins, minimum=1)
    return np.linspace(0.0, 1.0, bins + 1)


def _labels(labels, n: int, classes: int | None = None) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be a 1-D array of {n} class indices; got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers (class indices); got dtype {y.dtype}")
    if n and (y.min() < 0 or (classes is not None and y.max() >= classes)):
        raise ValueError(f"labels must lie in [0, {classes}); got {y.min()} to {y.max()}")
    return y.astype(np.int64)


def _matrix(name: str, values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must be an (N, C) array with C >= 2 classes; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (no NaN or Inf)")
    return x


def top1(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's top-1 confidence and whether its prediction is right.

    Args:
        probs: (N, C) probabilities (rows need not be normalised; they are not checked).
        labels: (N,) class indices.

    Returns:
        ``(confidence, correct)``: float64 ``max_j p_j`` and bool ``argmax_j p_j == y``,
        the first class of largest probability being the prediction (ties go to the lower
        class index).
    """
    p = _matrix("probs", probs)
    y = _labels(labels, len(p), p.shape[1])
    predicted = p.argmax(axis=1)
    return p[np.arange(len(p)), predicted], predicted == y


def _top1_arrays(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct)
    if c.ndim != 1 or ok.shape != c.shape:
        raise ValueError(f"confidence and correct must be 1-D arrays of one length; got shapes "
                         f"{c.shape} and {ok.shape}")
    if not np.all((c >= 0) & (c <= 1)):
        raise ValueError("confidence must lie in [0, 1] (no NaN)")
    if ok.dtype != bool and not np.all((ok == 0) | (ok == 1)):
        raise ValueError("correct must be booleans (or 0/1)")
    return c, ok.astype(np.float64)


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each confidence: ``(b/B, (b+1)/B]`` (0 goes to the first bin)."""
    index = np.searchsorted(bin_edges(bins), confidence, side="left") - 1
    return np.clip(index, 0, bins - 1)


def _adaptive_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-mass bin of each confidence: ``floor(rank * B / N)``, ties sharing the first rank."""
    rank = np.searchsorted(np.sort(confidence), confidence, side="left")
    return rank * bins // max(len(confidence), 1)


def _gap(index: np.ndarray, confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    n = len(confidence)
    if n == 0:
        return math.nan
    conf = np.bincount(index, weights=confidence, minlength=bins)
    right = np.bincount(index, weights=correct, minlength=bins)
    return float(np.abs(conf - right).sum() / n)


def expected_calibration_error(confidence, correct, bins: int = CALIBRATION_BINS) -> float:
    """ECE of top-1 confidences over ``bins`` equal-width bins (see the module docstring).

    Example:
        >>> expected_calibration_error([0.9, 0.9, 0.6, 0.6], [True, False, True, True])
        0.4
    """
    c, ok = _top1_arrays(confidence, correct)
    return _gap(_bin_index(c, bins), c, ok, bins)


def adaptive_calibration_error(confidence, correct, bins: int = CALIBRATION_BINS) -> float:
    """ECE over ``bins`` equal-mass bins, tied confidences kept together (module docstring)."""
    c, ok = _top1_arrays(confidence, correct)
    check_int("bins", bins, minimum=1)
    return _gap(_adaptive_index(c, bins), c, ok, bins)


def reliability_table(confidence, correct, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """The reliability diagram as data: one row per equal-width bin.

    Returns:
        Columns ``bin`` (from 0), ``lower``, ``upper`` (the bin is ``(lower, upper]``),
        ``count``, ``confidence`` and ``accuracy`` (the means over the bin's samples; NaN for
        an empty bin) and ``gap`` (``confidence - accuracy``). ECE is
        ``sum(count * |gap|) / sum(count)``.
    """
    c, ok = _top1_arrays(confidence, correct)
    index = _bin_index(c, bins)
    edges = bin_edges(bins)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=c, minlength=bins) / count
        acc = np.bincount(index, weights=ok, minlength=bins) / count
    return pd.DataFrame({"bin": np.arange(bins), "lower": edges[:-1], "upper": edges[1:],
                         "count": count, "confidence": conf, "accuracy": acc,
                         "gap": conf - acc})


def brier_score(probs, labels) -> float:
    """Multi-class Brier score, ``mean_i sum_j (p_ij - 1{j = y_i})^2`` (0 to 2)."""
    p = _matrix("probs", probs)
    y = _labels(labels, len(p), p.shape[1])
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), y] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean()) if len(p) else math.nan


def calibration(probs, labels, bins: int = CALIBRATION_BINS) -> dict[str, float]:
    """Every calibration measure of predicted probabilities at once.

    Args:
        probs: (N, C) class probabilities (e.g. ``softmax(logits)``), finite.
        labels: (N,) class indices in [0, C).
        bins: bins of the ECEs (15, as Guo et al.).

    Returns:
        ``{"ece", "ece_adaptive", "brier", "confidence", "accuracy", "overconfidence", "nll"}``
        (see the module docstring; ``accuracy`` and ``confidence`` in [0, 1],
        ``overconfidence = confidence - accuracy``). NaN for N = 0.

    Raises:
        ValueError: shapes that do not match, labels out of range, NaN or Inf.

    Example:
        >>> m = calibration([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]], [0, 1, 1, 1])
        >>> round(m["ece"], 6), m["accuracy"], round(m["overconfidence"], 6)
        (0.4, 0.75, 0.0)
    """
    p = _matrix("probs", probs)
    y = _labels(labels, len(p), p.shape[1])
    confidence, correct = top1(p, y)
    n = len(p)
    with np.errstate(divide="ignore"):
        nll_value = float(-np.log(p[np.arange(n), y]).mean()) if n else math.nan
    mean_conf = float(confidence.mean()) if n else math.nan
    accuracy = float(correct.mean()) if n else math.nan
    return {"ece": expected_calibration_error(confidence, correct, bins),
            "ece_adaptive": adaptive_calibration_error(confidence, correct, bins),
            "brier": brier_score(p, y), "confidence": mean_conf, "accuracy": accuracy,
            "overconfidence": mean_conf - accuracy, "nll": nll_value}


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(logits / temperature)`` row-wise, in float64 (stable for any scale)."""
    z = _matrix("logits", logits) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise, in float64."""
    return np.exp(log_softmax(logits, temperature))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)`` at the labels."""
    logp = log_softmax(logits, temperature)
    y = _labels(labels, len(logp), logp.shape[1])
    return float(-logp[np.arange(len(y)), y].mean()) if len(y) else math.nan


def fit_temperature(logits, labels, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
                    xatol: float = 1e-7) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017).

    The NLL is convex in ``1/T`` (a log-sum-exp of functions linear in it, minus a linear
    term), hence unimodal in ``log T``: a bounded Brent search over ``log T`` in ``bounds``
    (``scipy.optimize.minimize_scalar``, a bracketed 1-D method) finds its minimum to a
    relative precision of about ``xatol``.

    Args:
        logits: (N, C) held-out logits (a validation split: never the test set).
        labels: (N,) class indices.
        bounds: the range of T searched.
        xatol: the tolerance on ``log T``.

    Returns:
        T (> 1: the model was overconfident and is softened; < 1: underconfident). When every
        sample is classified right with a margin the NLL keeps falling as T -> 0 and the
        result is the lower bound; a result at either bound comes with a ``RuntimeWarning``.

    Raises:
        ValueError: bad shapes, labels, non-finite logits, no samples, or bad ``bounds``.

    Example:
        >>> z = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])
        >>> round(fit_temperature(3 * z, [0, 1, 0, 1]) / fit_temperature(z, [0, 1, 0, 1]), 4)
        3.0
    """
    z = _matrix("logits", logits)
    y = _labels(labels, len(z), z.shape[1])
    if len(z) == 0:
        raise ValueError("fit_temperature needs at least one sample")
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < hi < math.inf:
        raise ValueError(f"bounds must be (low, high) with 0 < low < high; got {bounds!r}")
    rows = np.arange(len(z))
    top = z.argmax(axis=1)
    shifted = z - z[rows, top][:, None]  # <= 0, exactly 0 at the top class
    target = shifted[rows, y]
    others = np.ones_like(z, dtype=bool)
    others[rows, top] = False

    def loss(log_t: float) -> float:
        # log-sum-exp as log1p(sum of the other classes' terms): accurate where it is tiny,
        # so the NLL of a model that gets every sample right keeps falling towards T -> 0
        beta = math.exp(-log_t)
        rest = np.where(others, np.exp(beta * shifted), 0.0).sum(axis=1)
        return float(np.mean(np.log1p(rest) - beta * target))

    result = minimize_scalar(loss, bounds=(math.log(lo), math.log(hi)), method="bounded",
                             options={"xatol": xatol})
    temperature = math.exp(result.x)
    if abs(result.x - math.log(lo)) < 1e3 * xatol or abs(result.x - math.log(hi)) < 1e3 * xatol:
        warnings.warn(f"fit_temperature: the NLL is lowest at the end of the range searched "
                      f"(T = {temperature:.3g}, bounds {bounds}); the held-out samples do not "
                      "pin a temperature down", RuntimeWarning, stacklevel=2)
    return temperature
