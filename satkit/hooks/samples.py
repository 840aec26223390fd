"""Per-sample "individual saturation" record, kept on the device, in both views.

The paper's claim is that with plain softmax many samples saturate *early*. To see it, each
training sample gets, in each view of saturation (clean p_y, and p_y under the training
logits), the first step at which it was seen saturated, the step from which on it stayed
saturated (``settled``), and how often it fell back below the threshold after having been
saturated; plus its last p_y in each view and its last step. A sample is *saturated* at a visit
when its p_y >= tau; for sequence logits, when the share of its tokens with p_y >= tau reaches
``level``.

Memory is O(num_samples), never O(num_samples x steps), in compact dtypes: steps and counts
are int32 (exact up to 2**31 - 1 steps), probabilities float32, so the record costs
:data:`BYTES_PER_SAMPLE` = 36 bytes per sample (360 MB on the device for 10 million samples).
Updates happen at the recorder's flush, for all buffered steps at once: a sort of the
observations by sample and a handful of scans and scatters, with no host sync and a cost that
does not grow with the data set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from satkit.validation import check_int, check_real

__all__ = ["BYTES_PER_SAMPLE", "SampleTracker"]

# "Never" (saturated, settled): the identity of a min-reduction.
_NEVER = torch.iinfo(torch.int32).max
_VIEWS = ("clean", "noisy")
_PER_VIEW = ("first", "settled", "desaturations", "last_p")
#: Device memory of the record per sample: 4 int32/float32 fields per view, plus last_seen.
BYTES_PER_SAMPLE = 4 * (len(_PER_VIEW) * len(_VIEWS) + 1)


class SampleTracker:
    """Saturation onset, settling, desaturations and last observation of every sample.

    One extra "discard" slot at position ``num_samples`` absorbs the observations that must be
    ignored (padding, out-of-range indices, non-finite p_y), so that an update never needs a
    host-side filter (a boolean mask index would sync).

    Args:
        num_samples: the dataset size; indices lie in [0, num_samples).
        threshold: the saturation threshold tau on p_y.
        level: a sample is saturated at a visit when the share of its positions (1 for a
            classifier, its tokens for sequence logits) with p_y >= tau is at least ``level``.

    Example:
        >>> tr = SampleTracker(3, threshold=0.9)
        >>> tr.update(torch.tensor([[0, 2]]), torch.tensor([[[0.95, 0.5], [0.5, 0.5],
        ...                                                  [1.0, 0.0], [0.0, 0.0]]]), [0])
        >>> tr.frame()["first_saturated_step"].tolist()
        [0, <NA>, <NA>]
    """

    def __init__(self, num_samples: int, threshold: float, level: float = 0.5) -> None:
        self.num_samples = check_int("num_samples", num_samples, minimum=1)
        self.threshold = check_real("threshold", threshold, lo=0.0, hi=1.0, lo_open=True,
                                    hi_open=True)
        self.level = check_real("level", level, lo=0.0, hi=1.0, lo_open=True)
        size = num_samples + 1
        self.state: dict[str, Tensor] = {"last_seen": torch.full((size,), -1, dtype=torch.int32)}
        for view in _VIEWS:
            self.state[f"first_{view}"] = torch.full((size,), _NEVER, dtype=torch.int32)
            self.state[f"settled_{view}"] = torch.full((size,), _NEVER, dtype=torch.int32)
            self.state[f"desaturations_{view}"] = torch.zeros(size, dtype=torch.int32)
            self.state[f"last_p_{view}"] = torch.full((size,), float("nan"))

    @property
    def nbytes(self) -> int:
        """Device memory held by the record, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.state.values())

    @property
    def device(self) -> torch.device:
        return self.state["last_seen"].device

    def to(self, device: torch.device) -> SampleTracker:
        """Move the record to ``device`` (in place; returns self)."""
        self.state = {k: v.to(device) for k, v in self.state.items()}
        return self

    def update(self, index: Tensor, per_sample: Tensor, steps: list[int]) -> None:
        """Record the observations of several steps, in step order (no host sync).

        Args:
            index: dataset indices, (R, B) int64; entries outside [0, num_samples) (e.g. -1
                padding) are ignored.
            per_sample: (R, 4, B) float: each observation's mean clean p_y, mean noisy p_y,
                and the share of its positions with p_y >= tau in each view
                (:func:`satkit.hooks.stats.reduce_rows`); a NaN p_y ignores the observation
                in that view.
            steps: the step of each of the R rows.

        Within one step, a sample listed twice is observed twice, in batch order.
        """
        device = per_sample.device
        if self.device != device:
            self.to(device)
        r, b = index.shape
        if r == 0 or b == 0:
            return
        step = torch.tensor(steps, dtype=torch.int32).to(device)[:, None].expand(r, b).reshape(-1)
        index = index.reshape(-1)
        in_range = (index >= 0) & (index < self.num_samples)
        seen = in_range & torch.isfinite(per_sample[:, 0]).reshape(-1)
        self._last_seen(index, seen, step)
        for v, view in enumerate(_VIEWS):
            p = per_sample[:, v].reshape(-1)
            share = per_sample[:, 2 + v].reshape(-1)
            valid = in_range & torch.isfinite(p)
            self._update_view(view, index, valid, p, share >= self.level, step)

    def _last_seen(self, index: Tensor, valid: Tensor, step: Tensor) -> None:
        slot = torch.where(valid, index, self.num_samples)
        self.state["last_seen"].scatter_reduce_(0, slot, step, reduce="amax")

    def _update_view(self, view: str, index: Tensor, valid: Tensor, p: Tensor, sat: Tensor,
                     step: Tensor) -> None:
        st, n = self.state, self.num_samples
        slot = torch.where(valid, index, n)
        # Observations grouped by sample, each group in chronological order (stable sort).
        slot, order = torch.sort(slot, stable=True)
        sat, step, p = sat[order], step[order], p[order]
        m = slot.shape[0]
        first_in_group = torch.ones(m, dtype=torch.bool, device=slot.device)
        first_in_group[1:] = slot[1:] != slot[:-1]
        last_in_group = torch.ones_like(first_in_group)
        last_in_group[:-1] = first_in_group[1:]
        settled = st[f"settled_{view}"]
        stored_sat = settled[slot] != _NEVER  # saturated at the previous (stored) visit
        prev_sat = torch.where(first_in_group, stored_sat, torch.roll(sat, 1))
        st[f"desaturations_{view}"].index_add_(0, slot, (prev_sat & ~sat).to(torch.int32))
        onset = torch.where(sat, step, _NEVER)
        st[f"first_{view}"].scatter_reduce_(0, slot, onset, reduce="amin")
        # The saturated streak each observation belongs to starts at the last "break" (a
        # change of state, or the group's first observation) at or before it; a streak that
        # continues the stored one keeps the stored settled step.
        breaks = first_in_group | (sat != prev_sat)
        start_value = torch.where(sat, torch.where(prev_sat, settled[slot], step), _NEVER)
        position = torch.arange(m, device=slot.device)
        start = torch.cummax(torch.where(breaks, position, 0), dim=0).values
        # One observation per sample is the last: unique slots, so plain index writes.
        last_slot = torch.where(last_in_group, slot, n)
        settled[last_slot] = torch.where(last_in_group, start_value[start], settled[last_slot])
        last_p = st[f"last_p_{view}"]
        last_p[last_slot] = torch.where(last_in_group, p.to(last_p.dtype), last_p[last_slot])

    def frame(self) -> pd.DataFrame:
        """The ``samples`` table: one row per sample (a host sync).

        Returns:
            The columns of :data:`satkit.schema.SAMPLE_COLUMNS`, with their dtypes.
        """
        n = self.num_samples
        host = {k: v[:n].cpu().numpy() for k, v in self.state.items()}  # sync point

        def steps(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
            return pd.arrays.IntegerArray(values.astype(np.int64), missing)

        frame = {"index": np.arange(n, dtype=np.int64)}
        for view in _VIEWS:
            suffix = "" if view == "clean" else "_noisy"
            first, settled = host[f"first_{view}"], host[f"settled_{view}"]
            frame[f"first_saturated_step{suffix}"] = steps(first, first == _NEVER)
            frame[f"settled_step{suffix}"] = steps(settled, settled == _NEVER)
            frame[f"desaturations{suffix}"] = host[f"desaturations_{view}"].astype(np.int64)
            frame[f"last_p_target{suffix}"] = host[f"last_p_{view}"].astype(np.float64)
        seen = host["last_seen"]
        frame["last_seen_step"] = steps(seen, seen < 0)
        from satkit.schema import SAMPLE_COLUMNS

        return pd.DataFrame({c: frame[c] for c in SAMPLE_COLUMNS})

    def state_dict(self) -> dict[str, Any]:
        """The record's tensors (as CPU copies, for a checkpoint) and settings (a host sync)."""
        state: dict[str, Any] = {"num_samples": self.num_samples, "threshold": self.threshold,
                                 "level": self.level, "format": 2}
        state.update({k: v.cpu().clone() for k, v in self.state.items()})  # sync point
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`.

        Raises:
            ValueError: the dataset size differs, or the checkpoint's record was written by an
                older satkit (one view only: start the run afresh).
        """
        if state.get("format") != 2:
            raise ValueError("the checkpoint's per-sample record was written by an older satkit "
                             "(clean view only); it cannot be continued with both views")
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"the checkpoint tracks {state['num_samples']} samples, "
                             f"this recorder {self.num_samples}")
        device = self.device
        self.state = {k: state[k].to(device).clone() for k in self.state}
