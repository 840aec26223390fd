"""``SaturationRecorder``: hooks that record how saturated the softmax is, every step.

Plumbing only: the hooks capture tensors, :mod:`satkit.hooks.stats` computes the statistics,
:mod:`satkit.hooks.samples` keeps the per-sample record, :mod:`satkit.hooks.distributed`
reduces across ranks and :mod:`satkit.sinks` store the rows.

How a step is recorded, without a host sync:

* a forward hook on the head captures (detached) the features, the logits, the target and the
  head's ``last_noise`` of every *training* forward (module in training mode, autograd on), and
  puts tensor hooks on the logits and the features to catch their gradients in ``backward``;
* ``step()`` turns the micro-batches of the step (several with gradient accumulation) into one
  raw row of sums (:func:`~satkit.hooks.stats.reduce_batch`) and writes it, with the
  per-sample p_target, noise and dataset index, into preallocated device buffers;
* ``flush()`` (every ``flush_every`` recorded rows, and at ``close()``) is the only place that
  moves data to the host: one transfer, plus one ``all_gather`` under ``torch.distributed``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from satkit.hooks import distributed
from satkit.hooks.samples import SampleTracker
from satkit.hooks.stats import (
    QUANTILES,
    Layout,
    clean_logits,
    column_names,
    finalize,
    per_sample_statistics,
    reduce_batch,
    threshold_column,
)
from satkit.sinks.base import Histogram
from satkit.validation import check_int, check_reals

__all__ = ["SaturationRecorder"]

_SAMPLE_COLUMNS = ("index", "first_saturated_step", "desaturations", "last_p_target",
                   "last_seen_step")


class _Capture:
    """One training forward of the head (a micro-batch), detached, and its gradients."""

    def __init__(self, logits: Tensor, target: Tensor | None, noise: Tensor,
                 features: Tensor, clean: Tensor) -> None:
        self.logits, self.target, self.noise, self.features = logits, target, noise, features
        self.clean = clean  # eval-mode logits of this forward (== logits for a plain head)
        self.grad_logits: Tensor | None = None
        self.grad_features: Tensor | None = None
        self.handles: list[RemovableHandle] = []

    def add_grad(self, name: str, grad: Tensor) -> None:
        old = getattr(self, name)
        setattr(self, name, grad.detach() if old is None else old + grad.detach())

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


class _Buffer:
    """Preallocated device storage for up to ``capacity`` recorded steps.

    Shape: ``raw`` (capacity, K) float32; ``p``, ``noise`` (capacity, width) float32 padded
    with NaN; ``index`` (capacity, width) int64 padded with -1. ``width`` is the largest
    per-step sample count seen (the buffer grows, without a sync, if a larger step comes).
    """

    def __init__(self, capacity: int, width: int, k: int, device: torch.device) -> None:
        self.capacity, self.width, self.device = capacity, width, device
        self.raw = torch.zeros(capacity, k, device=device)
        self.p = torch.full((capacity, width), float("nan"), device=device)
        self.noise = torch.full((capacity, width), float("nan"), device=device)
        self.index = torch.full((capacity, width), -1, dtype=torch.int64, device=device)
        self.steps: list[int] = []

    @property
    def full(self) -> bool:
        return len(self.steps) >= self.capacity

    def _grow(self, width: int) -> None:
        for name, fill in (("p", float("nan")), ("noise", float("nan")), ("index", -1)):
            old = getattr(self, name)
            new = torch.full((self.capacity, width), fill, dtype=old.dtype, device=self.device)
            new[:, : self.width] = old
            setattr(self, name, new)
        self.width = width

    def append(self, step: int, raw: Tensor, p: Tensor, noise: Tensor,
               index: Tensor | None) -> None:
        n = p.shape[0]
        if n > self.width:
            self._grow(n)
        r = len(self.steps)
        self.raw[r].copy_(raw)
        for log, values in ((self.p, p), (self.noise, noise)):
            log[r, :n].copy_(values)
            log[r, n:].fill_(float("nan"))
        if index is None:
            self.index[r].fill_(-1)
        else:
            self.index[r, :n].copy_(index)
            self.index[r, n:].fill_(-1)
        self.steps.append(step)

    def views(self) -> list[Tensor]:
        r = len(self.steps)
        return [self.raw[:r], self.p[:r], self.noise[:r], self.index[:r]]


def _check_head(head: object) -> nn.Module:
    weight = getattr(head, "weight", None)
    if not isinstance(head, nn.Module) or not isinstance(weight, Tensor) or weight.dim() != 2:
        raise TypeError(
            "SaturationRecorder needs a Linear-like classifier head: an nn.Module with a 2-D "
            f"`weight` (num_classes, in_features), e.g. satkit.NoisySoftmax or nn.Linear; got "
            f"{type(head).__name__}" + ("" if weight is None else
                                        f" with weight of shape {tuple(weight.shape)}"))
    return head


def _check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    taus = check_reals("thresholds", thresholds, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    names = [threshold_column(t) for t in taus]
    if len(set(names)) != len(names):
        raise ValueError(f"thresholds give duplicate column names {names}")
    return tuple(float(t) for t in taus)


def _check_index_cpu(index: Tensor, out_of_range: Tensor, num_samples: int) -> None:
    # sync point (CPU only): reading a CPU tensor waits for no device. _assert_async reads it
    # in C++; on an accelerator the check is deferred to flush() (the bad_index count).
    try:
        torch._assert_async(~out_of_range.any())
    except RuntimeError:
        raise ValueError(f"index values must lie in [0, num_samples={num_samples}), got values "
                         f"in [{int(index.min())}, {int(index.max())}]") from None


class SaturationRecorder:
    """Record, per optimizer step and per sample, how saturated a classifier's softmax is.

    Attach it to the last layer (the head), call :meth:`step` once per optimizer step after
    ``backward()``, and read :meth:`metrics` (one row per recorded step, columns listed in
    :func:`satkit.hooks.stats.column_names`) and :meth:`samples` (one row per training sample).
    Statistics stay on the device; :meth:`flush` (automatic every ``flush_every`` recorded
    rows) is the only host sync and writes the new rows to every sink.

    Training forwards (head in training mode with autograd on) are recorded; forwards under
    ``torch.no_grad()`` or in eval mode are ignored, so evaluation passes may run in between.
    With gradient accumulation, every training forward since the last ``step()`` that took part
    in a backward belongs to the step; the per-sample gradients are scaled by the step's sample
    count, which assumes the standard ``(mean loss / k).backward()`` convention (a ``sum``
    reduction, or an AMP ``GradScaler`` scale, would scale the gradient columns).

    Args:
        head: a ``satkit.NoisySoftmax`` or any Linear-like module (2-D ``weight``) producing the
            logits of a cross-entropy classifier.
        thresholds: saturation thresholds tau in (0, 1); ``saturated_frac`` and the per-sample
            record use the last one.
        num_samples: dataset size; with ``index`` in :meth:`step`, enables the per-sample record.
        every: record the steps whose index is a multiple of ``every``.
        flush_every: buffered rows before an automatic flush (so a flush every
            ``flush_every * every`` steps).
        sinks: objects with ``write(rows)`` and ``close()`` (:class:`satkit.sinks.Sink`).
            Under ``torch.distributed`` only rank 0 writes; create the sinks on rank 0 only.
        histogram_every: keep the per-sample p_target and noise of the steps whose index is a
            multiple of this, for sinks with ``write_histograms``; None: no histograms.

    Raises:
        TypeError: a head that is not Linear-like, a sink without ``write``/``close``.
        ValueError: bad thresholds or counts.

    Example:
        >>> head = torch.nn.Linear(4, 3)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> with SaturationRecorder(head, num_samples=8) as rec:
        ...     torch.nn.functional.cross_entropy(head(x), y).backward()
        ...     rec.step(y, index=torch.arange(8))
        >>> len(rec.metrics()), len(head._forward_hooks)
        (1, 0)
    """

    def __init__(
        self,
        head: nn.Module,
        *,
        thresholds: Sequence[float] = (0.9, 0.99),
        num_samples: int | None = None,
        every: int = 1,
        flush_every: int = 100,
        sinks: Sequence[Any] = (),
        histogram_every: int | None = 100,
    ) -> None:
        self.head = _check_head(head)
        self.layout = Layout(_check_thresholds(thresholds))
        self.thresholds = self.layout.thresholds
        self.num_samples = check_int("num_samples", num_samples, minimum=1, optional=True)
        self.every = check_int("every", every, minimum=1)
        self.flush_every = check_int("flush_every", flush_every, minimum=1)
        self.histogram_every = check_int("histogram_every", histogram_every, minimum=1,
                                         optional=True)
        self.sinks = tuple(sinks)
        for sink in self.sinks:
            if not (callable(getattr(sink, "write", None)) and callable(getattr(sink, "close",
                                                                                None))):
                raise TypeError(f"a sink needs write(rows) and close(), got {type(sink).__name__}")
        self._tracker = (SampleTracker(num_samples, self.thresholds[-1])
                         if num_samples is not None else None)
        self._handle: RemovableHandle | None = head.register_forward_hook(
            self._on_forward, with_kwargs=True)
        self._captures: list[_Capture] = []
        self._forwards = 0
        self._steps = 0
        self._buffer: _Buffer | None = None
        self._rows: list[dict[str, Any]] = []
        self._histograms: list[Histogram] = []
        self._written = [0] * len(self.sinks)
        self._hist_written = [0] * len(self.sinks)
        self._closed = False

    def _on_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        training = module.training and torch.is_grad_enabled()
        if not (training and isinstance(output, Tensor) and output.requires_grad):
            return  # evaluation pass: not part of a training step
        self._forwards += 1
        if self._steps % self.every:
            return
        features = args[0] if args else kwargs.get("input", kwargs.get("features"))
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if not isinstance(features, Tensor) or output.dim() != 2:
            raise ValueError("SaturationRecorder needs a head called as head(features (N, D), "
                             f"...) -> logits (N, C); got logits of shape {tuple(output.shape)}")
        noise = getattr(module, "last_noise", None)
        if not isinstance(noise, Tensor) or noise.shape != output.shape[:1]:
            noise = output.new_zeros(output.shape[0])
        logits = output.detach()
        target = target.detach() if isinstance(target, Tensor) else None
        clean = logits
        if target is not None and callable(getattr(module, "clean_logits", None)):
            # The head's own inverse of its training-time change, taken now, while its state
            # (noise, temperature, margin) is this forward's: right under accumulation too.
            clean = module.clean_logits(logits, target).detach()
        elif target is not None:
            clean = clean_logits(logits, target, noise.detach())
        cap = _Capture(logits, target, noise.detach(),
                       features.detach().reshape(output.shape[0], -1), clean)
        cap.handles.append(output.register_hook(partial(self._on_grad, cap, "grad_logits")))
        if features.requires_grad:
            cap.handles.append(features.register_hook(partial(self._on_grad, cap,
                                                              "grad_features")))
        self._captures.append(cap)

    def _on_grad(self, cap: _Capture, name: str, grad: Tensor) -> None:
        if self._handle is not None:
            cap.add_grad(name, grad)

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
        return 0 if self._buffer is None else len(self._buffer.steps)

    def step(self, target: Tensor | None = None, index: Tensor | None = None,
             loss: Tensor | float | None = None) -> None:
        """Close the current optimizer step; record it if ``steps % every == 0``.

        Call once per optimizer step, after ``backward()`` and before ``zero_grad()`` (the
        head's ``weight.grad`` gives ``grad_weight_norm``; NaN when it is None).

        Args:
            target: the step's class indices (N,), all micro-batches concatenated in forward
                order; default: the targets the head saw in forward (``NoisySoftmax``).
            index: the dataset indices of those samples (N,), for the per-sample record.
            loss: the step's loss, a detached scalar tensor or a float; default: the mean
                cross-entropy of the logits the head output.

        Raises:
            RuntimeError: no training forward (or no backward) of the head since the last step;
                the recorder is closed.
            ValueError: a target or index of the wrong shape or dtype, ``index`` without
                ``num_samples``, index values out of range (checked here for CPU tensors, at
                the next flush on accelerators, where reading them would sync).
        """
        if self._closed:
            raise RuntimeError("step() on a closed SaturationRecorder")
        if self._forwards == 0:
            raise RuntimeError(
                "step() without a preceding training forward of the head: call it once per "
                "optimizer step, after forward and backward (forwards in eval mode or under "
                "torch.no_grad() are not training steps)")
        step, captures = self._steps, self._captures
        self._captures, self._forwards = [], 0
        self._steps += 1
        try:
            if step % self.every == 0:
                self._record(step, captures, target, index, loss)
        finally:
            for cap in captures:
                cap.remove()
        if self._buffer is not None and self._buffer.full:
            self.flush()

    def _record(self, step: int, captures: list[_Capture], target: Tensor | None,
                index: Tensor | None, loss: Tensor | float | None) -> None:
        caps = [c for c in captures if c.grad_logits is not None]
        if not caps:
            raise RuntimeError("step(): no backward reached the head's logits since the last "
                               "step; call step() after loss.backward()")

        def cat(name: str) -> Tensor:  # micro-batches in forward order (no copy for one)
            parts = [getattr(c, name) for c in caps]
            return parts[0] if len(parts) == 1 else torch.cat(parts)

        logits = cat("logits")
        n, device = logits.shape[0], logits.device
        target = self._step_target(caps, target, n).to(device)
        has_grad_features = all(c.grad_features is not None for c in caps)
        index, bad = self._step_index(index, n, device)
        if loss is not None and not isinstance(loss, (Tensor, int, float)):
            raise TypeError(f"loss must be a scalar tensor or a number, got {type(loss).__name__}")
        if isinstance(loss, Tensor) and loss.numel() != 1:
            raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
        weight = self.head.weight
        grad_w = (None if weight.grad is None
                  else torch.linalg.vector_norm(weight.grad.detach().float()))
        # grad_scale=n: dL_i/d. = N dL/d. for a loss that is the mean over the step's N samples.
        # A head that saw no target in forward (nn.Linear) made no training-time change.
        clean = cat("clean") if all(c.target is not None for c in caps) else None
        stats = per_sample_statistics(
            logits, target, cat("noise"), cat("features"), weight, cat("grad_logits"),
            cat("grad_features") if has_grad_features else None, grad_scale=n, clean=clean)
        mask = stats["finite"]
        raw = reduce_batch(stats, mask, self.layout, loss=loss, grad_weight_norm=grad_w,
                           bad_index=bad)
        if self._buffer is not None and self._buffer.device != device:
            self.flush()  # the head moved to another device: start a new buffer there
            self._buffer = None
        if self._buffer is None:
            self._buffer = _Buffer(self.flush_every, n, len(self.layout), device)
        nan = float("nan")
        self._buffer.append(step, raw, torch.where(mask, stats["p_target"], nan),
                            torch.where(mask, stats["noise"], nan), index)

    @staticmethod
    def _step_target(caps: list[_Capture], target: Tensor | None, n: int) -> Tensor:
        if target is None:
            if any(c.target is None for c in caps):
                raise ValueError("step() needs `target`: the head did not receive one in "
                                 "forward (e.g. an nn.Linear head)")
            return torch.cat([c.target for c in caps])
        if not isinstance(target, Tensor) or target.dtype != torch.int64 or target.shape != (n,):
            raise ValueError(
                f"target must be an int64 tensor of shape ({n},) (the step's samples, all "
                f"micro-batches concatenated in forward order), got "
                f"{getattr(target, 'dtype', type(target).__name__)} "
                f"{tuple(getattr(target, 'shape', ()))}")
        return target

    def _step_index(self, index: Tensor | None, n: int,
                    device: torch.device) -> tuple[Tensor | None, Tensor | None]:
        if index is None:
            return None, None
        if self.num_samples is None:
            raise ValueError("step() got `index` but the recorder has num_samples=None; pass "
                             "num_samples to record per-sample saturation")
        if (not isinstance(index, Tensor) or index.shape != (n,)
                or index.dtype not in (torch.int64, torch.int32)):
            raise ValueError(f"index must be an integer tensor of shape ({n},) (dataset indices "
                             f"of the step's samples), got {getattr(index, 'dtype', index)!r} "
                             f"{tuple(getattr(index, 'shape', ()))}")
        index = index.to(device=device, dtype=torch.int64)
        out_of_range = (index < 0) | (index >= self.num_samples)
        if index.device.type == "cpu":
            _check_index_cpu(index, out_of_range, self.num_samples)
        return index, out_of_range.sum()

    def flush(self) -> None:
        """Move the buffered rows to the host and write every new row to the sinks.

        The only host sync of the recorder (one device-to-host transfer, plus one all_gather
        under ``torch.distributed``, where every rank must call it). Rows are kept in memory
        before any sink sees them, so a failing sink loses nothing: it raises here and gets the
        same rows again at the next flush.

        Raises:
            ValueError: out-of-range dataset indices were recorded since the last flush (on an
                accelerator); the rows are stored and written first.
            Exception: the first error a sink raised (the other sinks are still written).
        """
        bad_steps: list[int] = []
        buf = self._buffer
        if buf is not None and buf.steps:
            steps = list(buf.steps)
            raw, p, noise, index = distributed.gather(buf.views())
            world, r, width = p.shape
            # (W, R, B) -> (R, W*B): the global batch of each step.
            p, noise, index = (t.transpose(0, 1).reshape(r, world * width)
                               for t in (p, noise, index))
            if self._tracker is not None:
                for i, s in enumerate(steps):
                    self._tracker.update(index[i], p[i], s)
            host = torch.cat([raw.reshape(-1).double(), p.reshape(-1).double(),
                              noise.reshape(-1).double()]).cpu().numpy()  # sync point
            buf.steps.clear()
            k = len(self.layout)
            raw_h = host[: world * r * k].reshape(world, r, k)
            p_h, noise_h = host[world * r * k:].reshape(2, r, world * width)
            merged = distributed.merge_raw(raw_h, self.layout.kinds)
            with warnings.catch_warnings():  # an all-NaN step (no finite sample) gives NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                quantiles = np.nanquantile(p_h, QUANTILES, axis=1).T
            self._rows.extend(finalize(merged, quantiles, steps, self.layout))
            self._keep_histograms(steps, p_h, noise_h)
            bad = merged[:, self.layout.index["bad_index"]] > 0
            bad_steps = [s for s, b in zip(steps, bad, strict=True) if b]
        self._write_sinks()
        if bad_steps:
            raise ValueError(f"index values outside [0, num_samples={self.num_samples}) at "
                             f"steps {bad_steps}; those samples were left out of the "
                             "per-sample record")

    def _keep_histograms(self, steps: list[int], p: np.ndarray, noise: np.ndarray) -> None:
        if self.histogram_every is None or not any(hasattr(s, "write_histograms")
                                                   for s in self.sinks):
            return
        for i, s in enumerate(steps):
            if s % self.histogram_every == 0:
                for name, values in (("p_target", p[i]), ("noise", noise[i])):
                    self._histograms.append(Histogram(s, name, values[np.isfinite(values)]))

    def _write_sinks(self) -> None:
        if distributed.rank() != 0:
            return
        errors: list[Exception] = []
        for i, sink in enumerate(self.sinks):
            try:
                if self._written[i] < len(self._rows):
                    sink.write(self._rows[self._written[i]:])
                    self._written[i] = len(self._rows)
                write_hist = getattr(sink, "write_histograms", None)
                if write_hist is None:
                    self._hist_written[i] = len(self._histograms)
                elif self._hist_written[i] < len(self._histograms):
                    write_hist(self._histograms[self._hist_written[i]:])
                    self._hist_written[i] = len(self._histograms)
            except Exception as err:  # every sink gets its chance; the first error re-raised
                err.add_note(f"raised by sink {sink!r}; its rows are kept and retried")
                errors.append(err)
        done = min(self._hist_written, default=len(self._histograms))
        del self._histograms[:done]
        self._hist_written = [w - done for w in self._hist_written]
        if errors:
            raise errors[0]

    def metrics(self) -> pd.DataFrame:
        """All rows recorded so far (flushing first), one per recorded step, in step order."""
        self.flush()
        columns = column_names(self.thresholds)
        dtypes = {c: "float64" for c in columns}
        dtypes.update(step="int64", batch_size="int64", nonfinite="bool")
        return pd.DataFrame(self._rows, columns=columns).astype(dtypes)

    def samples(self) -> pd.DataFrame:
        """The per-sample record (flushing first): one row per sample of the dataset.

        Columns: ``index``, ``first_saturated_step`` (Int64, <NA> when never saturated),
        ``desaturations``, ``last_p_target``, ``last_seen_step`` (Int64, <NA> when never seen).
        Empty when ``num_samples`` is None.
        """
        self.flush()
        if self._tracker is None:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
                _SAMPLE_COLUMNS, ("int64", "Int64", "int64", "float64", "Int64"), strict=True)})
        return self._tracker.frame()

    def close(self) -> None:
        """Flush, give the samples table to the sinks, remove the hooks, close the sinks.

        Idempotent. The hooks are removed and every sink is closed even if the flush or a sink
        raises (the error is re-raised).
        """
        if self._closed:
            return
        self._closed = True
        with ExitStack() as stack:
            for sink in self.sinks:
                stack.callback(sink.close)
            stack.callback(self.remove)
            try:
                self.flush()
            finally:
                self._write_samples()

    def _write_samples(self) -> None:
        writers = [w for w in (getattr(s, "write_samples", None) for s in self.sinks) if w]
        if self._tracker is None or not writers or distributed.rank() != 0:
            return
        frame = self._tracker.frame()
        for write in writers:
            write(frame)

    def __enter__(self) -> SaturationRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
                "samples": None if self._tracker is None else self._tracker.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step counter and per-sample record from :meth:`state_dict`.

        Raises:
            RuntimeError: rows are buffered (load before training resumes).
            ValueError: the checkpoint's per-sample record does not match ``num_samples``.
        """
        if self.buffered:
            raise RuntimeError("load_state_dict() with buffered rows; load before recording")
        samples = state.get("samples")
        if (samples is None) != (self._tracker is None):
            raise ValueError("the checkpoint and this recorder disagree on num_samples "
                             f"(checkpoint has a per-sample record: {samples is not None})")
        if self._tracker is not None:
            self._tracker.load_state_dict(samples)
        self._steps = int(state["steps"])
