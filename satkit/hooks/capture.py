"""Hook plumbing: what a training forward of the head leaves for the recorder.

A forward hook on the head turns every *training* forward (module in training mode, autograd
on, output requiring grad) into a :class:`Capture`, and puts tensor hooks on the logits and on
the features to catch their gradients in ``backward``. Logits may be (N, C) or (N, T, C)
(sequence models); they are seen as P = N*T positions.

Two ways to a step's numbers, chosen by size:

* every capture reduces its (P, D) features to (P,) vectors (||X||, ||W_y||, W_y.X:
  :func:`~satkit.hooks.stats.feature_values`) as soon as its target is known, while W is
  this step's, and its features' gradient to its norms at ``step()``;
* a *small* capture (``P * C <= DEFER_LIMIT``: a classifier's batch) keeps its logits and
  their gradient as references (no copies), reduced at the flush together with every other
  buffered step (:func:`satkit.hooks.reduce.fill_rows`): a handful of operations per step
  instead of two dozen, which is what keeps the recorder cheap on a small step;
* a *large* one (a language model's tokens x vocabulary) reduces them to (P,) vectors as soon
  as its target is known (:func:`~satkit.hooks.stats.logit_values`,
  :func:`~satkit.hooks.stats.gradient_values`); or, when the caller said the loss will follow
  (``await_loss``), when the loss arrives before backward, from the log-softmax the loss
  computed (:mod:`satkit.hooks.lossgraph`, :meth:`Capture.reduce_logits`): no second
  log-softmax. If the loss never arrives, at the logits' gradient, from the logits.

Cost for a language model's head: the recorder keeps nothing of size (tokens x vocabulary)
when the target is known at forward time (``SaturationRecorder.set_target``, which the
framework callbacks use). Given the loss before backward as well (``set_loss``; the callbacks
do), it reads log p_y from the cross-entropy's own log-softmax, and a recorded step costs one
max over those log-probabilities and one norm over the logits' gradient (two reads of a tokens
x vocabulary tensor, no exponentials, no temporary of that size): at vocabulary 32,000 (8 x
128 tokens, width 256, 2 CPU cores) 1.05x the bare head step, no extra peak memory. Without
the loss it computes a log-softmax of its own (one temporary of that size, and 1.18x).
``benchmarks/bench_callbacks.py --section lm-head`` measures both; ``every=10`` divides the
cost by ten. Without an announced target an ``nn.Linear`` head's logits and their gradient are
kept (references, no copies) until ``step()``.

The target is known in the forward hook when the head receives it (a satkit head) or the
caller announced it (``SaturationRecorder.set_target``), so nothing of size (P x C) or (P x D)
is kept; otherwise at ``step()``, which supplies it. Either way a capture ends as one
:class:`~satkit.hooks.reduce.Record` (:meth:`Capture.record`), which
:func:`satkit.hooks.reduce.reduce` packs.

What the head is decides through the head protocol (:class:`satkit.heads.SaturationHead`):
a head implementing it gives its noise (``last_noise``) and its clean logits
(``clean_logits``, taken in the forward hook, while the head's state is this forward's; not
when its optional ``applies(target)`` says nothing was changed); one that declares
``validates_target = True`` has refused any target outside [0, C), so the recorder does not
check again. Any other Linear-like module's logits are clean (or, with a ``last_noise``
tensor, its (N, C) logits lowered on the target column only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from satkit.heads.base import is_saturation_head
from satkit.hooks import stats
from satkit.hooks.reduce import Record, logit_vectors

__all__ = ["DEFER_LIMIT", "HEAD_CONTRACT", "Capture", "capture_forward", "check_head"]

#: A capture whose logits have at most this many values (positions x classes) is reduced at
#: the flush with the other buffered steps rather than at once (a full buffer then holds at
#: most ``flush_every`` x 2 x 128 KiB of float32 logits and gradients).
DEFER_LIMIT = 1 << 15


_CONSTANTS: dict[tuple[int, torch.device, torch.dtype, int], Tensor] = {}


def _constant(positions: int, device: torch.device, dtype: torch.dtype, value: int) -> Tensor:
    """A (P,) tensor filled with ``value``, made once per size, device and dtype and only ever
    read (all-valid masks, zero noise): a step allocates nothing for them."""
    key = (positions, device, dtype, value)
    if key not in _CONSTANTS:
        if len(_CONSTANTS) >= 32:
            _CONSTANTS.clear()
        _CONSTANTS[key] = torch.full((positions,), value, dtype=dtype, device=device)
    return _CONSTANTS[key]


def _flat(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``t`` detached, reshaped to ``shape`` (without a reshape when it has it already)."""
    t = t.detach() if t.requires_grad else t
    return t if t.shape == shape else t.reshape(shape)


