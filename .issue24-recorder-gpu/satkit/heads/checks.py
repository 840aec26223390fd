"""Argument checks every classifier head shares (sizes at construction, inputs at forward).

Value checks (targets in range, finite features) read tensor values, which on an accelerator
is a host sync: they run on every CPU forward, on the first forward elsewhere, and never
inside a ``torch.compile`` graph.
"""

from __future__ import annotations

import torch
from torch import Tensor

from satkit.functional import check_target
from satkit.validation import check_int

__all__ = ["check_forward", "check_sizes"]


def check_sizes(in_features: object, num_classes: object) -> None:
    """Raise ValueError unless both are positive ints and ``num_classes >= 2``."""
    check_int("in_features", in_features, minimum=1)
    check_int("num_classes (a softmax classifier needs two)", num_classes, minimum=2)


def check_forward(features: object, target: object, *, in_features: int, num_classes: int,
                  first_call: bool) -> None:
    """Check a head's ``forward(features, target)`` arguments.

    Raises:
        ValueError: features not (N, in_features), target of the wrong shape or out of range,
            NaN/Inf features.
        TypeError: target not an int64 tensor.
    """
    if not isinstance(features, Tensor) or features.dim() != 2:
        got = tuple(features.shape) if isinstance(features, Tensor) else repr(features)
        raise ValueError(f"features must be a 2-D tensor (N, in_features), got {got}")
    if features.shape[1] != in_features:
        raise ValueError(f"features has {features.shape[1]} columns, expected "
                         f"in_features={in_features}")
    check_values = ((features.device.type == "cpu" or first_call)
                    and not torch.compiler.is_compiling())
    if target is not None:
        check_target(target, features.shape[0], num_classes, check_values=check_values)
    if check_values and not bool(torch.isfinite(features).all()):  # sync point (CPU/once)
        raise ValueError("features contain NaN or Inf")
