"""The recorder's statistics as pure functions, in as few passes as the maths allows.

A step is turned into numbers in three stages, so that the per-step part stays small and on
the device, and the reduction across ranks is exact:

1. per micro-batch (a training forward of the head), :func:`logit_values`,
   :func:`feature_values` and :func:`gradient_values` reduce the captured (P, C) logits,
   (P, D) features and their gradients to a few (P,) vectors, one pass over each big tensor:
   log p_y of the training and the clean logits, the clean target logit and the largest other
   one, ||X||, ||W_y||, W_y.X, |dL/df_y| and ||dL/df||. With the target known at forward time
   this happens in the hooks, and nothing of size (positions x classes) is kept until
   ``step()``. A small step (a classifier's batch) reduces its features at once and leaves
   its logits and their gradient to the flush, which reduces all buffered steps together;
2. per step (or, for small steps, per flush), :func:`satkit.hooks.reduce.reduce` runs what
   is pending of those kernels and stacks the vectors into one (len(Layout.packed), P)
   tensor for the device buffer (:data:`satkit.hooks.layout.SLOTS`, then the recorded
   quantities' own kernels);
3. per flush, :func:`reduce_rows` evaluates the declared per-position values
   (:data:`satkit.columns.VALUES`) on every buffered step at once and reduces them to
   one *raw* row per step (:class:`~satkit.hooks.layout.Layout`: sums, counts and maxima,
   never means, so they add exactly across ranks), the per-position p_y and noise kept for
   quantiles and histograms, and the per-sample values of the individual-saturation record;
   then, on the host,
   :func:`satkit.hooks.rows.finalize` turns raw rows into rows of the ``metrics`` table.

Positions: a sample of (N, C) logits, or a token of (N, T, C) sequence logits whose target is
not ``ignore_index``. Positions whose logits, noise, features or gradients are not finite are
left out of every sum (the counts say how many were used) and set the row's ``nonfinite`` flag.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from satkit import columns
from satkit.functional import clean_logits
from satkit.hooks.buffer import to_device
from satkit.hooks.layout import CHECKED, LOGGED, PRESENT, STEP_SCALARS, Extras, Layout
from satkit.hooks.visits import visit_values

__all__ = ["Kernels", "feature_values", "forward_values", "gradient_values", "kernels",
           "logit_values", "logit_values_from_log_softmax", "per_sample_statistics",
           "reduce_rows"]

def _dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _extras(logp: Tensor, extras: Extras) -> dict[str, Tensor]:
    return {name: kernel(logp) for name, kernel in extras}


def logit_values(logits: Tensor, clean: Tensor | None, target: Tensor, valid: Tensor,
                 noise: Tensor, extras: Extras = ()) -> dict[str, Tensor]:
    """The per-position quantities of one micro-batch's logits (pure; no host sync).

    Cost: one log-softmax and one max over the (P, C) logits (and one more log-softmax over
    the clean logits when they differ); the log-softmax allocates the one temporary (P, C)
    tensor, reused for the max.

    Args:
        logits: the training logits, (P, C).
        clean: the clean logits, (P, C); None when they are ``logits`` (a plain head).
        target: class indices, (P,) int64 (any value where ``valid`` is False).
        valid: positions to use, (P,) bool.
        noise: how far the training target logit lies below the clean one, (P,).
        extras: the recorded quantities' own kernels, run on the training log-softmax.

    Returns:
        (P,) float tensors (float64 for float64 logits, else float32): ``logp_train`` and
        ``logp_clean`` (log p_y of the training and the clean logits), ``f_y`` (the clean
        target logit), ``max_other`` (the largest other clean logit), ``noise``; one per
        extra kernel; and ``valid``.
    """
    dtype = _dtype(logits)
    col = torch.where(valid, target, 0).unsqueeze(1)
    f = logits.to(dtype)
    logp = torch.log_softmax(f, dim=1)  # the one (P, C) temporary, reused below
    logp_train = logp.gather(1, col).squeeze(1)
    extra = _extras(logp, extras)
    c = f
    if clean is not None:
        c = clean.to(dtype)
        logp = torch.log_softmax(c, dim=1)
    logp_clean = logp.gather(1, col).squeeze(1)
    f_y = c.gather(1, col).squeeze(1)
    # The largest other logit, from the log-probabilities: f_y - f_j = log p_y - log p_j, so
    # one in-place write of -inf on the target column and one max pass (no sort, no copy).
    logp.scatter_(1, col, -math.inf)
    max_other = f_y - (logp_clean - logp.amax(dim=1))
    return {"logp_train": logp_train, "logp_clean": logp_clean, "f_y": f_y,
            "max_other": max_other, "noise": noise.to(dtype), "valid": valid, **extra}


def logit_values_from_log_softmax(logits: Tensor, logp: Tensor, target: Tensor, valid: Tensor,
                                  noise: Tensor, extras: Extras = ()) -> dict[str, Tensor]:
    """:func:`logit_values` of a plain head (clean logits = training logits) given ``logp``,
    the log-softmax of ``logits`` its loss computed already (:mod:`satkit.hooks.lossgraph`):
    the same values, from one max pass over ``logp`` and no (P, C) temporary.

    ``logp`` is the loss's own tensor and is left as it was: for the max its target column is
    set to -inf and then written back, through an alias autograd does not track, so the loss's
    backward reads the same values and sees no in-place change. Eager only (no host sync).

    Args:
        logits: the logits, (P, C).
        logp: ``log_softmax(logits)``, (P, C), float32 or float64 (float64 for float64 logits).
        target, valid, noise, extras: as for :func:`logit_values`.
    """
    dtype = _dtype(logits)
    col = torch.where(valid, target, 0).unsqueeze(1)
    extra = {k: v.to(dtype) for k, v in _extras(logp.detach(), extras).items()}
    lp = logp.data  # shares the storage, not the version counter
    own = lp.gather(1, col)
    lp.scatter_(1, col, -math.inf)
    try:
        other = lp.amax(dim=1)
    finally:
        lp.scatter_(1, col, own)
    logp_y = own.squeeze(1).to(dtype)
    f_y = logits.gather(1, col).squeeze(1).to(dtype)
    return {"logp_train": logp_y, "logp_clean": logp_y, "f_y": f_y,
            "max_other": f_y - (logp_y - other.to(dtype)), "noise": noise.to(dtype),
            "valid": valid, **extra}


def feature_values(features: Tensor, weight: Tensor, rows: Tensor) -> dict[str, Tensor]:
    """||X||, ||W_y|| and W_y.X per position (pure; no host sync): one pass over the (P, D)
    features; W_y.X from the (P, C) product X W^T and ||W_y|| from the C row norms when there
    are few classes (C <= 64: cheaper than gathering P rows of W), both from the gathered
    (P, D) rows of W otherwise (no pass over a vocabulary's W).

    Args:
        features: the head's input X, (P, D).
        weight: the class weights W, (C, D), as they are at this step.
        rows: each position's target class, (P,) int64, every value a row of W (a position
            to leave out may carry any class, e.g. 0).

    Returns:
        ``feature_norm``, ``weight_norm`` and ``dot``, (P,) each (float64 for float64
        features, else float32).
    """
    dtype = _dtype(features)
    x = features.to(dtype)
    w = weight.detach().to(dtype)
    if w.shape[0] <= 64:
        dot = torch.mm(x, w.T).gather(1, rows.unsqueeze(1)).squeeze(1)
        weight_norm = torch.linalg.vector_norm(w, dim=1).index_select(0, rows)
    else:  # a vocabulary: the P rows, not the C of W
        w_y = w.index_select(0, rows)
        dot = (w_y * x).sum(dim=1)
        weight_norm = torch.linalg.vector_norm(w_y, dim=1)
    return {"feature_norm": torch.linalg.vector_norm(x, dim=1), "weight_norm": weight_norm,
            "dot": dot}


def forward_values(logits: Tensor, clean: Tensor | None, target: Tensor, valid: Tensor,
                   noise: Tensor, features: Tensor, weight: Tensor,
                   extras: Extras = ()) -> dict[str, Tensor]:
    """:func:`logit_values` and :func:`feature_values` of one micro-batch, in one dict
    (``weight`` is W, (C, D)); see those for the shapes and the cost."""
    return {**logit_values(logits, clean, target, valid, noise, extras),
            **feature_values(features, weight, torch.where(valid, target, 0))}


def gradient_values(grad_logits: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """|dL/df_y| and ||dL/df|| per position, (P,) each, unscaled; one pass over the (P, C)
    gradient and no temporary of its size."""
    g = grad_logits.to(_dtype(grad_logits))
    tgt = torch.where(valid, target, 0).unsqueeze(1)
    return {"grad_target": g.gather(1, tgt).squeeze(1).abs(),
            "grad_norm": torch.linalg.vector_norm(g, dim=1)}


class Kernels(NamedTuple):
    """The per-step functions the hooks call: eager, or compiled (:func:`kernels`), and the
    extra kernels of the recorded quantities (``logit_values``' last argument)."""

    logit_values: Any
    feature_values: Any
    gradient_values: Any
    extras: Extras = ()


_COMPILED: list[Kernels] = []


def kernels(compiled: bool, extras: Extras = ()) -> Kernels:
    """The per-step functions, eager or ``torch.compile``-d (compiled once per process, with
    dynamic shapes, and shared by every recorder). They give the same numbers either way (a
    test checks); compiling pays where each operation is a kernel launch (CUDA)."""
    if not compiled:
        return Kernels(logit_values, feature_values, gradient_values, extras)
    if not _COMPILED:
        _COMPILED.append(Kernels(*(torch.compile(f, dynamic=True) for f in (
            logit_values, feature_values, gradient_values))))
    return _COMPILED[0]._replace(extras=extras)


def _formulas(extras: Extras) -> dict[str, Any]:
    """The per-position values to evaluate: :data:`satkit.columns.VALUES`, the values of
    their own kernel only for the ``extras`` computed (read from their slot)."""
    own = {q.value for q in columns.QUANTITIES if q.kernel is not None}
    out = {name: formula for name, (formula, _) in columns.VALUES.items() if name not in own}
    out.update({name: operator.attrgetter(name) for name, _ in extras})
    return out


def reduce_rows(packed: Tensor, scalars: Tensor, index: Tensor, meta: Sequence[Any],
                layout: Layout, num_samples: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Reduce R buffered steps at once (at a flush, on the device; no host sync).

    Evaluates the declared per-position values (:data:`satkit.columns.VALUES`) on every
    position of every step and reduces them per step; one pass of each operation over the
    whole buffer instead of one per step.

    Args:
        packed: (R, len(layout.packed), W) from :func:`satkit.hooks.reduce.reduce`, padded
            with NaN (``valid`` NaN).
        scalars: (R, len(STEP_SCALARS)) from :func:`satkit.hooks.reduce.pack_scalars`.
        index: (R, B) dataset indices (padding -1), read where ``meta[r].has_index``.
        meta: per step, a :class:`satkit.hooks.buffer.StepMeta`.
        layout: the raw-row layout (it holds the thresholds).
        num_samples: the dataset size, to count out-of-range indices.

    Returns:
        ``raw`` (R, K) float32 in ``layout.names`` order; ``logged`` (R, 3, W) float32, the
        per-position :data:`LOGGED` values (NaN where unused); ``per_sample``
        (R, len(VISIT_VALUES), B) float32: each sample's values of this visit
        (:func:`satkit.hooks.visits.visit_values`: mean p_y and share of its positions at or
        above the last threshold in each view, mean clean margin, share predicted right; NaN
        where no usable position).
    """
    device = packed.device
    c = {k: packed[:, i] for i, k in enumerate(layout.packed)}
    s = {k: scalars[:, i] for i, k in enumerate(STEP_SCALARS)}
    present = ("loss_given", *PRESENT.values(), "has_index")
    flags = to_device([[*(getattr(m, f) for f in present), m.samples] for m in meta],
                      torch.float32, device)
    valid = c["valid"] == 1
    n_valid = valid.sum(dim=1)
    ns = SimpleNamespace(**c, scale=n_valid.float()[:, None], tiny=torch.finfo(torch.float32).tiny)
    values = {name: formula(ns) for name, formula in _formulas(layout.extras).items()}
    checks = [c[k] if k not in PRESENT else  # an absent gradient: no failure
              torch.where(flags[:, present.index(PRESENT[k]), None] > 0, c[k], 0)
              for k in CHECKED]
    mask = valid & torch.isfinite(torch.stack(checks)).all(dim=0)
    n_finite = mask.sum(dim=1)
    loss_sum = torch.where(flags[:, 0] > 0, s["loss"] * n_valid, math.nan)
    real = torch.arange(index.shape[1], device=device) < flags[:, 4, None]
    out_of_range = (index < 0) | (index >= (num_samples or 0))
    bad_index = torch.where(flags[:, 3] > 0, (real & out_of_range).sum(dim=1), 0)

    def stacked(names: tuple[str, ...]) -> Tensor:  # (S, R, W)
        if names:
            return torch.stack([values[v] for v in names])
        return packed.new_zeros((0, *packed.shape[::2]))

    sums = torch.where(mask, stacked(layout.sums), 0).sum(dim=2)  # (S, R)
    maxima = torch.where(mask, stacked(layout.maxima), -math.inf).amax(dim=2) \
        if packed.shape[2] else packed.new_full((len(layout.maxima), packed.shape[0]), math.nan)
    frac = stacked(layout.fractions)  # (F, R, W)
    taus = layout.taus(device, packed.dtype)[..., None]  # (1, T, 1, 1)
    counts = ((frac[:, None] >= taus) & mask).sum(dim=3)  # (F, T, R)
    raw = torch.cat([
        torch.stack([n_valid.float(), n_finite.float(), flags[:, 0], loss_sum,
                     s["grad_weight_norm"], bad_index.float(), s["bad_target"]], dim=1),
        sums.T.float(), maxima.T.float(), counts.permute(2, 0, 1).reshape(len(meta), -1).float(),
    ], dim=1)
    logged = torch.where(mask[:, None], torch.stack([values[v] for v in LOGGED], dim=1),
                         math.nan).float()
    margin = torch.where(mask, c["f_y"] - c["max_other"], math.nan)[:, None]
    per_sample = visit_values(torch.cat([logged[:, :2], margin], dim=1), mask,
                              [m.sizes for m in meta], layout.thresholds[-1])
    return raw, logged, per_sample


def per_sample_statistics(logits: Tensor, target: Tensor, noise: Tensor, features: Tensor,
                          weight: Tensor, grad_logits: Tensor | None = None,
                          grad_features: Tensor | None = None, *, grad_scale: float = 1.0,
                          clean: Tensor | None = None) -> dict[str, Tensor]:
    """Every per-position value of :data:`satkit.columns.VALUES` (the opt-in ones too) for
    one batch of (N, C) logits, in one call (for analysis and tests; the recorder uses the
    staged functions above).

    Args:
        logits: the training logits, (N, C).
        target: (N,) int64.
        noise: clean minus training target logit, (N,).
        features: X, (N, D).
        weight: W, (C, D).
        grad_logits, grad_features: gradients of the loss, or None (NaN values).
        grad_scale: multiplies the gradients (N for a mean loss: per-sample gradients).
        clean: the clean logits; default ``logits`` with ``noise`` added back on the target.

    Returns:
        name -> (N,) tensor, plus ``finite`` (N,) bool.
    """
    if clean is None:
        clean = clean_logits(logits, target, noise)
    valid = torch.ones_like(target, dtype=torch.bool)
    extras = Layout((0.5,), columns.opt_in_names()).extras
    c = forward_values(logits, clean, target, valid, noise, features, weight, extras)
    if grad_logits is not None:
        c.update(gradient_values(grad_logits, target, valid))
    if grad_features is not None:
        c["grad_features_norm"] = torch.linalg.vector_norm(grad_features.to(c["f_y"].dtype), dim=1)
    nan = torch.full_like(c["f_y"], math.nan)
    ns = SimpleNamespace(**{"grad_target": nan, "grad_norm": nan, "grad_features_norm": nan,
                            **c}, scale=grad_scale, tiny=torch.finfo(c["f_y"].dtype).tiny)
    out = {name: formula(ns) for name, formula in _formulas(extras).items()}
    checks = [c[k] for k in CHECKED if k in c]
    out["finite"] = torch.isfinite(torch.stack(checks)).all(dim=0)
    return out