#: What a head must be, for the messages.
HEAD_CONTRACT = ("a Linear-like classifier head: an nn.Module called as head(features (N, D) or "
                 "(N, T, D), ...) -> logits (N, C) or (N, T, C), with a 2-D `weight` of shape "
                 "(C, D) whose row y is class y's vector W_y, e.g. satkit.NoisySoftmax or "
                 "nn.Linear")


def _not_a_head(head: nn.Module) -> str | None:
    """Why a module with a 2-D weight is still not a head (None when nothing says so)."""
    name = type(head).__name__
    if isinstance(head, (nn.Embedding, nn.EmbeddingBag)):
        return (f"an {name} looks rows of its weight up by index: its input is token ids, "
                "not features. For a tied output layer, record the nn.Linear that shares "
                "the embedding's weight (e.g. the model's lm_head)")
    if any(c.__name__ == "Conv1D" and c.__module__.startswith("transformers")
           for c in type(head).__mro__):
        return ("transformers' Conv1D stores its weight transposed, as (in_features, "
                "out_features): its rows are not class vectors. Record an nn.Linear head (e.g. "
                "GPT-2's lm_head), or make one: nn.Linear(conv.nx, conv.nf) with weight "
                "conv.weight.T")
    declared = (getattr(head, "out_features", None), getattr(head, "in_features", None))
    if all(isinstance(n, int) for n in declared) and tuple(head.weight.shape) != declared:
        return (f"its weight has shape {tuple(head.weight.shape)}, but it declares "
                f"out_features={declared[0]}, in_features={declared[1]}: a head's weight is "
                "(out_features, in_features)")
    return None


def check_head(head: object) -> nn.Module:
    """Return ``head`` if it is Linear-like: an ``nn.Module`` with a 2-D ``weight`` (C, D)
    whose rows are the class vectors (:data:`HEAD_CONTRACT`).

    Refused at once, rather than at the first step: modules without such a weight, embeddings
    (``nn.Embedding``, ``nn.EmbeddingBag``: their input is indices), transformers' ``Conv1D``
    (its weight is stored transposed, (D, C)), and modules whose ``in_features`` /
    ``out_features`` disagree with their weight's shape.

    Raises:
        TypeError: otherwise, saying what a head must be and why this one is not.
    """
    weight = getattr(head, "weight", None)
    if not isinstance(head, nn.Module) or not isinstance(weight, Tensor) or weight.dim() != 2:
        raise TypeError(
            f"SaturationRecorder needs {HEAD_CONTRACT}; got {type(head).__name__}"
            + ("" if weight is None else f" with weight of shape {tuple(weight.shape)}"))
    if (why := _not_a_head(head)) is not None:
        raise TypeError(f"SaturationRecorder needs {HEAD_CONTRACT}; got {head!r}: {why}")
    return head


