"""Per-batch saturation statistics as pure functions (what the recorder measures).

The recorder (:mod:`satkit.hooks.recorder`) captures, for each optimizer step, the logits the
head produced, the target, the Noisy Softmax noise, the features and the gradients of the
logits and of the features. This module turns them into numbers in three stages, so that the
per-step part stays on the device and the reduction across ranks is exact:

1. :func:`per_sample_statistics`: one value per sample, shape (N,) each (device tensors).
2. :func:`reduce_batch`: one *raw* row of shape (K,) per step, made of sums, counts and maxima
   (never means), laid out by :class:`Layout`. Sums and counts add across ranks exactly, so a
   mean over the global batch is ``sum / count`` after the reduction (batch-size weighted).
3. :func:`finalize`: on the host, raw rows (+ quantiles of the per-sample p_target, which
   cannot be summed; the recorder computes them from the logged per-sample values) become the
   rows of the public ``metrics`` table (:func:`column_names`).

Saturation (PAPER.md section 1): the gradient of cross-entropy on the target logit is
``p_y - 1``; a sample is saturated at threshold tau when its *clean* (noise-free) p_y >= tau.
For a Noisy Softmax head (Eq. 5) the clean logits are the head's output with the subtracted
noise added back on the target column.

Samples whose logits, noise, features or gradients are not finite are left out of every sum
(the counts say how many were used) and make the row's ``nonfinite`` flag true: they are never
silently averaged into a mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "QUANTILES",
    "Layout",
    "clean_logits",
    "column_names",
    "finalize",
    "per_sample_statistics",
    "reduce_batch",
    "threshold_column",
]

#: Quantiles of the clean p_target reported per step: q10, median, q90.
QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)

# Per-sample statistics whose batch mean is a metrics column: (per-sample key, column).
_MEANS: tuple[tuple[str, str], ...] = (
    ("p_target", "p_target_mean"),
    ("p_target_noisy", "p_target_noisy_mean"),
    ("grad_target", "grad_target_mean"),
    ("grad_logits_norm", "grad_logits_norm_mean"),
    ("grad_features_norm", "grad_features_norm_mean"),
    ("noise", "noise_mean"),
    ("cos_target", "cos_target_mean"),
    ("feature_norm", "feature_norm_mean"),
    ("weight_norm_target", "weight_norm_target_mean"),
    ("logit_target", "logit_target_mean"),
    ("logit_margin", "logit_margin_mean"),
)


# Per-sample statistics summed over the finite samples of a step, in raw-row order.
_SUMMED: tuple[str, ...] = (*(key for key, _ in _MEANS), "ce")


def threshold_column(tau: float) -> str:
    """The metrics column of the saturated fraction at ``tau``.

    Example:
        >>> threshold_column(0.99), threshold_column(0.9)
        ('saturated_frac_0.99', 'saturated_frac_0.9')
    """
    return f"saturated_frac_{tau:g}"


def column_names(thresholds: Sequence[float]) -> list[str]:
    """The columns of the metrics table, in order, for the given thresholds."""
    return [
        "step", "batch_size", "loss",
        "p_target_mean", "p_target_median", "p_target_q10", "p_target_q90", "p_target_noisy_mean",
        "saturated_frac", *[threshold_column(t) for t in thresholds],
        "grad_target_mean", "grad_logits_norm_mean", "grad_features_norm_mean", "grad_weight_norm",
        "noise_mean", "noise_max",
        "cos_target_mean", "feature_norm_mean", "weight_norm_target_mean",
        "logit_target_mean", "logit_margin_mean",
        "nonfinite",
    ]


class Layout:
    """Names and reduction kinds of the raw per-step row kept in the device buffer.

    Kinds: ``"sum"`` (adds across ranks), ``"max"`` (maximum across ranks, NaN-ignoring) and
    ``"mean"`` (a value every rank holds identically, e.g. ||dL/dW|| of a DDP-averaged gradient).

    Args:
        thresholds: the saturation thresholds tau, in (0, 1).
    """

    def __init__(self, thresholds: Sequence[float]) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        # Order matters: reduce_batch fills the row as [scalars, sums, saturated counts].
        cols: list[tuple[str, str]] = [
            ("n", "sum"), ("n_finite", "sum"), ("loss_given", "max"), ("loss_sum", "sum"),
            ("noise_max", "max"), ("grad_weight_norm", "mean"), ("bad_index", "sum")]
        cols += [(f"sum_{key}", "sum") for key in _SUMMED]
        cols += [(f"sat_{i}", "sum") for i in range(len(self.thresholds))]
        self.names = [name for name, _ in cols]
        self.kinds = [kind for _, kind in cols]
        self.index = {name: i for i, name in enumerate(self.names)}
        self._taus: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def __len__(self) -> int:
        return len(self.names)

    def taus(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The thresholds as a (T, 1) tensor, created once per device and dtype."""
        key = (device, dtype)
        if key not in self._taus:
            self._taus[key] = torch.tensor(self.thresholds, dtype=dtype).to(device).unsqueeze(1)
        return self._taus[key]


