"""One way from captured training forwards to the packed per-position vectors of a step.

Every training forward of the head leaves a :class:`Record` (:meth:`Capture.record
<satkit.hooks.capture.Capture.record>`): references to whatever of its logits and their
gradient is not reduced yet, the (P,) vectors that are, and its gradient scale. :func:`reduce`
turns any list of records into the packed (len(layout.packed), P_total) stack of the buffer,
with every rule written once here: the clean logits (:func:`satkit.functional.clean_logits`
for a head whose noise is on the target column only), the logit and gradient kernels run once
over all pending positions, an announced gradient scale, the packing. The recorder calls it
at ``step()`` for a large step and at the flush for all buffered small steps at once
(:func:`fill_rows`): which path is only *when*, never *how*. :func:`pack_scalars` stacks the
steps' scalars, at the flush, for both.

No host sync, and no host-to-device copy (what the flush needs from the host comes through
:func:`satkit.hooks.buffer.to_device`: pinned memory, non-blocking).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from satkit.functional import clean_logits
from satkit.hooks import stats
from satkit.hooks.buffer import to_device
from satkit.hooks.layout import SCALED, STEP_SCALARS, Layout, scalar_constants

__all__ = ["Record", "fill_rows", "logit_vectors", "pack_scalars", "reduce"]


@dataclass
class Record:
    """What one training forward leaves for :func:`reduce` (the target is known).

    Attributes:
        target: (P,) int64. rows: (P,) the target with left-out positions on class 0.
        valid: (P,) bool, the positions to use.
        noise: (P,), how far the training target logit lies below the clean one.
        values: the (P,) vectors reduced already (the feature side always; the logit and
            gradient sides of a large capture).
        logits, clean: (P, C) references while the logits wait to be reduced, else None.
        clean_from_noise: the clean logits are ``logits`` with ``noise`` added back on the
            target column.
        grad: the logits' (P, C) gradient while it waits to be reduced, else None.
        grad_scale: the announced gradient scale (``SaturationRecorder.set_target``), or None.
    """

    target: Tensor
    rows: Tensor
    valid: Tensor
    noise: Tensor
    values: dict[str, Tensor] = field(default_factory=dict)
    logits: Tensor | None = None
    clean: Tensor | None = None
    clean_from_noise: bool = False
    grad: Tensor | None = None
    grad_scale: Tensor | float | None = None

    @property
    def positions(self) -> int:
        return self.target.shape[0]


def _cat(parts: Sequence[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(list(parts))


def logit_vectors(logits: Tensor, clean: Tensor | None, from_noise: Tensor | bool,
                  target: Tensor, rows: Tensor, valid: Tensor, noise: Tensor,
                  kernels: stats.Kernels) -> dict[str, Tensor]:
    """The logit kernel of (P, C) logits, with the clean logits made by the one rule.

    Args:
        logits: the training logits. clean: the head's clean logits, or None (= ``logits``
            unless ``from_noise``).
        from_noise: True: the clean logits are ``logits`` with ``noise`` added back on the
            target column; a (P,) float tensor: that, with this noise (0 where not).
        target, rows, valid, noise: as in :class:`Record`.
    """
    if from_noise is not False:
        base = logits if clean is None else clean
        clean = clean_logits(base, rows, noise if from_noise is True else from_noise)
    return kernels.logit_values(logits, clean, target, valid, noise, kernels.extras)


def _pending_logits(recs: list[Record], kernels: stats.Kernels) -> dict[str, Tensor]:
    """:func:`logit_vectors` of several records' pending logits, in one call."""
    logits = _cat([r.logits for r in recs])
    clean = None
    if any(r.clean is not None for r in recs):
        clean = _cat([r.logits if r.clean is None else r.clean for r in recs])
    from_noise: Tensor | bool = all(r.clean_from_noise for r in recs)
    if not from_noise and any(r.clean_from_noise for r in recs):
        from_noise = _cat([r.noise if r.clean_from_noise else r.noise.new_zeros(r.positions)
                           for r in recs])
    return logit_vectors(logits, clean, from_noise, _cat([r.target for r in recs]),
                         _cat([r.rows for r in recs]), _cat([r.valid for r in recs]),
                         _cat([r.noise for r in recs]), kernels)


def _spread(out: dict[str, Tensor], todo: list[int], records: list[Record],
            parts: list[dict[str, Tensor]], whole: dict[str, Tensor] | None) -> None:
    """Vectors of the records ``todo``: whole columns when they are all the records (and
    ``whole`` is given), else split back per record."""
    if whole is not None and len(todo) == len(records):
        whole.update(out)
        return
    sizes = [records[i].positions for i in todo]
    for key, value in out.items():
        for i, part in zip(todo, value.split(sizes), strict=True):
            parts[i][key] = part