class Capture:
    """One training forward of the head (a micro-batch) and its gradients.

    Attributes:
        sizes: (N, T): samples and positions per sample (T = 1 for (N, C) logits).
        target: (P,) int64 once known, else None.
        values: the per-position values (forward, then gradient) once computed.
    """

    def __init__(self, logits: Tensor, clean: Tensor | None, noise: Tensor, features: Tensor,
                 weight: Tensor, target: Tensor | None, ignore_index: int,
                 kernels: stats.Kernels, checked: bool = False,
                 clean_from_noise: bool = False, await_loss: bool = False) -> None:
        n = logits.shape[0]
        self.sizes = (n, logits.shape[1] if logits.dim() == 3 else 1)
        c = logits.shape[-1]
        p = self.sizes[0] * self.sizes[1]
        self.ignore_index = ignore_index
        self.kernels = kernels
        self.checked = checked  # the target came through a head that validated it
        # the clean logits are the training ones with `noise` added back on the target column
        # (satkit.functional.clean_logits), computed when the logits are reduced (for a small
        # capture: at the flush, with the other buffered steps)
        self.clean_from_noise = clean_from_noise
        self.num_classes = c
        self.out_of_range: Tensor | None = None
        self._noise = _flat(noise, (p,))
        self._pending: tuple[Any, ...] | None = (
            _flat(logits, (p, c)), None if clean is None else _flat(clean, (p, c)),
            self._noise, _flat(features, (p, features.shape[-1])), weight)
        self.device = logits.device
        self.deferred = p * c <= DEFER_LIMIT
        # A large capture of a plain head may wait for its loss (reduce_logits); `source` is
        # the logits' autograd node, to find them in the loss's graph.
        self.awaits_loss = (await_loss and not self.deferred and clean is None
                            and not clean_from_noise and logits.grad_fn is not None)
        self.source = logits.grad_fn if self.awaits_loss else None
        self.reused_log_softmax = False
        self._leaf = features.is_leaf
        self._valid: Tensor | None = None
        self._rows: Tensor | None = None
        self.target: Tensor | None = None
        self.values: dict[str, Tensor] = {}
        self._grad: Tensor | None = None
        self._grad_features: Tensor | None = None
        self.backward_passes = 0
        self.grad_scale: Tensor | float | None = None  # announced with the target, if any
        self.handles: list[RemovableHandle] = []
        if target is not None:
            self.set_target(target)

    @property
    def positions(self) -> int:
        return self.sizes[0] * self.sizes[1]

    def set_target(self, target: Tensor) -> None:
        """Supply the target ((N,) or (N, T)) and reduce what can be (no host sync): the
        features at once (W is this step's; a small capture keeps no (P, D) tensor), the
        logits too unless the capture is small (they wait for the flush then)."""
        target = _flat(target, (self.positions,))
        if target.device != self.device or target.dtype != torch.int64:
            target = target.to(self.device, torch.int64)
        self.target = target
        if self.checked and not 0 <= self.ignore_index < self.num_classes:
            # a head validated every target, and none can equal ignore_index: all valid
            valid, rows = _constant(self.positions, self.device, torch.bool, 1), target
        else:
            valid = target != self.ignore_index
            if not self.checked:  # an out-of-range class is left out, counted, then reported
                self.out_of_range = valid & ((target < 0) | (target >= self.num_classes))
                valid = valid & ~self.out_of_range
            rows = torch.where(valid, target, 0)
        self._valid, self._rows = valid, rows
        logits, clean, noise, features, weight = self._pending
        self.values.update(self.kernels.feature_values(features, weight, rows))
        self._pending = (logits, clean, noise)
        if not self.deferred and not self.awaits_loss:
            self._reduce()

    @property
    def logits(self) -> Tensor | None:
        """The (P, C) logits while they wait to be reduced, else None."""
        return None if self._pending is None else self._pending[0]

    def reduce_logits(self, logp: Tensor | None = None) -> None:
        """Reduce the pending logits (the target is known): from ``logp``, their log-softmax
        the loss computed (:func:`satkit.hooks.lossgraph.find_log_softmax`), or else from the
        logits themselves. No-op when they are reduced already."""
        self.awaits_loss, self.source = False, None
        if self._pending is None:
            return
        if logp is None:
            logits, clean, noise = self._pending
            self.values.update(logit_vectors(logits, clean, self.clean_from_noise, self.target,
                                             self._rows, self._valid, noise, self.kernels))
        else:
            logits, _, noise = self._pending
            self.values.update(stats.logit_values_from_log_softmax(
                logits, logp, self.target, self._valid, noise, self.kernels.extras))
            self.reused_log_softmax = True
        self._pending = None

    def _reduce(self) -> None:
        """Reduce the pending logits and gradient to (P,) vectors (the target is known)."""
        self.reduce_logits()
        if self._grad is not None:
            self.values.update(self.kernels.gradient_values(self._grad, self.target,
                                                            self._valid))
            self._grad = None

    def on_grad_logits(self, grad: Tensor) -> None:
        self.backward_passes += 1
        grad = _flat(grad, (self.positions, grad.shape[-1]))
        if self.target is None or self.deferred:  # keep (summed over passes) until later
            self._grad = grad if self._grad is None else self._grad + grad
        elif self.backward_passes == 1:
            self.reduce_logits()  # a loss announced but never given: from the logits
            self.values.update(self.kernels.gradient_values(grad, self.target, self._valid))
        else:  # the first pass's gradient is reduced already; a sum is no longer possible
            self.values.pop("grad_target", None)
            self.values.pop("grad_norm", None)

    def on_grad_features(self, grad: Tensor) -> None:
        grad = _flat(grad, (self.positions, grad.shape[-1]))
        if self._grad_features is None:
            # Kept until step(): a copy when the features are a leaf, since autograd may then
            # adopt this very tensor as their .grad and add a later micro-batch's into it.
            self._grad_features = grad.clone() if self._leaf else grad
        else:
            self._grad_features = self._grad_features + grad

    @property
    def has_grad_features(self) -> bool:
        return self._grad_features is not None

    def record(self, *, keep: bool) -> Record:
        """What this forward leaves for :func:`satkit.hooks.reduce.reduce` (the target must be
        known): the reduced (P,) vectors, references to the logits and their gradient while
        they wait (a small capture), the features' gradient reduced to its norms now.

        Args:
            keep: the record is reduced later (at the flush): the target is copied, since a
                loop may refill its target tensor in place.
        """
        if not self.deferred and (self._pending is not None or self._grad is not None):
            self._reduce()
        g, self._grad_features = self._grad_features, None
        if g is not None:
            self.values["grad_features_norm"] = torch.linalg.vector_norm(
                g.to(torch.float64 if g.dtype == torch.float64 else torch.float32), dim=1)
        target, rows = self.target, self._rows
        if keep:
            target = target.clone()
            rows = target if self._rows is self.target else rows
        logits, clean, noise = self._pending or (None, None, self._noise)
        return Record(target, rows, self._valid, noise, self.values, logits, clean,
                      self.clean_from_noise, self._grad, self.grad_scale)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def capture_forward(module: nn.Module, args: tuple, kwargs: dict, output: Tensor, *,
                    target: Tensor | None, ignore_index: int,
                    on_grad: Callable[[Capture, str, Tensor], None],
                    kernels: stats.Kernels | None = None, await_loss: bool = False) -> Capture:
    """Build the :class:`Capture` of one training forward and hook its gradients.

    Args:
        module: the head.
        args, kwargs, output: the forward's (``register_forward_hook(with_kwargs=True)``).
        target: a target announced for this forward, or None.
        ignore_index: target value of positions to leave out.
        on_grad: called as ``on_grad(capture, "logits" | "features", grad)``.
        kernels: the per-step functions (default: eager).
        await_loss: the caller will offer this forward's loss before backward
            (:meth:`Capture.reduce_logits`).

    Raises:
        ValueError: logits not (N, C) or (N, T, C), features of another leading shape, features
            that are not floating point or whose size (D) or logits whose size (C) is not the
            weight's (C, D), a target of the wrong shape.
    """
    features = args[0] if args else kwargs.get("input", kwargs.get("features"))
    head_target = args[1] if len(args) > 1 else kwargs.get("target")
    if output.dim() not in (2, 3) or not isinstance(features, Tensor) \
            or features.shape[:output.dim() - 1] != output.shape[:-1] or output.shape[-1] < 2:
        raise ValueError(
            "SaturationRecorder needs a head called as head(features (N, D) or (N, T, D), ...) "
            f"-> logits (N, C) or (N, T, C) with C >= 2; got logits of shape "
            f"{tuple(output.shape)} from features of shape "
            f"{tuple(getattr(features, 'shape', ()))}")
    weight = module.weight
    if not features.is_floating_point() or features.shape[-1] != weight.shape[1] \
            or output.shape[-1] != weight.shape[0]:
        raise ValueError(
            f"SaturationRecorder needs {HEAD_CONTRACT}; this forward took {features.dtype} "
            f"features of shape {tuple(features.shape)} to logits of shape "
            f"{tuple(output.shape)}, with a weight of shape {tuple(weight.shape)}")
    if isinstance(head_target, Tensor):
        target = head_target
    if target is not None and target.shape != output.shape[:-1]:
        raise ValueError(f"the target of this forward has shape {tuple(target.shape)}, the "
                         f"logits {tuple(output.shape)}: expected {tuple(output.shape[:-1])}")
    p = output.shape[:-1].numel()
    noise = getattr(module, "last_noise", None)
    if not isinstance(noise, Tensor) or noise.shape != output.shape[:-1]:
        noise = _constant(p, output.device, output.dtype, 0)
    known = isinstance(head_target, Tensor)
    clean, from_noise, checked = None, False, False
    if is_saturation_head(module):  # the head protocol: its own inverse, and checks
        applies = getattr(module, "applies", None)
        if known and (applies is None or applies(head_target)):
            # The head's inverse of its training-time change, taken now, while its state
            # (noise, temperature, margin) is this forward's: right under accumulation too.
            clean = module.clean_logits(output.detach(), head_target)
        checked = known and getattr(module, "validates_target", False) is True
    elif known and output.dim() == 2 and isinstance(getattr(module, "last_noise", None), Tensor):
        from_noise = True  # noise on f_y only
    cap = Capture(output, clean, noise, features, module.weight, target, ignore_index,
                  kernels or stats.kernels(False), checked=checked,
                  clean_from_noise=from_noise, await_loss=await_loss and target is not None)
    cap.handles.append(output.register_hook(lambda g: on_grad(cap, "logits", g)))
    if features.requires_grad:
        cap.handles.append(features.register_hook(lambda g: on_grad(cap, "features", g)))
    return cap
