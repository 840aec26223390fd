"""``SaturationRecorder``: hooks that record how saturated the softmax is, every step.

This module ties the pieces together: :mod:`~satkit.hooks.capture` (the PyTorch hooks),
:mod:`~satkit.hooks.stats` (the maths), :mod:`~satkit.hooks.reduce` (captures to packed
vectors, one way for every step), :mod:`satkit.columns` (what is measured),
:mod:`~satkit.hooks.buffer` (device storage), :mod:`~satkit.hooks.samples` (the per-sample
record), :mod:`~satkit.hooks.distributed` (the reduction across ranks),
:mod:`~satkit.hooks.fanout` and :mod:`~satkit.hooks.writer` (rows to the sinks, off the
training thread).

How a step is recorded, without a host sync:

* a forward hook on the head captures every *training* forward (module in training mode,
  autograd on) and hooks the gradients of its logits and features;
* ``step()`` turns the micro-batches of the step (several with gradient accumulation) into
  one record each and packs them (:func:`~satkit.hooks.reduce.reduce`) into a preallocated
  device buffer; a small step's records wait and are packed at the flush with the others;
* a flush (every ``flush_every`` recorded rows, and at ``close()``) is the only place that
  moves data to the host: one all_gather under ``torch.distributed``, one device-to-host copy;
  the rest (table rows, Parquet, TensorBoard) runs on a background writer thread.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from satkit.columns import threshold_column
from satkit.hooks import reduce, stats, targets
from satkit.hooks.announce import Announcements
from satkit.hooks.buffer import StepMeta
from satkit.hooks.capture import Capture, capture_forward, check_head
from satkit.hooks.flusher import Flusher
from satkit.hooks.layout import Layout
from satkit.hooks.options import RecorderOptions, recorder_options
from satkit.validation import check_bool, check_int, check_real, check_reals

__all__ = ["SaturationRecorder"]


class SaturationRecorder(Announcements):
    """Record, per optimizer step and per sample, how saturated a classifier's softmax is.

    Attach it to the last layer (the head), call :meth:`step` once per optimizer step after
    ``backward()``, and read :meth:`metrics` (one row per recorded step; the columns are
    declared in :data:`satkit.columns.QUANTITIES`) and :meth:`samples` (one row per
    training sample, :data:`satkit.schema.SAMPLE_COLUMNS`). Statistics stay on the device; a
    flush (automatic every ``flush_every`` recorded rows) is the only host sync, and writes
    the new rows to every sink on a background thread.

    Saturation is measured in two views: *clean* (the softmax of the eval-mode logits) and
    *noisy* (the softmax of the logits the loss was computed on: Eq. 5's noise, a margin, a
    temperature; the same as clean for a plain head).

    Training forwards (head in training mode with autograd on) are recorded; forwards under
    ``torch.no_grad()`` or in eval mode are ignored, so evaluation passes may run in between.
    With gradient accumulation, every training forward since the last ``step()`` that took part
    in a backward belongs to the step; per-position gradients are the step's mean-loss gradient
    times its number of positions, which assumes the standard ``(mean loss / k).backward()``
    convention (a ``sum`` reduction, or an AMP ``GradScaler`` scale, would scale the gradient
    columns).

    Sequence logits: a head producing (N, T, C) logits (a language model's ``lm_head``, a
    token classifier) is recorded per token: every column is over the positions whose target
    is not ``ignore_index``, and ``batch_size`` counts them. The per-sample record is per
    sequence (its dataset ``index``): ``last_p_target`` is its mean p_y over its tokens, and
    it counts as saturated at a visit when at least ``sequence_level`` of its tokens have
    p_y >= tau. Its cost, with :meth:`set_target` and :meth:`set_loss` (what the
    framework callbacks call) and without: :mod:`satkit.hooks.capture`.

    Args:
        head: a ``satkit`` head (:class:`satkit.heads.base.SaturationHead`) or any module with
            a 2-D ``weight`` producing the logits of a cross-entropy classifier (an
            ``nn.Linear``, an LM's tied output layer).
        options: what to record (:class:`~satkit.hooks.RecorderOptions`: thresholds,
            ``every``, ``flush_every``, ``histogram_every``, ``ignore_index``,
            ``sequence_level``, and ``opt_in``: costly quantities to record as well, by name
            (:func:`satkit.columns.opt_in_names`), e.g. ``("entropy",)`` for the
            ``entropy_mean`` column); default: its defaults.
        num_samples: dataset size; with ``index`` in :meth:`step`, enables the per-sample record.
        sinks: objects with ``write(rows)`` and ``close()`` (:class:`satkit.sinks.Sink`).
            Under ``torch.distributed`` only rank 0 writes; create the sinks on rank 0 only.
        **settings: :class:`~satkit.hooks.RecorderOptions` fields that replace those of
            ``options`` (``SaturationRecorder(head, every=2)`` is
            ``SaturationRecorder(head, RecorderOptions(every=2))``).
        background: write to the sinks on a background thread (False: in ``flush()``).
        compile: ``torch.compile`` the per-step statistics (same numbers, fewer kernel
            launches); None: when the head is on a CUDA device.

    Raises:
        TypeError: a head that is not Linear-like, a sink without ``write``/``close``.
        ValueError: bad thresholds or counts.

    Example:
        >>> head = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> with SaturationRecorder(head, RecorderOptions(), num_samples=8) as rec:
        ...     torch.nn.functional.cross_entropy(head(x), y).backward()
        ...     rec.step(y, index=torch.arange(8))
        >>> len(rec.metrics()), len(head._forward_hooks)
        (1, 0)
    """

    def __init__(
        self,
        head: nn.Module,
        options: RecorderOptions | None = None,
        *,
        num_samples: int | None = None,
        sinks: Sequence[Any] = (),
        background: bool = True,
        compile: bool | None = None,
        **settings: Any,
    ) -> None:
        options = recorder_options(options, settings, who="SaturationRecorder")
        self.options = options
        thresholds, every, flush_every = options.thresholds, options.every, options.flush_every
        histogram_every, ignore_index = options.histogram_every, options.ignore_index
        sequence_level = options.sequence_level
        self.head = check_head(head)
        taus = check_reals("thresholds", thresholds, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        names = [threshold_column(t) for t in taus]
        if len(set(names)) != len(names):
            raise ValueError(f"thresholds give duplicate column names {names}")
        self.layout = Layout(taus, options.opt_in)
        self.thresholds = self.layout.thresholds
        self.num_samples = check_int("num_samples", num_samples, minimum=1, optional=True)
        self.every = check_int("every", every, minimum=1)
        self.flush_every = check_int("flush_every", flush_every, minimum=1)
        self.histogram_every = check_int("histogram_every", histogram_every, minimum=1,
                                         optional=True)
        self.ignore_index = check_int("ignore_index", ignore_index)
        self.sequence_level = check_real("sequence_level", sequence_level, lo=0.0, hi=1.0,
                                         lo_open=True)
        self._flusher = Flusher(self.layout, num_samples=self.num_samples,
                                sequence_level=self.sequence_level, flush_every=self.flush_every,
                                sinks=sinks, histogram_every=self.histogram_every,
                                background=check_bool("background", background))
        self.sinks = self._flusher.fanout.sinks
        self._handle: RemovableHandle | None = head.register_forward_hook(
            self._on_forward, with_kwargs=True)
        self._captures: list[Capture] = []
        self._target: tuple[Tensor, Tensor | float | None, bool] | None = None
        self._reused = 0
        self._forwards = 0
        self._steps = 0
        self._warned_double_backward = False
        self._compile = None if compile is None else check_bool("compile", compile)
        self._closed = False

    # -- hooks -----------------------------------------------------------------------------
    def _on_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        training = module.training and torch.is_grad_enabled()
        if not (training and isinstance(output, Tensor) and output.requires_grad):
            return  # evaluation pass: not part of a training step
        self._forwards += 1
        announced, self._target = self._target, None
        if self._steps % self.every:
            return
        target, grad_scale, loss_follows = announced if announced is not None \
            else (None, None, False)
        compiled = output.is_cuda if self._compile is None else self._compile
        kernels = stats.kernels(compiled, self.layout.extras)
        self._flusher.kernels = kernels
        cap = capture_forward(module, args, kwargs, output, target=target,
                              ignore_index=self.ignore_index, on_grad=self._on_grad,
                              kernels=kernels, await_loss=loss_follows)
        cap.grad_scale = grad_scale
        self._captures.append(cap)

    def _on_grad(self, cap: Capture, which: str, grad: Tensor) -> None:
        if self._handle is None:
            return
        if which == "logits":
            cap.on_grad_logits(grad)
        else:
            cap.on_grad_features(grad)

    def remove(self) -> None:
        """Remove every hook this recorder registered (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        for cap in self._captures:
            cap.remove()
        self._captures.clear()

    @property
    def steps(self) -> int:
        """Number of :meth:`step` calls so far, i.e. the index of the next step."""
        return self._steps

    @property
    def buffered(self) -> int:
        """Rows recorded on the device and not yet flushed."""
        return self._flusher.buffered

    # -- a step ----------------------------------------------------------------------------
    def step(self, target: Tensor | None = None, index: Tensor | None = None,
             loss: Tensor | float | None = None) -> None:
        """Close the current optimizer step; record it if ``steps % every == 0``.

        Call once per optimizer step, after ``backward()`` and before ``zero_grad()`` (the
        head's ``weight.grad`` gives ``grad_weight_norm``; NaN when it is None).

        Args:
            target: the step's targets, (N,) or (N, T), all micro-batches concatenated in
                forward order; needed only for a head that did not receive its target in
                forward (e.g. an ``nn.Linear``); a target the head saw is used otherwise.
            index: the dataset indices of the step's N samples (sequences), for the
                per-sample record.
            loss: the step's loss, a detached scalar tensor or a float; default: the mean
                cross-entropy of the logits the head output. The tensor is read at the next
                flush: pass one that nothing changes in place (``loss.detach()``).

        Raises:
            RuntimeError: no training forward (or no backward) of the head since the last step;
                the recorder is closed.
            ValueError: a target or index of the wrong shape or dtype, ``index`` without
                ``num_samples``, target values out of range (checked here for CPU tensors, at
                the next flush on accelerators, where reading them would sync). Out-of-range
                dataset indices are reported at the next flush, on every device.
        """
        if self._closed:
            raise RuntimeError("step() on a closed SaturationRecorder")
        if self._forwards == 0:
            raise RuntimeError(
                "step() without a preceding training forward of the head: call it once per "
                "optimizer step, after forward and backward (forwards in eval mode or under "
                "torch.no_grad() are not training steps)")
        step, captures = self._steps, self._captures
        self._captures, self._forwards, self._target = [], 0, None
        self._steps += 1
        try:
            if step % self.every == 0:
                self._record(step, captures, target, index, loss)
        finally:
            for cap in captures:
                cap.remove()

    def _record(self, step: int, captures: list[Capture], target: Tensor | None,
                index: Tensor | None, loss: Tensor | float | None) -> None:
        caps = [c for c in captures if c.backward_passes > 0]
        if not caps:
            raise RuntimeError("step(): no backward reached the head's logits since the last "
                               "step; call step() after loss.backward()")
        targets.supply_targets(caps, target)
        n = sum(c.sizes[0] for c in caps)
        targets.check_index(index, n, self.num_samples)
        loss = targets.check_loss(loss)
        grad_w = targets.weight_grad_norm(self.head)
        bad_target = targets.bad_targets(caps)
        deferred = all(c.deferred for c in caps)  # a small step: packed at the flush
        records = [c.record(keep=deferred) for c in caps]
        if any(c.backward_passes > 1 and r.grad is None and "grad_target" not in r.values
               for c, r in zip(caps, records, strict=True)):
            self._warn_double_backward()
        meta = StepMeta(step, tuple(c.sizes for c in caps), loss is not None,
                        all(r.grad is not None or "grad_norm" in r.values for r in records),
                        all("grad_features_norm" in r.values for r in records),
                        index is not None)
        packed = None if deferred else reduce.reduce(records, self.layout, self._flusher.kernels)
        self._flusher.add(meta, packed, (loss, grad_w, bad_target), index,
                          positions=sum(c.positions for c in caps),
                          deferred=records if deferred else None)

    def _warn_double_backward(self) -> None:
        if not self._warned_double_backward:
            self._warned_double_backward = True
            warnings.warn("the head's logits got gradients from several backward passes after "
                          "their target was known; the gradient columns of those steps are NaN "
                          "(pass the target to step() instead of to the head to sum them)",
                          stacklevel=4)

    # -- flushing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Move the buffered rows to the host and write every new row to the sinks; returns
        when they are written.

        The only host sync of the recorder (one device-to-host transfer, plus one all_gather
        under ``torch.distributed``, where every rank must call it). Rows are kept in memory
        before any sink sees them, so a failing sink loses nothing: it raises here and gets the
        same rows again at the next flush.

        Raises:
            ValueError: out-of-range dataset indices or targets were recorded (on an
                accelerator); the rows are stored and written first.
            Exception: the first error a sink raised (the other sinks are still written).
        """
        self._flusher.flush(wait=True)

    def wait_for_writes(self) -> None:
        """Block until the rows of earlier flushes are written (the buffer stays buffered)."""
        self._flusher.writer.wait()

    # -- tables ----------------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        """All rows recorded so far (flushing first), one per recorded step, in step order.

        Read back from the first sink with ``read_metrics()`` (a :class:`~satkit.sinks.TableSink`),
        which keeps the recorder's memory flat however long the run; without one the rows are
        kept in memory as columns (8 bytes a value)."""
        return self._flusher.metrics()

    def samples(self) -> pd.DataFrame:
        """The per-sample record (flushing first): one row per sample of the dataset, with
        the columns of :data:`satkit.schema.SAMPLE_COLUMNS`. Empty when ``num_samples`` is
        None."""
        return self._flusher.samples()

    def close(self) -> None:
        """Flush, give the samples table to the sinks, remove the hooks, close the sinks.

        Idempotent. The hooks are removed, the writer thread stopped and every sink closed
        even if the flush or a sink raises (the error is re-raised).
        """
        if self._closed:
            return
        self._closed = True
        with ExitStack() as stack:
            stack.callback(self.remove)
            self._flusher.close(stack)

    def __enter__(self) -> SaturationRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The step counter and the per-sample record (CPU copies), for a checkpoint.

        Copying the per-sample tensors to the host is a sync point, like the checkpoint itself.
        Take it right after :meth:`flush`: rows buffered since the last flush (and, since the
        per-sample record is updated at flush, their per-sample observations) are not in it,
        so a run resumed from it continues as if those steps had not been recorded (truncate
        table sinks to the checkpoint's step). Warns when rows are buffered.
        """
        if self.buffered:
            warnings.warn(f"state_dict() with {self.buffered} unflushed rows: they are not part "
                          "of the checkpoint; call flush() first", stacklevel=2)
        return {"steps": self._steps,
                "samples": None if self._flusher.tracker is None
                else self._flusher.tracker.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step counter and per-sample record from :meth:`state_dict`.

        Raises:
            RuntimeError: rows are buffered (load before training resumes).
            ValueError: the checkpoint's per-sample record does not match ``num_samples``.
        """
        if self.buffered:
            raise RuntimeError("load_state_dict() with buffered rows; load before recording")
        samples = state.get("samples")
        if (samples is None) != (self._flusher.tracker is None):
            raise ValueError("the checkpoint and this recorder disagree on num_samples "
                             f"(checkpoint has a per-sample record: {samples is not None})")
        if self._flusher.tracker is not None:
            self._flusher.tracker.load_state_dict(samples)
        self._steps = int(state["steps"])
