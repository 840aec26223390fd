"""Preallocated device storage for the recorded steps between two flushes, and the one way
host data reaches the device at a flush (:func:`to_device`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["StepBuffer", "StepMeta", "to_device"]


def to_device(values: Sequence[Any] | np.ndarray, dtype: torch.dtype,
              device: torch.device) -> Tensor:
    """Host values (a list or an array) as a tensor on ``device``, without waiting for it:
    on CUDA copied from pinned memory with ``non_blocking=True`` (a copy from pageable
    memory is a stream synchronisation); the pinned buffer is kept alive by PyTorch's caching
    host allocator until the copy is done."""
    host = torch.as_tensor(np.asarray(values), dtype=dtype)
    if device.type == "cpu":
        return host
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)


@dataclass(frozen=True)
class StepMeta:
    """What the host knows of a recorded step without reading the device.

    Attributes:
        step: the step index.
        sizes: the (N_i, T_i) of its micro-batches (T_i = 1 for (N, C) logits).
        loss_given: a loss was passed to ``step()``.
        has_grad: the logits' gradient reached the recorder.
        has_grad_features: the features' gradient did too.
        has_index: dataset indices were given.
    """

    step: int
    sizes: tuple[tuple[int, int], ...]
    loss_given: bool
    has_grad: bool
    has_grad_features: bool
    has_index: bool

    @property
    def samples(self) -> int:
        return sum(n for n, _ in self.sizes)


class StepBuffer:
    """Room for ``capacity`` recorded steps, on one device, allocated once.

    Shape: ``packed`` (capacity, F, positions) float32, padded with NaN; ``index``
    (capacity, samples) int64, padded with -1; and, on the host, each step's
    :class:`StepMeta`, its scalars' parts (``(loss, grad_weight_norm, bad_target)``, packed at
    the flush: :func:`satkit.hooks.reduce.pack_scalars`) and, for a step reduced at the
    flush, its records. The widths grow (a new allocation, no
    sync) when a step with more positions or samples comes; a step writes with one copy per
    tensor, and pads only when it is narrower than the buffer.
    """

    def __init__(self, capacity: int, fields: int, positions: int, samples: int,
                 device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.packed = torch.full((capacity, fields, positions), math.nan, device=device)
        self.index = torch.full((capacity, samples), -1, dtype=torch.int64, device=device)
        self.deferred: list[tuple[int, list[Any]]] = []  # (row, records) reduced at the flush
        self.scalars: list[tuple[Any, Any, Any]] = []
        self.meta: list[StepMeta] = []

    @property
    def full(self) -> bool:
        return len(self.meta) >= self.capacity

    def __len__(self) -> int:
        return len(self.meta)

    def _widen(self, name: str, width: int, fill: float) -> None:
        old = getattr(self, name)
        new = torch.full((*old.shape[:-1], width), fill, dtype=old.dtype, device=self.device)
        new[..., : old.shape[-1]] = old
        setattr(self, name, new)

    @staticmethod
    def _put(dest: Tensor, values: Tensor, fill: float) -> None:
        n = values.shape[-1]
        dest[..., :n].copy_(values)
        if n < dest.shape[-1]:
            dest[..., n:].fill_(fill)

    def append(self, meta: StepMeta, packed: Tensor | None, scalars: tuple[Any, Any, Any],
               index: Tensor | None, *, positions: int,
               deferred: list[Any] | None = None) -> None:
        """Store one step (no host sync): packed (F, P), or for a deferred step its records
        (its row is filled at the flush); the (loss, grad_weight_norm, bad_target) its
        scalars are made of; index (N,) or None."""
        if positions > self.packed.shape[-1]:
            self._widen("packed", positions, math.nan)
        if meta.samples > self.index.shape[-1]:
            self._widen("index", meta.samples, -1)
        r = len(self.meta)
        if packed is not None:
            self._put(self.packed[r], packed, math.nan)
        else:
            self.deferred.append((r, deferred))
        self.scalars.append(scalars)
        if index is not None:  # rows without an index are never read (meta.has_index)
            self._put(self.index[r], index, -1)
        self.meta.append(meta)

    def views(self) -> list[Tensor]:
        """The filled rows: packed, index."""
        r = len(self.meta)
        return [self.packed[:r], self.index[:r]]

    def clear(self) -> None:
        self.meta.clear()
        self.deferred.clear()
        self.scalars.clear()
