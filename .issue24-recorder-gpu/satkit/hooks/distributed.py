"""Reduction of the recorder's buffer across ``torch.distributed`` ranks, once per flush.

Each rank records statistics of its own share of the global batch. At a flush, every rank
contributes one flat float64 tensor (its raw rows and its per-sample logs) to a single
``all_gather``: one collective per flush, never one per step. Every rank then holds the data of
all ranks and reduces it locally, so all ranks end with the same table and the same per-sample
record, and the reduction is exact:

* sums and counts add (a mean over the global batch is weighted by each rank's batch size);
* maxima take the maximum; values every rank holds identically (||dL/dW|| of a DDP-averaged
  gradient) take the mean;
* quantiles of p_target come from the gathered per-sample values of all ranks, not from the
  ranks' quantiles.

Requirement: every rank must call ``flush()`` (also ``metrics()``, ``samples()``, ``close()``)
the same number of times, with the same number of buffered rows and the same per-step sample
count (``DistributedSampler`` guarantees the latter: it gives each rank the same count).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_distributed", "gather", "merge_raw", "rank", "world_size"]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def gather(parts: Sequence[Tensor]) -> list[Tensor]:
    """All-gather several tensors of this rank in one collective.

    Args:
        parts: tensors of any shape and dtype on one device (integers must fit in float64's
            53-bit mantissa; dataset indices do).

    Returns:
        For each part, a tensor of shape (world_size, *part.shape) and the part's dtype, on the
        part's device; row r holds rank r's part. Without a process group: ``part[None]``.
    """
    if not is_distributed():
        return [p.unsqueeze(0) for p in parts]
    flat = torch.cat([p.reshape(-1).to(torch.float64) for p in parts])
    if dist.get_backend() == "nccl" and flat.device.type == "cpu":
        raise RuntimeError("the NCCL backend needs the recorder's buffer on a CUDA device")
    out = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(out, flat)  # the one collective of a flush
    stacked = torch.stack(out)
    result, start = [], 0
    for p in parts:
        chunk = stacked[:, start:start + p.numel()]
        result.append(chunk.reshape(-1, *p.shape).to(p.dtype))
        start += p.numel()
    return result


def merge_raw(raw: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
    """Reduce raw rows of all ranks, (W, R, K) -> (R, K), column by column per ``kinds``.

    ``"sum"`` adds, ``"max"`` takes the NaN-ignoring maximum, ``"mean"`` averages.

    Example:
        >>> raw = np.array([[[2.0, 1.0, 5.0]], [[3.0, np.nan, 5.0]]])  # 2 ranks, 1 row
        >>> merge_raw(raw, ["sum", "max", "mean"]).tolist()
        [[5.0, 1.0, 5.0]]
    """
    raw = np.asarray(raw, dtype=np.float64)
    out = np.empty(raw.shape[1:], dtype=np.float64)
    for k, kind in enumerate(kinds):
        col = raw[:, :, k]
        if kind == "sum":
            out[:, k] = col.sum(axis=0)
        elif kind == "max":
            out[:, k] = np.fmax.reduce(col, axis=0)
        elif kind == "mean":
            out[:, k] = col.mean(axis=0)
        else:
            raise ValueError(f"unknown reduction kind {kind!r}")
    return out