def clean_logits(logits: Tensor, target: Tensor, noise: Tensor) -> Tensor:
    """Undo Noisy Softmax on the target column: ``f_y = f_y^noise + noise`` (Eq. 5).

    Shape: logits (N, C), target (N,), noise (N,) -> (N, C).
    """
    return logits.scatter_add(1, target.unsqueeze(1), noise.to(logits.dtype).unsqueeze(1))


def per_sample_statistics(
    logits: Tensor,
    target: Tensor,
    noise: Tensor,
    features: Tensor,
    weight: Tensor,
    grad_logits: Tensor | None = None,
    grad_features: Tensor | None = None,
    *,
    grad_scale: float = 1.0,
    clean: Tensor | None = None,
) -> dict[str, Tensor]:
    """Per-sample saturation quantities of one batch (pure; no host sync).

    Args:
        logits: the logits the loss saw, (N, C) (noisy on the target column for Noisy Softmax).
        target: class indices, (N,) int64.
        noise: the amount subtracted from each target logit, (N,) (zeros for plain softmax).
        features: the head's input X, (N, D).
        weight: the head's class weights W, (C, D).
        grad_logits: the gradient of the loss w.r.t. the logits, (N, C); None if unavailable.
        grad_features: the gradient of the loss w.r.t. X, (N, D); None if unavailable.
        grad_scale: multiplies the gradients to make them per-sample, dL_i/d.. (the recorder
            passes N for a loss that is the mean over the step's N samples), so that the
            gradient statistics do not depend on the batch size.
        clean: the head's eval-mode (clean) logits of the same forward, (N, C), when its
            training-time change is not only ``noise`` on the target column (e.g. a
            temperature); default: ``logits`` with ``noise`` added back on the target column.

    Returns:
        A dict of (N,) float tensors: ``p_target`` (clean p_y), ``p_target_noisy``, ``ce``
        (cross-entropy of the noisy logits), ``grad_target`` (|dL_i/df_y|),
        ``grad_logits_norm``, ``grad_features_norm`` (NaN when unavailable), ``noise``,
        ``cos_target`` (cos theta_y), ``feature_norm`` (||X||), ``weight_norm_target``
        (||W_y||), ``logit_target`` (clean f_y) and ``logit_margin`` (clean f_y minus the
        largest other logit); and ``finite``, (N,) bool: the sample's logits, noise, features
        and available gradients are all finite (tested through row sums and norms, which are
        cheaper than an elementwise test; a row whose norm overflows counts as non-finite).
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    f = logits.to(dtype)
    x = features.to(dtype)
    w_y = weight.detach().to(dtype)[target]
    col = target.unsqueeze(1)
    clean = clean_logits(f, target, noise.to(dtype)) if clean is None else clean.to(dtype)
    logp_noisy = F.log_softmax(f, dim=1).gather(1, col).squeeze(1)
    logp_clean = F.log_softmax(clean, dim=1).gather(1, col).squeeze(1)
    f_y = clean.gather(1, col).squeeze(1)
    others = clean.scatter(1, col, float("-inf"))
    x_norm = torch.linalg.vector_norm(x, dim=1)
    w_norm = torch.linalg.vector_norm(w_y, dim=1)
    # cos theta_y = W_y.X / (||W_y|| ||X||); the clamp keeps zero features at cos = 0, not NaN.
    cos = (w_y * x).sum(dim=1) / (w_norm * x_norm).clamp_min(torch.finfo(dtype).tiny)
    nan = torch.full_like(f_y, float("nan"))
    # Scale the (N,) results, not the (N, C) and (N, D) gradients: cheaper, same numbers.
    checks = [f.sum(dim=1), noise, x_norm, w_norm]
    if grad_logits is not None:
        g = grad_logits.to(dtype)
        grad_target = g.gather(1, col).squeeze(1).abs() * grad_scale
        grad_norm = torch.linalg.vector_norm(g, dim=1) * grad_scale
        checks.append(grad_norm)
    else:
        grad_target = grad_norm = nan
    gx_norm = nan
    if grad_features is not None:
        gx_norm = torch.linalg.vector_norm(grad_features.to(dtype), dim=1) * grad_scale
        checks.append(gx_norm)
    finite = torch.isfinite(torch.stack([c.to(dtype) for c in checks])).all(dim=0)
    return {
        "finite": finite,
        "p_target": logp_clean.exp(),
        "p_target_noisy": logp_noisy.exp(),
        "ce": -logp_noisy,
        "grad_target": grad_target,
        "grad_logits_norm": grad_norm,
        "grad_features_norm": gx_norm,
        "noise": noise.to(dtype),
        "cos_target": cos,
        "feature_norm": x_norm,
        "weight_norm_target": w_norm,
        "logit_target": f_y,
        "logit_margin": f_y - others.amax(dim=1),
    }


def reduce_batch(
    stats: dict[str, Tensor],
    mask: Tensor,
    layout: Layout,
    *,
    loss: Tensor | float | None = None,
    grad_weight_norm: Tensor | None = None,
    bad_index: Tensor | None = None,
) -> Tensor:
    """The raw row (K,) of one step: sums over finite samples, counts and maxima.

    Args:
        stats: the output of :func:`per_sample_statistics`.
        mask: the samples to use, (N,) bool (normally ``stats["finite"]``).
        layout: the raw-row layout (it holds the thresholds).
        loss: the step's loss (mean over the step's samples), a scalar tensor or float; if None
            the mean cross-entropy of the noisy logits over the finite samples is reported.
        grad_weight_norm: ||dL/dW|| of the head, a scalar tensor; NaN when None.
        bad_index: number of out-of-range dataset indices in the step, a scalar tensor.

    Returns:
        A float32 tensor (K,) on the device of ``mask``, in ``layout.names`` order.
    """
    n = mask.shape[0]
    zero = torch.zeros((), dtype=torch.float32, device=mask.device)
    if loss is None:
        loss_given, loss_sum = zero, zero
    elif isinstance(loss, Tensor):
        loss_given, loss_sum = zero + 1, loss.detach().reshape(()).float() * n
    else:
        loss_given, loss_sum = zero + 1, zero + float(loss) * n
    noise_max = (torch.where(mask, stats["noise"], float("-inf")).amax().float() if n
                 else zero + float("nan"))
    scalars = torch.stack([
        zero + n, mask.sum().float(), loss_given, loss_sum, noise_max,
        zero + float("nan") if grad_weight_norm is None
        else grad_weight_norm.detach().reshape(()).float(),
        zero if bad_index is None else bad_index.reshape(()).float(),
    ])
    # One (S, N) tensor and one reduction, rather than S small ones (each op costs ~us on CPU).
    # where(), not multiplication: NaN * 0 would still be NaN.
    per_sample = torch.stack([stats[key] for key in _SUMMED])
    sums = torch.where(mask, per_sample, 0).sum(dim=1)
    p = stats["p_target"]
    saturated = ((p >= layout.taus(p.device, p.dtype)) & mask).sum(dim=1)
    return torch.cat([scalars, sums.float(), saturated.float()])


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def finalize(
    raw: np.ndarray,
    quantiles: np.ndarray,
    steps: Sequence[int],
    layout: Layout,
) -> list[dict[str, Any]]:
    """Turn raw rows into rows of the metrics table (host side, float64).

    Args:
        raw: raw rows, (R, K), reduced over ranks already.
        quantiles: (R, 3) the q10, median and q90 of the clean p_target per step.
        steps: the step index of each row, length R.
        layout: the layout of ``raw``.

    Returns:
        R dicts with the keys of :func:`column_names`, in that order.
    """
    raw = np.asarray(raw, dtype=np.float64)
    c = {name: raw[:, i] for i, name in enumerate(layout.names)}
    n, nf = c["n"], c["n_finite"]
    loss = np.where(c["loss_given"] > 0, _div(c["loss_sum"], n), _div(c["sum_ce"], nf))
    loss_bad = (c["loss_given"] > 0) & ~np.isfinite(c["loss_sum"])
    cols: dict[str, np.ndarray] = {col: _div(c[f"sum_{key}"], nf) for key, col in _MEANS}
    cols["p_target_q10"], cols["p_target_median"], cols["p_target_q90"] = quantiles.T
    fracs = [_div(c[f"sat_{i}"], nf) for i in range(len(layout.thresholds))]
    for tau, frac in zip(layout.thresholds, fracs, strict=True):
        cols[threshold_column(tau)] = frac
    cols["saturated_frac"] = fracs[-1]
    cols["noise_max"] = np.where(nf > 0, c["noise_max"], np.nan)
    cols["grad_weight_norm"] = c["grad_weight_norm"]
    cols["loss"] = loss
    names = column_names(layout.thresholds)
    rows = []
    for r, step in enumerate(steps):
        row: dict[str, Any] = {"step": int(step), "batch_size": int(n[r])}
        for name in names[2:-1]:
            row[name] = float(cols[name][r])
        row["nonfinite"] = bool(nf[r] < n[r] or loss_bad[r] or not math.isfinite(row["loss"]))
        rows.append(row)
    return rows