def reduce(records: list[Record], layout: Layout, kernels: stats.Kernels,
           step_of: Sequence[int] | None = None) -> Tensor:
    """The packed vectors of ``records``, (len(layout.packed), P_total), P_total their
    positions in order (no host sync).

    Pending logits and gradients are reduced together (one kernel call each); a vector no
    record has (no gradient reached the features, say) is NaN; a vector some records lack is
    NaN at theirs. An announced ``grad_scale`` turns a record's gradient vectors into
    per-position ones: the statistics multiply every gradient by its step's number of
    positions, so such a record's are multiplied by ``grad_scale / positions`` first.

    Args:
        records: the records, in step order and forward order within a step.
        layout: what is packed, in which order (``layout.packed``).
        kernels: the logit and gradient kernels (eager or compiled; with the extra kernels of
            the recorded quantities).
        step_of: the step of each record (default: all the same step), for the positions a
            gradient scale divides by.
    """
    scaled = any(r.grad_scale is not None for r in records)
    parts = [dict(r.values) for r in records]
    whole: dict[str, Tensor] = {}
    todo = [i for i, r in enumerate(records) if r.logits is not None]
    if todo:
        out = _pending_logits([records[i] for i in todo], kernels)
        _spread(out, todo, records, parts, None if scaled else whole)
    todo = [i for i, r in enumerate(records) if r.grad is not None]
    if todo:
        recs = [records[i] for i in todo]
        out = kernels.gradient_values(_cat([r.grad for r in recs]), _cat([r.target for r in recs]),
                                      _cat([r.valid for r in recs]))
        _spread(out, todo, records, parts, None if scaled else whole)
    if scaled:
        _scale_gradients(records, parts, step_of or [0] * len(records))
    f_y = whole["f_y"] if "f_y" in whole else parts[0]["f_y"]
    dtype = f_y.dtype
    stacked = []
    for slot in layout.packed:
        if slot == "valid":
            stacked.append(_cat([r.valid for r in records]).to(dtype))
        elif slot in whole:
            stacked.append(whole[slot].to(dtype))
        elif any(slot in p for p in parts):
            stacked.append(_cat([p[slot].to(dtype) if slot in p else
                                 f_y.new_full((r.positions,), math.nan)
                                 for p, r in zip(parts, records, strict=True)]))
        else:
            stacked.append(f_y.new_full((f_y.shape[0] if "f_y" in whole else
                                         sum(r.positions for r in records),), math.nan))
    packed = torch.stack(stacked)
    return packed if packed.dtype == torch.float32 else packed.float()


def _scale_gradients(records: list[Record], parts: list[dict[str, Tensor]],
                     step_of: Sequence[int]) -> None:
    """The gradient-scale rule (see :func:`reduce`), per record."""
    positions: dict[int, Any] = {}
    for r, s in zip(records, step_of, strict=True):
        positions[s] = positions.get(s, 0) + r.valid.sum()
    for r, s, p in zip(records, step_of, parts, strict=True):
        if r.grad_scale is not None:
            for key in SCALED:
                if key in p:
                    p[key] = p[key] * r.grad_scale / positions[s]


def pack_scalars(entries: Sequence[tuple[Any, Any, Any]], device: torch.device) -> Tensor:
    """The steps' scalars, (len(entries), len(STEP_SCALARS)) float32 on ``device``: per step
    its ``(loss, grad_weight_norm, bad_target)``, each a device scalar, a number (the loss)
    or None (NaN, NaN, 0)."""
    nan, zero = scalar_constants(device)
    parts: list[Tensor] = []
    for loss, grad_weight_norm, bad_target in entries:
        if isinstance(loss, (int, float)):
            loss = zero + float(loss)
        parts += [nan if loss is None else loss.reshape(()).float(),
                  nan if grad_weight_norm is None else grad_weight_norm.reshape(()).float(),
                  zero if bad_target is None else bad_target.reshape(()).float()]
    return torch.stack(parts).reshape(len(entries), len(STEP_SCALARS))


def fill_rows(packed: Tensor, entries: list[tuple[int, list[Record]]], layout: Layout,
              kernels: stats.Kernels) -> None:
    """:func:`reduce` the records of buffered steps at once and write each step's vectors
    into its row of the buffer's (capacity, F, W) ``packed`` (NaN beyond its positions)."""
    records = [r for _, recs in entries for r in recs]
    step_of = [row for row, recs in entries for _ in recs]
    vectors = reduce(records, layout, kernels, step_of)  # (F, P_total)
    sizes = [sum(r.positions for r in recs) for _, recs in entries]
    steps = [row for row, _ in entries]
    # where each position goes: its row and its place in the row; one non-blocking copy
    where = to_device(np.concatenate([steps, np.repeat(steps, sizes),
                                      np.concatenate([np.arange(n) for n in sizes])]),
                      torch.int64, packed.device)
    total = sum(sizes)
    packed.index_fill_(0, where[: len(steps)], math.nan)
    packed[where[len(steps): len(steps) + total], :, where[len(steps) + total:]] = \
        vectors.T.to(packed.dtype)
