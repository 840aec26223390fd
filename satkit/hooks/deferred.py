"""Deferred steps: the statistics of many small steps, computed together at the flush.

A small capture (a classifier's batch; see :data:`satkit.hooks.capture.DEFER_LIMIT`) keeps
references to its step's logits and their gradient, and the (P,) vectors its features were
reduced to at the step (they need W as it was then; concatenating the (P, D) features of a
hundred steps would cost more than reducing them). At the flush, :func:`fill_deferred`
concatenates the buffered steps' positions and runs :func:`~satkit.hooks.stats.logit_values`
and :func:`~satkit.hooks.stats.gradient_values` once over all of them, then writes each step's
vectors into its row of the buffer, exactly as an immediate step would have: the same numbers,
for a few operations per step instead of two dozen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satkit.hooks import stats

__all__ = ["fill_deferred"]


def _cat_where(parts: list[Tensor | None], sizes: list[int], like: Tensor) -> Tensor | None:
    """Concatenate ``parts``; None when all are None; NaN rows where some are."""
    if all(p is None for p in parts):
        return None
    return torch.cat([p if p is not None else like.new_full((n,), math.nan)
                      for p, n in zip(parts, sizes, strict=True)])


def fill_deferred(packed: Tensor, scalars: Tensor,
                  entries: list[tuple[int, list[dict[str, Any]], tuple]],
                  kernels: stats.Kernels) -> None:
    """Compute the packed vectors and the scalars of deferred steps; write them into their rows.

    Args:
        packed: the buffer's (capacity, len(PACKED), W) tensor; rows of ``entries`` are
            overwritten (NaN beyond each step's positions).
        scalars: the buffer's (capacity, len(STEP_SCALARS)) tensor; rows of ``entries`` are
            overwritten.
        entries: (row, captures, (loss, grad_weight_norm, bad_target)) per deferred step; a
            capture is :meth:`satkit.hooks.capture.Capture.raw`'s dict; the three are what
            :func:`satkit.hooks.stats.pack_scalars` takes.
        kernels: the per-step functions to use (eager or compiled).
    """
    _fill_scalars(scalars, entries)
    rows, caps, offsets = [], [], []
    for row, raws, _ in entries:
        start = 0
        for raw in raws:
            rows.append(row)
            offsets.append(start)
            caps.append(raw)
            start += raw["target"].shape[0]
    sizes = [c["target"].shape[0] for c in caps]
    device = packed.device
    row_id = torch.from_numpy(np.repeat(rows, sizes)).to(device)
    pos_id = torch.from_numpy(np.concatenate(
        [np.arange(o, o + n) for o, n in zip(offsets, sizes, strict=True)])).to(device)

    def cat(key: str) -> Tensor:
        return torch.cat([c[key] for c in caps])

    logits, target, valid, noise = cat("logits"), cat("target"), cat("valid"), cat("noise")
    clean = None
    from_noise = [c["clean_from_noise"] for c in caps]
    if any(c["clean"] is not None for c in caps) or any(from_noise):
        clean = torch.cat([c["clean"] if c["clean"] is not None else c["logits"] for c in caps])
    if any(from_noise):  # the training logits with the noise added back on the target column
        add = noise if all(from_noise) else torch.where(
            torch.from_numpy(np.repeat(from_noise, sizes)).to(device), noise, 0)
        clean.scatter_add_(1, torch.where(valid, target, 0).unsqueeze(1),
                           add.to(clean.dtype).unsqueeze(1))
    values = kernels.logit_values(logits, clean, target, valid, noise)
    like = values["f_y"]
    for key in ("feature_norm", "weight_norm", "dot"):
        values[key] = torch.cat([c["features"][key] for c in caps]).to(like.dtype)
    with_grad = [i for i, c in enumerate(caps) if c["grad"] is not None]
    if with_grad:
        grads = kernels.gradient_values(torch.cat([caps[i]["grad"] for i in with_grad]),
                                        torch.cat([caps[i]["target"] for i in with_grad]),
                                        torch.cat([caps[i]["valid"] for i in with_grad]))
        for key in ("grad_target", "grad_norm"):
            parts = grads[key].split([sizes[i] for i in with_grad])
            full: list[Tensor | None] = [None] * len(caps)
            for i, part in zip(with_grad, parts, strict=True):
                full[i] = part
            values[key] = _cat_where(full, sizes, like)
    values["grad_features_norm"] = _cat_where([c["grad_features_norm"] for c in caps], sizes,
                                              like)
    if values["grad_features_norm"] is None:
        del values["grad_features_norm"]
    _scale_announced(values, caps, sizes, rows, valid, row_id, packed.shape[0])
    nan = like.new_full((like.shape[0],), math.nan)
    stacked = torch.stack([values.get(k, nan) for k in stats.PACKED[:-1]]
                          + [valid.to(like.dtype)], dim=1).to(packed.dtype)  # (P_total, F)
    packed[sorted({r for r, _, _ in entries})] = math.nan
    packed[row_id, :, pos_id] = stacked


def _fill_scalars(scalars: Tensor, entries: list[tuple[int, list, tuple]]) -> None:
    """The deferred steps' scalars, stacked in one operation (a step made none)."""
    nan, zero = stats.scalar_constants(scalars.device)
    parts: list[Tensor] = []
    for _, _, (loss, grad_weight_norm, bad_target) in entries:
        if isinstance(loss, (int, float)):
            loss = zero + float(loss)
        parts += [nan if loss is None else loss.reshape(()).to(scalars.dtype),
                  nan if grad_weight_norm is None else grad_weight_norm.reshape(()),
                  zero if bad_target is None else bad_target.reshape(()).to(scalars.dtype)]
    rows = [r for r, _, _ in entries]
    scalars[rows] = torch.stack(parts).reshape(len(entries), -1).to(scalars.dtype)


def _scale_announced(values: dict[str, Tensor], caps: list[dict[str, Any]], sizes: list[int],
                     rows: list[int], valid: Tensor, row_id: Tensor, capacity: int) -> None:
    """An announced gradient scale, applied as the immediate path does: the statistics
    multiply gradients by the step's positions, so a scaled capture is divided by them."""
    if all(c["grad_scale"] is None for c in caps):
        return
    dtype, device = values["f_y"].dtype, valid.device
    positions = torch.zeros(capacity, dtype=dtype, device=device).index_add_(
        0, row_id, valid.to(dtype))
    factor = torch.cat([
        torch.ones(n, dtype=dtype, device=device) if c["grad_scale"] is None
        else (torch.as_tensor(c["grad_scale"], dtype=dtype, device=device)
              / positions[row]).expand(n)
        for c, n, row in zip(caps, sizes, rows, strict=True)])
    for key in ("grad_target", "grad_norm", "grad_features_norm"):
        if key in values:
            values[key] = values[key] * factor
