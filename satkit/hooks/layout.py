"""What a recorded step keeps on the device, and what its raw row holds: derived from the
declarations (:mod:`satkit.columns`) once per recorder.

* :data:`SLOTS`: the per-position vectors of the packed stack (each with the kernel that
  computes it, whether a non-finite value leaves the position out, whether an announced
  gradient scale multiplies it); a recorded quantity with a kernel of its own adds its slot
  after them (:attr:`Layout.packed`);
* :data:`STEP_SCALARS`: the per-step scalars beside them;
* :class:`Layout`: the raw per-step row the flush reduces the packed stack to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from satkit import columns
from satkit.hooks.buffer import to_device

__all__ = ["CHECKED", "LOGGED", "PACKED", "PRESENT", "SCALED", "SLOTS", "STEP_SCALARS",
           "Extras", "Layout", "Slot", "scalar_constants"]

#: Per-position values kept for every recorded step (quantiles at the flush; histograms).
LOGGED = ("p_target", "p_target_noisy", "noise")

#: Extra per-position kernels: (slot, function of the (P, C) training log-softmax -> (P,)),
#: from the recorded quantities that declare one (:attr:`satkit.columns.Quantity.kernel`).
Extras = tuple[tuple[str, Callable[[Tensor], Tensor]], ...]


class Slot(NamedTuple):
    """One per-position vector of the packed stack kept in the device buffer.

    Attributes:
        name: the vector (what :data:`satkit.columns.VALUES`' formulas read).
        kernel: what computes it: ``logits``, ``features`` (at once), ``grad`` (the
            kernels of :mod:`satkit.hooks.stats`),
            ``grad_features`` (||dL/dX||), ``mask``.
        checked: a non-finite value leaves the position out of every statistic (a gradient
            only when the step has that gradient).
        scaled: a gradient: multiplied by an announced gradient scale.
    """

    name: str
    kernel: str
    checked: bool = True
    scaled: bool = False


#: The packed stack's fixed slots, in order; the recorded quantities' own kernels follow
#: (:attr:`Layout.packed`).
SLOTS = (Slot("logp_train", "logits"), Slot("logp_clean", "logits"), Slot("f_y", "logits"),
         Slot("max_other", "logits", checked=False), Slot("noise", "logits"),
         Slot("feature_norm", "features"), Slot("weight_norm", "features"),
         Slot("dot", "features", checked=False), Slot("grad_target", "grad", False, True),
         Slot("grad_norm", "grad", True, True),
         Slot("grad_features_norm", "grad_features", True, True),
         Slot("valid", "mask", checked=False))
#: The slot names, in order.
PACKED = tuple(s.name for s in SLOTS)
#: The gradient slots an announced gradient scale multiplies.
SCALED = tuple(s.name for s in SLOTS if s.scaled)
#: The slots whose non-finite values leave a position out.
CHECKED = tuple(s.name for s in SLOTS if s.checked)
#: Per-step flags of :class:`satkit.hooks.buffer.StepMeta` that say a gradient slot is there.
PRESENT = {"grad_norm": "has_grad", "grad_features_norm": "has_grad_features"}


#: The per-step scalars kept beside the packed vectors
#: (:func:`satkit.hooks.reduce.pack_scalars`).
STEP_SCALARS = ("loss", "grad_weight_norm", "bad_target")

_CONSTANTS: dict[torch.device, Tensor] = {}


def scalar_constants(device: torch.device) -> Tensor:
    """NaN and 0 as 0-d float32 tensors on ``device``, made once (a step creates nothing)."""
    if device not in _CONSTANTS:
        constants = torch.zeros(2, device=device)
        constants[0] = math.nan
        _CONSTANTS[device] = constants
    return _CONSTANTS[device]


class Layout:
    """The raw per-step row kept in the device buffer, derived from the declarations.

    Columns: fixed scalars (``n``, ``n_finite``, ``loss_given``, ``loss_sum``,
    ``grad_weight_norm``, ``bad_index``, ``bad_target``), then ``sum_<value>`` of every value a
    ``mean`` quantity (or the default loss) needs, ``max_<value>`` of every ``max`` quantity and
    ``count_<value>_<i>`` (positions with value >= tau_i) of every ``fraction`` quantity.
    Kinds say how ranks combine: ``"sum"`` adds, ``"max"`` takes the NaN-ignoring maximum,
    ``"mean"`` averages a value every rank holds identically (||dL/dW|| of a DDP gradient).

    ``packed`` names the per-position slots a step keeps (:data:`PACKED`, then one per
    recorded quantity with a kernel of its own); ``extras`` are those kernels.

    Args:
        thresholds: the saturation thresholds tau, in (0, 1).
        opt_in: the opt-in quantities to record (:func:`satkit.columns.check_opt_in`).
    """

    def __init__(self, thresholds: Sequence[float], opt_in: Iterable[str] = ()) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self.opt_in = columns.check_opt_in(opt_in)
        self.quantities = recorded = columns.recorded(self.opt_in)
        self.extras: Extras = tuple((q.value, q.kernel)
                                    for q in columns.kernel_quantities(self.opt_in))
        self.packed = (*PACKED, *(name for name, _ in self.extras))

        def unique(kinds: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys(q.value for q in recorded if q.reduce in kinds))

        self.sums = tuple(dict.fromkeys((*unique(("mean",)), "ce")))
        self.maxima = unique(("max",))
        self.fractions = unique(("fraction",))
        cols = [("n", "sum"), ("n_finite", "sum"), ("loss_given", "max"), ("loss_sum", "sum"),
                ("grad_weight_norm", "mean"), ("bad_index", "sum"), ("bad_target", "sum")]
        cols += [(f"sum_{v}", "sum") for v in self.sums]
        cols += [(f"max_{v}", "max") for v in self.maxima]
        cols += [(f"count_{v}_{i}", "sum") for v in self.fractions
                 for i in range(len(self.thresholds))]
        self.names = [name for name, _ in cols]
        self.kinds = [kind for _, kind in cols]
        self.index = {name: i for i, name in enumerate(self.names)}
        self._taus: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def __len__(self) -> int:
        return len(self.names)

    def taus(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The thresholds as a (1, T, 1) tensor, created once per device and dtype."""
        key = (device, dtype)
        if key not in self._taus:
            self._taus[key] = to_device(self.thresholds, dtype, device)[None, :, None]
        return self._taus[key]
