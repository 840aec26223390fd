"""Per-sample "individual saturation" record, kept on the device (PAPER.md section 1).

The paper's claim is that with plain softmax many samples saturate *early*. To see it, each
training sample gets four numbers, updated from the clean p_target each time it is seen:
the first step at which it was saturated, how often it fell back below the threshold after
having been saturated, and its last p_target and step. Memory is O(num_samples), never
O(num_samples x steps), and an update is a handful of scatter kernels with no host sync.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from satkit.validation import check_int

__all__ = ["SampleTracker"]

# "Never saturated": the identity of a min-reduction, so duplicates in a batch reduce correctly.
_NEVER = torch.iinfo(torch.int64).max


class SampleTracker:
    """Saturation onset, desaturation count and last observation of every training sample.

    One extra "discard" slot at position ``num_samples`` absorbs the updates of samples that
    must be ignored (padding, out-of-range indices, non-finite p_target), so that an update never
    needs a host-side filter (a boolean mask index would sync).

    Args:
        num_samples: the dataset size; indices lie in [0, num_samples).
        threshold: a sample is saturated when its clean p_target >= threshold.

    Example:
        >>> tr = SampleTracker(3, threshold=0.9)
        >>> tr.update(torch.tensor([0, 2]), torch.tensor([0.95, 0.5]), step=0)
        >>> tr.frame()["first_saturated_step"].tolist()
        [0, <NA>, <NA>]
    """

    def __init__(self, num_samples: int, threshold: float) -> None:
        check_int("num_samples", num_samples, minimum=1)
        self.num_samples = num_samples
        self.threshold = float(threshold)
        size = num_samples + 1
        self.first = torch.full((size,), _NEVER, dtype=torch.int64)
        self.desaturations = torch.zeros(size, dtype=torch.int64)
        self.last_p = torch.full((size,), float("nan"))
        self.last_seen = torch.full((size,), -1, dtype=torch.int64)
        self.saturated = torch.zeros(size, dtype=torch.bool)

    _FIELDS = ("first", "desaturations", "last_p", "last_seen", "saturated")

    def to(self, device: torch.device) -> SampleTracker:
        """Move the record to ``device`` (in place; returns self)."""
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name).to(device))
        return self

    def update(self, index: Tensor, p_target: Tensor, step: int) -> None:
        """Record one observation per entry of ``index`` (no host sync).

        Entries with an index outside [0, num_samples) (e.g. -1 padding) or a non-finite
        p_target are ignored. Within one call, a sample listed twice counts its desaturations
        additively and its onset as the earliest; its last values come from either entry.

        Args:
            index: dataset indices, (B,) int64.
            p_target: clean p_target of those samples, (B,).
            step: the step index of the observation.
        """
        if self.first.device != p_target.device:
            self.to(p_target.device)
        valid = (index >= 0) & (index < self.num_samples) & torch.isfinite(p_target)
        slot = torch.where(valid, index, self.num_samples)
        sat = (p_target >= self.threshold) & valid
        was = self.saturated[slot]
        self.desaturations.index_add_(0, slot, (was & ~sat & valid).to(torch.int64))
        onset = torch.where(sat, step, _NEVER)
        self.first.scatter_reduce_(0, slot, onset, reduce="amin")
        self.saturated[slot] = sat
        self.last_p[slot] = p_target.to(self.last_p.dtype)
        self.last_seen[slot] = step

    def frame(self) -> pd.DataFrame:
        """The ``samples`` table: one row per sample (a host sync).

        Returns:
            Columns ``index`` (int64), ``first_saturated_step`` (Int64, <NA> when never),
            ``desaturations`` (int64), ``last_p_target`` (float64, NaN when never seen),
            ``last_seen_step`` (Int64, <NA> when never seen).
        """
        n = self.num_samples
        host = {name: getattr(self, name)[:n].cpu().numpy()  # sync point
                for name in ("first", "desaturations", "last_p", "last_seen")}
        first = pd.array(host["first"], dtype="Int64")
        first[host["first"] == _NEVER] = pd.NA
        seen = pd.array(host["last_seen"], dtype="Int64")
        seen[host["last_seen"] < 0] = pd.NA
        return pd.DataFrame({
            "index": np.arange(n, dtype=np.int64),
            "first_saturated_step": first,
            "desaturations": host["desaturations"].astype(np.int64),
            "last_p_target": host["last_p"].astype(np.float64),
            "last_seen_step": seen,
        })

    def state_dict(self) -> dict[str, Any]:
        """The record's tensors (as CPU copies, for a checkpoint) and settings (a host sync)."""
        state: dict[str, Any] = {"num_samples": self.num_samples, "threshold": self.threshold}
        state.update({name: getattr(self, name).cpu().clone()  # sync point (checkpoint)
                      for name in self._FIELDS})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises ValueError if the dataset size differs."""
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"the checkpoint tracks {state['num_samples']} samples, "
                             f"this recorder {self.num_samples}")
        device = self.first.device
        for name in self._FIELDS:
            setattr(self, name, state[name].to(device).clone())
