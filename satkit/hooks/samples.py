"""Per-sample record of training dynamics, kept on the device, in both views.

**Individual saturation.** The paper's claim is that with plain softmax many samples saturate
*early*. To see it, each training sample gets, in each view of saturation (clean p_y, and p_y
under the training logits), the first step at which it was seen saturated, the step from which
on it stayed saturated (``settled``), and how often it fell back below the threshold after
having been saturated; plus its last p_y in each view and its last step. A sample is
*saturated* at a visit when its p_y >= tau; for sequence logits, when the share of its tokens
with p_y >= tau reaches ``level``.

**Training dynamics** (Data Maps, forgetting events, the area under the margin): per sample,
its number of visits; the mean (``confidence``) and population standard deviation
(``variability``) of its p_y over its visits, in both views; the mean of its clean margin
``f_y - max_{j != y} f_j`` (``aum``); the mean share of its positions predicted right
(``correctness``); the first step at which it was predicted right; and its *forgetting
events*, visits predicted wrong right after a visit predicted right. A visit is *right* when
the clean margin is > 0 (a tie counts as wrong; see :mod:`satkit.hooks.visits`); for a
sequence, when the share of its tokens predicted right reaches ``level``, and its visit
values are means over its tokens.

The means and variances are accumulated in a numerically stable way: at each flush, each
sample's observations in it are reduced to (count, mean, sum of squared deviations from that
mean), two passes, then merged into the stored moments with Chan et al.'s parallel update
(``delta = mean_b - mean_a``; ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``), so the sum of
squares never goes negative and nothing cancels. Accumulators are float64 (float32 on MPS,
which has no float64).

Memory is O(num_samples), never O(num_samples x steps): steps and counts are int32 (exact up to
2**31 - 1 steps), last probabilities float32, moments float64, so the record costs
:data:`BYTES_PER_SAMPLE` = 97 bytes per sample (970 MB on the device for 10 million samples).
Updates happen at the recorder's flush, for all buffered steps at once: a sort of the
observations by sample and a handful of scans and scatters, with no host sync and a cost that
grows with the observations of the flush, not with the data set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from satkit.hooks.buffer import to_device
from satkit.hooks.visits import VISIT_VALUES
from satkit.validation import check_int, check_real

__all__ = ["BYTES_PER_SAMPLE", "SampleTracker"]

# "Never" (saturated, settled, learned): the identity of a min-reduction.
_NEVER = torch.iinfo(torch.int32).max
_VIEWS = ("clean", "noisy")
_PER_VIEW = ("first", "settled", "desaturations", "last_p")
#: Moments of the visit values: (state key, row of VISIT_VALUES, with a sum of squares).
_MOMENTS = (("p_clean", "p_clean", True), ("p_noisy", "p_noisy", True),
            ("margin", "margin", False), ("correct", "correct", False))
#: Device memory of the record per sample: 4 int32/float32 fields per view and last_seen;
#: visits, first_learned, forgetting (int32); 6 float64 moments; last_right (bool).
BYTES_PER_SAMPLE = 4 * (len(_PER_VIEW) * len(_VIEWS) + 1) + 4 * 3 + 8 * 6 + 1
_ROW = {name: i for i, name in enumerate(VISIT_VALUES)}


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class SampleTracker:
    """Saturation onset, settling, desaturations, training dynamics and last observation of
    every sample.

    One extra "discard" slot at position ``num_samples`` absorbs the observations that must be
    ignored (padding, out-of-range indices, non-finite p_y), so that an update never needs a
    host-side filter (a boolean mask index would sync).

    Args:
        num_samples: the dataset size; indices lie in [0, num_samples).
        threshold: the saturation threshold tau on p_y.
        level: a sample is saturated at a visit when the share of its positions (1 for a
            classifier, its tokens for sequence logits) with p_y >= tau is at least ``level``,
            and predicted right when the share of its positions predicted right is.

    Example:
        >>> tr = SampleTracker(3, threshold=0.9)
        >>> visit = torch.tensor([[[0.95, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 0.0],
        ...                        [2.0, -1.0], [1.0, 0.0]]])  # (1 step, VISIT_VALUES, 2)
        >>> tr.update(torch.tensor([[0, 2]]), visit, [0])
        >>> tr.frame()[["first_saturated_step", "visits", "aum"]].values.tolist()
        [[0, 1, 2.0], [<NA>, 0, nan], [<NA>, 1, -1.0]]
    """

    def __init__(self, num_samples: int, threshold: float, level: float = 0.5) -> None:
        self.num_samples = check_int("num_samples", num_samples, minimum=1)
        self.threshold = check_real("threshold", threshold, lo=0.0, hi=1.0, lo_open=True,
                                    hi_open=True)
        self.level = check_real("level", level, lo=0.0, hi=1.0, lo_open=True)
        size = num_samples + 1
        acc = _accumulator_dtype(torch.device("cpu"))
        self.state: dict[str, Tensor] = {"last_seen": torch.full((size,), -1, dtype=torch.int32)}
        for view in _VIEWS:
            self.state[f"first_{view}"] = torch.full((size,), _NEVER, dtype=torch.int32)
            self.state[f"settled_{view}"] = torch.full((size,), _NEVER, dtype=torch.int32)
            self.state[f"desaturations_{view}"] = torch.zeros(size, dtype=torch.int32)
            self.state[f"last_p_{view}"] = torch.full((size,), float("nan"))
        self.state["visits"] = torch.zeros(size, dtype=torch.int32)
        self.state["first_learned"] = torch.full((size,), _NEVER, dtype=torch.int32)
        self.state["forgetting"] = torch.zeros(size, dtype=torch.int32)
        self.state["last_right"] = torch.zeros(size, dtype=torch.bool)
        for key, _, squares in _MOMENTS:
            self.state[f"mean_{key}"] = torch.zeros(size, dtype=acc)
            if squares:
                self.state[f"m2_{key}"] = torch.zeros(size, dtype=acc)

    @property
    def nbytes(self) -> int:
        """Device memory held by the record, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.state.values())

    @property
    def device(self) -> torch.device:
        return self.state["last_seen"].device

    def to(self, device: torch.device) -> SampleTracker:
        """Move the record to ``device`` (in place; returns self). The moments become float32
        on MPS (no float64 there)."""
        acc = _accumulator_dtype(torch.device(device))
        self.state = {k: v.to(device, acc if k.startswith(("mean_", "m2_")) else v.dtype)
                      for k, v in self.state.items()}
        return self

    def update(self, index: Tensor, per_sample: Tensor, steps: list[int]) -> None:
        """Record the observations of several steps, in step order (no host sync).

        Args:
            index: dataset indices, (R, B) int64; entries outside [0, num_samples) (e.g. -1
                padding) are ignored.
            per_sample: (R, len(VISIT_VALUES), B) float: each observation's visit values
                (:func:`satkit.hooks.visits.visit_values`); a NaN p_y ignores the observation
                in that view, a NaN clean p_y ignores it as a visit.
            steps: the step of each of the R rows.

        Within one step, a sample listed twice is observed twice, in batch order.
        """
        device = per_sample.device
        if self.device != device:
            self.to(device)
        r, b = index.shape
        if r == 0 or b == 0:
            return
        step = to_device(steps, torch.int32, device)[:, None].expand(r, b).reshape(-1)
        index = index.reshape(-1)
        in_range = (index >= 0) & (index < self.num_samples)
        seen = in_range & torch.isfinite(per_sample[:, 0]).reshape(-1)
        self._last_seen(index, seen, step)
        for view in _VIEWS:
            p = per_sample[:, _ROW[f"p_{view}"]].reshape(-1)
            share = per_sample[:, _ROW[f"share_{view}"]].reshape(-1)
            valid = in_range & torch.isfinite(p)
            self._update_view(view, index, valid, p, share >= self.level, step)
        self._update_dynamics(index, seen, per_sample, step)

    def _last_seen(self, index: Tensor, valid: Tensor, step: Tensor) -> None:
        slot = torch.where(valid, index, self.num_samples)
        self.state["last_seen"].scatter_reduce_(0, slot, step, reduce="amax")

    def _sorted(self, index: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Observations grouped by sample, each group in chronological order (stable sort):
        the sorted slots, the order, and which are first and last of their group."""
        slot = torch.where(valid, index, self.num_samples)
        slot, order = torch.sort(slot, stable=True)
        first_in_group = torch.ones(slot.shape[0], dtype=torch.bool, device=slot.device)
        first_in_group[1:] = slot[1:] != slot[:-1]
        last_in_group = torch.ones_like(first_in_group)
        last_in_group[:-1] = first_in_group[1:]
        return slot, order, first_in_group, last_in_group

    def _update_view(self, view: str, index: Tensor, valid: Tensor, p: Tensor, sat: Tensor,
                     step: Tensor) -> None:
        st, n = self.state, self.num_samples
        slot, order, first_in_group, last_in_group = self._sorted(index, valid)
        sat, step, p = sat[order], step[order], p[order]
        m = slot.shape[0]
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

    def _update_dynamics(self, index: Tensor, valid: Tensor, per_sample: Tensor,
                         step: Tensor) -> None:
        """Visits, moments (Chan's merge), first learned step and forgetting events."""
        st, n = self.state, self.num_samples
        slot, order, first_in_group, last_in_group = self._sorted(index, valid)
        step = step[order]
        rows = {name: per_sample[:, i].reshape(-1)[order] for name, i in _ROW.items()}
        # Forgetting: right at the previous visit (stored, or the one before in this flush)
        # and wrong at this one.
        right = rows["correct"] >= self.level
        prev_right = torch.where(first_in_group, st["last_right"][slot], torch.roll(right, 1))
        st["forgetting"].index_add_(0, slot, (prev_right & ~right).to(torch.int32))
        st["first_learned"].scatter_reduce_(0, slot, torch.where(right, step, _NEVER),
                                            reduce="amin")
        last_slot = torch.where(last_in_group, slot, n)
        st["last_right"][last_slot] = torch.where(last_in_group, right,
                                                  st["last_right"][last_slot])
        # The flush's observations per sample: groups numbered 0..G-1 in sorted order, in
        # buffers of the observation count (a shape the host knows: no sync); unused groups
        # write to the discard slot.
        m = slot.shape[0]
        acc = st["mean_p_clean"].dtype
        group = torch.cumsum(first_in_group.to(torch.int64), dim=0) - 1
        group_slot = torch.full((m,), n, dtype=slot.dtype, device=slot.device)
        group_slot.scatter_(0, group, slot)
        count_b = torch.zeros(m, dtype=acc, device=slot.device).index_add_(
            0, group, torch.ones(m, dtype=acc, device=slot.device))
        count_a = st["visits"][group_slot].to(acc)
        total = count_a + count_b
        for key, row, squares in _MOMENTS:
            x = rows[row].to(acc)
            mean_b = torch.zeros(m, dtype=acc, device=slot.device).index_add_(0, group, x)
            mean_b = mean_b / count_b  # NaN for unused groups (discard slot)
            mean_a = st[f"mean_{key}"][group_slot]
            delta = mean_b - mean_a
            st[f"mean_{key}"][group_slot] = mean_a + delta * (count_b / total)
            if squares:
                m2_b = torch.zeros(m, dtype=acc, device=slot.device).index_add_(
                    0, group, (x - mean_b[group]) ** 2)
                st[f"m2_{key}"][group_slot] = (st[f"m2_{key}"][group_slot] + m2_b
                                               + delta * delta * (count_a * count_b / total))
        st["visits"][group_slot] = total.to(torch.int32)

    def frame(self) -> pd.DataFrame:
        """The ``samples`` table: one row per sample (a host sync).

        Returns:
            The columns of :data:`satkit.schema.SAMPLE_COLUMNS`, with their dtypes.
        """
        n = self.num_samples
        host = {k: v[:n].cpu().numpy() for k, v in self.state.items()}  # sync point
        return frame_from_host(host)

    def state_dict(self) -> dict[str, Any]:
        """The record's tensors (as CPU copies, for a checkpoint) and settings (a host sync)."""
        state: dict[str, Any] = {"num_samples": self.num_samples, "threshold": self.threshold,
                                 "level": self.level, "format": 3}
        state.update({k: v.cpu().clone() for k, v in self.state.items()})  # sync point
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`.

        Raises:
            ValueError: the dataset size differs, or the checkpoint's record was written by an
                older satkit (without the training-dynamics columns: start the run afresh).
        """
        if state.get("format") != 3:
            raise ValueError("the checkpoint's per-sample record was written by an older satkit "
                             "(without visits, confidence, forgetting and aum); it cannot be "
                             "continued: start the run afresh")
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"the checkpoint tracks {state['num_samples']} samples, "
                             f"this recorder {self.num_samples}")
        device = self.device
        self.state = {k: state[k].to(device).clone() for k in self.state}
        self.to(device)  # the accumulators' dtype of this device


def frame_from_host(host: dict[str, np.ndarray]) -> pd.DataFrame:
    """The samples table from the record's state as host arrays (without the discard slot).

    ``confidence`` and ``variability`` are the mean and the population standard deviation
    (``sqrt(M2 / visits)``; 0 for one visit) of p_y; NaN for a sample never seen.
    """
    n = len(host["last_seen"])

    def steps(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(values.astype(np.int64), missing)

    visits = host["visits"].astype(np.int64)
    unseen = visits == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        def mean(key: str) -> np.ndarray:
            return np.where(unseen, np.nan, host[f"mean_{key}"].astype(np.float64))

        def std(key: str) -> np.ndarray:
            m2 = np.maximum(host[f"m2_{key}"].astype(np.float64), 0.0)
            return np.where(unseen, np.nan, np.sqrt(m2 / np.maximum(visits, 1)))

        frame: dict[str, Any] = {"index": np.arange(n, dtype=np.int64)}
        for view in _VIEWS:
            suffix = "" if view == "clean" else "_noisy"
            first, settled = host[f"first_{view}"], host[f"settled_{view}"]
            frame[f"first_saturated_step{suffix}"] = steps(first, first == _NEVER)
            frame[f"settled_step{suffix}"] = steps(settled, settled == _NEVER)
            frame[f"desaturations{suffix}"] = host[f"desaturations_{view}"].astype(np.int64)
            frame[f"last_p_target{suffix}"] = host[f"last_p_{view}"].astype(np.float64)
            frame[f"confidence{suffix}"] = mean(f"p_{view}")
            frame[f"variability{suffix}"] = std(f"p_{view}")
        seen = host["last_seen"]
        frame["last_seen_step"] = steps(seen, seen < 0)
        frame["visits"] = visits
        frame["correctness"] = mean("correct")
        frame["forgetting_events"] = host["forgetting"].astype(np.int64)
        learned = host["first_learned"]
        frame["first_learned_step"] = steps(learned, learned == _NEVER)
        frame["aum"] = mean("margin")
    from satkit.schema import SAMPLE_COLUMNS

    return pd.DataFrame({c: frame[c] for c in SAMPLE_COLUMNS})
