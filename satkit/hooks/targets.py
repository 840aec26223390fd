"""The step's targets and dataset indices: their shapes, their ranges, and supplying the
targets to the captures of a step.

Shapes and dtypes are checked at every step (free). Values need a read: out-of-range targets
are raised at once on the CPU (``torch._assert_async``, in C++) and counted on the device
elsewhere; out-of-range dataset indices are counted on every device, for all buffered steps at
once at the flush (two operations per flush rather than five per step), and reported there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from satkit.hooks.capture import Capture

__all__ = ["bad_targets", "check_index", "supply_targets"]


def supply_targets(caps: list[Capture], target: Tensor | None) -> None:
    """Give the step's ``target`` ((N,) or (N, T), micro-batches in forward order) to the
    captures that did not get theirs in forward.

    Raises:
        ValueError: no target where one is needed, or one of the wrong dtype or shape.
    """
    missing = [c for c in caps if c.target is None]
    if target is None:
        if missing:
            raise ValueError("step() needs `target`: the head did not receive one in "
                             "forward (e.g. an nn.Linear head)")
        return
    shapes = {c.sizes[1] for c in caps}
    n = sum(c.sizes[0] for c in caps)
    want = (n,) if shapes == {1} else (n, *shapes) if len(shapes) == 1 else None
    if (not isinstance(target, Tensor) or target.dtype not in (torch.int64, torch.int32)
            or (want is not None and tuple(target.shape) != want)):
        raise ValueError(
            f"target must be an integer tensor of shape {want or '(N, T)'} (the step's "
            f"samples, all micro-batches concatenated in forward order), got "
            f"{getattr(target, 'dtype', type(target).__name__)} "
            f"{tuple(getattr(target, 'shape', ()))}")
    if missing:
        parts = target.split([c.sizes[0] for c in caps])
        for cap, part in zip(caps, parts, strict=True):
            if cap.target is None:
                cap.set_target(part)


def bad_targets(caps: list[Capture]) -> Tensor | None:
    """The number of targets outside [0, C) (and not ignored), a device scalar; raises at once
    on the CPU. None when every target came through the head."""
    flags = [c.out_of_range for c in caps if c.out_of_range is not None]
    if not flags:
        return None  # every target came through the head, which checked it
    bad = torch.cat(flags)
    if bad.device.type == "cpu":  # sync point (CPU only; deferred to the flush elsewhere)
        try:
            torch._assert_async(~bad.any())
        except RuntimeError:
            c = caps[0].num_classes
            raise ValueError(f"target values must lie in [0, {c}) (the head's {c} classes) "
                             f"or equal ignore_index={caps[0].ignore_index}") from None
    return bad.sum()


def check_index(index: Tensor | None, n: int, num_samples: int | None) -> None:
    """Check the shape and dtype of the step's dataset ``index`` for ``n`` samples (its range
    is checked at the flush).

    Raises:
        ValueError: an index without ``num_samples``, or of the wrong shape or dtype.
    """
    if index is None:
        return
    if num_samples is None:
        raise ValueError("step() got `index` but the recorder has num_samples=None; pass "
                         "num_samples to record per-sample saturation")
    if (not isinstance(index, Tensor) or index.shape != (n,)
            or index.dtype not in (torch.int64, torch.int32)):
        raise ValueError(f"index must be an integer tensor of shape ({n},) (dataset indices "
                         f"of the step's samples), got {getattr(index, 'dtype', index)!r} "
                         f"{tuple(getattr(index, 'shape', ()))}")


def check_loss(loss: object) -> Tensor | float | None:
    """The loss given to ``step()``, detached: a scalar tensor, a number or None.

    Raises:
        TypeError: neither a tensor nor a number. ValueError: a tensor that is not a scalar.
    """
    if loss is not None and not isinstance(loss, (Tensor, int, float)):
        raise TypeError(f"loss must be a scalar tensor or a number, got {type(loss).__name__}")
    if isinstance(loss, Tensor) and loss.numel() != 1:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
    return loss.detach() if isinstance(loss, Tensor) and loss.requires_grad else loss


def weight_grad_norm(head: torch.nn.Module) -> Tensor | None:
    """||dL/dW|| of the head's weight, a device scalar (float32); None without a gradient."""
    if head.weight.grad is None:
        return None
    g = head.weight.grad.detach()
    return torch.linalg.vector_norm(g if g.dtype == torch.float32 else g.float())
