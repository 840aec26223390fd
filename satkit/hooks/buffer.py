"""Preallocated device storage for the recorded steps between two flushes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["StepBuffer"]


class StepBuffer:
    """Room for ``capacity`` recorded steps, on one device, allocated once.

    Shape: ``raw`` (capacity, K) float32; ``logged`` (capacity, L, positions) float32 and
    ``per_sample`` (capacity, 4, samples) float32, padded with NaN; ``index`` (capacity,
    samples) int64, padded with -1. The widths grow (a new allocation, no sync) when a step
    with more positions or samples comes; a step writes with one copy per tensor, and pads
    only when it is narrower than the buffer.
    """

    def __init__(self, capacity: int, k: int, logged: int, positions: int, samples: int,
                 device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.raw = torch.zeros(capacity, k, device=device)
        self.logged = torch.full((capacity, logged, positions), math.nan, device=device)
        self.per_sample = torch.full((capacity, 4, samples), math.nan, device=device)
        self.index = torch.full((capacity, samples), -1, dtype=torch.int64, device=device)
        self.steps: list[int] = []

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.capacity

    def __len__(self) -> int:
        return len(self.steps)

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

    def append(self, step: int, raw: Tensor, logged: Tensor, per_sample: Tensor,
               index: Tensor | None) -> None:
        """Store one step (no host sync): raw (K,), logged (L, P), per_sample (4, N),
        index (N,) or None."""
        if logged.shape[-1] > self.logged.shape[-1]:
            self._widen("logged", logged.shape[-1], math.nan)
        if per_sample.shape[-1] > self.per_sample.shape[-1]:
            self._widen("per_sample", per_sample.shape[-1], math.nan)
            self._widen("index", per_sample.shape[-1], -1)
        r = len(self.steps)
        self.raw[r].copy_(raw)
        self._put(self.logged[r], logged, math.nan)
        self._put(self.per_sample[r], per_sample, math.nan)
        if index is None:
            self.index[r].fill_(-1)
        else:
            self._put(self.index[r], index, -1)
        self.steps.append(step)

    def views(self) -> list[Tensor]:
        """The filled rows: raw, logged, per_sample, index."""
        r = len(self.steps)
        return [self.raw[:r], self.logged[:r], self.per_sample[:r], self.index[:r]]
