"""What one *visit* of a training sample contributes to its per-sample record.

A visit is one observation of a sample in a recorded training step. At the flush,
:func:`visit_values` turns the per-position values of the buffered steps (p_y in both views,
the clean margin ``f_y - max_{j != y} f_j``) into one column per sample per step, the rows of
:data:`VISIT_VALUES`. A classifier has one position per sample; a sequence of (N, T, C) logits
has one per token whose target is not ``ignore_index``, and its visit values are **means over
its tokens**: mean p_y, the share of its tokens with p_y >= tau, mean margin, and the share
of its tokens predicted right (its token accuracy).

A position is *predicted right* when its clean margin is > 0: the target logit is strictly
larger than every other clean logit. A tie (two classes sharing the largest logit, to the
float precision of the log-softmax) counts as **wrong**; ``argmax``, which returns the first
of tied classes, may say otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["VISIT_VALUES", "visit_values"]

#: The per-sample values of one visit, in this order (rows of :func:`visit_values`'s result).
#: ``share_*``: share of the sample's positions with p_y >= tau in that view; ``margin``: mean
#: clean margin; ``correct``: share of its positions predicted right (margin > 0).
VISIT_VALUES = ("p_clean", "p_noisy", "share_clean", "share_noisy", "margin", "correct")


def visit_values(values: Tensor, mask: Tensor, sizes: Sequence[Sequence[tuple[int, int]]],
                 tau: float) -> Tensor:
    """Per-sample visit values of R buffered steps (on the device; no host sync).

    Args:
        values: (R, 3, W): per position, clean p_y, p_y of the training logits and the clean
            margin (anything where ``mask`` is False).
        mask: (R, W) bool, the positions to use.
        sizes: per step, the (N_i, T_i) of its micro-batches (T_i = 1 for (N, C) logits).
        tau: the saturation threshold of the ``share_*`` rows.

    Returns:
        (R, len(VISIT_VALUES), B) float, B = the widest step's sample count (W for a
        classifier); NaN for a sample without a usable position and beyond a step's samples.
    """
    p, margin = values[:, :2], values[:, 2:3]
    share = torch.where(mask[:, None], (p >= tau).to(p.dtype), math.nan)
    right = torch.where(mask[:, None], (margin > 0).to(p.dtype), math.nan)
    margin = torch.where(mask[:, None], margin, math.nan)
    if all(t == 1 for row in sizes for _, t in row):  # one position per sample
        p = torch.where(mask[:, None], p, math.nan)
        return torch.cat([p, share, margin, right], dim=1)
    stacked = torch.cat([p, share, margin, right], dim=1)  # (R, 6, W)
    width = max(sum(n for n, _ in row) for row in sizes)
    out = p.new_full((len(sizes), len(VISIT_VALUES), width), math.nan)
    for r, row in enumerate(sizes):  # sequence logits: a loop over the flushed rows only
        start, sample = 0, 0
        for n, t in row:
            block = stacked[r, :, start:start + n * t].reshape(len(VISIT_VALUES), n, t)
            m = mask[r, start:start + n * t].reshape(1, n, t)
            count = m.sum(dim=2)  # a sample with no usable position: 0 / 0 = NaN
            out[r, :, sample:sample + n] = torch.where(m, block, 0).sum(dim=2) / count
            start, sample = start + n * t, sample + n
    return out
