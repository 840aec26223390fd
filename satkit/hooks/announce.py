"""What a caller may tell the recorder ahead of a step: the target of the head's next
training forward (:meth:`~Announcements.set_target`) and the loss of the forwards waiting for
it (:meth:`~Announcements.set_loss`). Both optional; what a language model's head needs to be
recorded without keeping anything of size (tokens x vocabulary)."""

from __future__ import annotations

import torch
from torch import Tensor

from satkit.hooks import lossgraph
from satkit.hooks.capture import Capture
from satkit.validation import check_bool, check_real

__all__ = ["Announcements"]


class Announcements:
    """The announcing methods of :class:`satkit.hooks.SaturationRecorder` (a mixin: the
    recorder holds ``_target``, the announcement for its next forward, ``_captures``, the
    step's captures, and ``_reused``)."""

    _target: tuple[Tensor, Tensor | float | None, bool] | None
    _captures: list[Capture]
    _reused: int

    def set_target(self, target: Tensor, *, grad_scale: Tensor | float | None = None,
                   loss_follows: bool = False) -> None:
        """Announce the target of the head's next training forward ((N,) or (N, T) int64).

        Optional. With it, the recorder reduces the logits and their gradient as they come,
        keeping nothing of size (positions x classes) until :meth:`step` (what a language
        model head needs); a satkit head receives its target in forward and needs no call.

        Args:
            target: the forward's targets, ``ignore_index`` where a position has none.
            grad_scale: what turns this forward's logits gradient into per-position gradients
                (the gradient of each position's own loss), when the step's loss is not the
                mean over the step's positions; e.g. the ``num_items_in_batch`` a Hugging Face
                model divided its summed loss by. Default: the step's number of positions.
            loss_follows: the caller will pass this forward's loss to :meth:`set_loss` before
                backward; a large forward's logits (positions x classes > 32,768) then wait
                for it, to be read from the loss's own log-softmax (see :meth:`set_loss`).
        """
        if not isinstance(target, Tensor) or target.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"target must be an integer tensor, got "
                             f"{getattr(target, 'dtype', type(target).__name__)}")
        if grad_scale is not None and not isinstance(grad_scale, Tensor):
            grad_scale = check_real("grad_scale", grad_scale, lo=0.0, lo_open=True)
        self._target = (target, grad_scale, check_bool("loss_follows", loss_follows))

    def set_loss(self, loss: Tensor | None) -> None:
        """Give the loss of the head's training forward(s) announced with ``loss_follows``,
        before its ``backward()``.

        A cross-entropy loss has computed ``log_softmax`` of the logits already and keeps it
        for backward; when that tensor is provably the log-softmax of the head's logits (rules
        in :mod:`satkit.hooks.lossgraph`) the recorder reads log p_y and the largest other
        logit there, and computes no log-softmax of its own: the one costly operation of a
        recorded language-model step. Otherwise (a temperature, sliced logits, a loss without
        a log-softmax, None) it computes its own at once. The values are the same either way
        (:attr:`reused_log_softmax` counts the forwards that took the loss's). No host sync.

        Raises:
            TypeError: ``loss`` is neither a tensor nor None.
        """
        if loss is not None and not isinstance(loss, Tensor):
            raise TypeError(f"loss must be a tensor or None, got {type(loss).__name__}")
        waiting = [c for c in self._captures if c.awaits_loss]
        if not waiting:
            return
        found = lossgraph.find_log_softmax(loss, [(c.source, c.logits) for c in waiting]) \
            if loss is not None else [None] * len(waiting)
        for cap, logp in zip(waiting, found, strict=True):
            cap.reduce_logits(logp)
            self._reused += cap.reused_log_softmax

    @property
    def reused_log_softmax(self) -> int:
        """Training forwards so far whose log p_y was read from the loss's own log-softmax
        (:meth:`set_loss`) rather than computed by the recorder."""
        return self._reused

