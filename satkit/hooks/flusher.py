"""The recorder's flush: buffered device rows -> one host copy -> table rows -> sinks.

A :class:`Flusher` owns everything between a recorded step and the sinks: the device buffer
(:mod:`~satkit.hooks.buffer`), the per-sample record (:mod:`~satkit.hooks.samples`), the
reduction across ranks (:mod:`~satkit.hooks.distributed`), the rows and the sinks
(:mod:`~satkit.hooks.fanout`) and the writer thread (:mod:`~satkit.hooks.writer`). A flush
runs on the training thread only as far as the device work and one device-to-host copy (on
CUDA: non-blocking, into pinned memory; what it needs from the host goes the other way the
same way, :func:`~satkit.hooks.buffer.to_device`), so it never waits for the GPU; the host
work (table rows, Parquet, TensorBoard) runs on the writer thread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from satkit.columns import column_dtypes
from satkit.hooks import distributed, stats
from satkit.hooks.buffer import StepBuffer, StepMeta, to_device
from satkit.hooks.fanout import Fanout
from satkit.hooks.layout import LOGGED, Layout
from satkit.hooks.reduce import Record, fill_rows, pack_scalars
from satkit.hooks.rows import finalize
from satkit.hooks.samples import SampleTracker
from satkit.hooks.visits import VISIT_VALUES
from satkit.hooks.writer import BackgroundWriter, InlineWriter
from satkit.schema import SAMPLE_COLUMNS
from satkit.sinks.base import Histogram

__all__ = ["Flusher"]

#: Values the device buffer may hold (16 Mi float32 = 64 MiB): a step with very many positions
#: (a language model's tokens) flushes before ``flush_every`` rows.
_BUFFER_VALUES = 1 << 24


def _pad(t: Tensor, width: int, fill: float) -> Tensor:
    if t.shape[-1] >= width:
        return t
    pad = t.new_full((*t.shape[:-1], width - t.shape[-1]), fill)
    return torch.cat([t, pad], dim=-1)


class Flusher:
    """Buffered rows of a recorder, their flushes, and the resulting tables.

    Args:
        layout: the raw-row layout (holds the thresholds).
        num_samples: dataset size for the per-sample record; None: no record.
        sequence_level: see :class:`satkit.hooks.samples.SampleTracker`.
        flush_every: buffered rows that make the buffer full.
        sinks: where rows go (:class:`satkit.hooks.fanout.Fanout`).
        histogram_every: steps between kept per-sample histograms; None: none.
        background: finish flushes on a writer thread.
    """

    def __init__(self, layout: Layout, *, num_samples: int | None, sequence_level: float,
                 flush_every: int, sinks: Sequence[Any], histogram_every: int | None,
                 background: bool) -> None:
        self.layout, self.num_samples = layout, num_samples
        self.flush_every, self.histogram_every = flush_every, histogram_every
        self.fanout = Fanout(sinks, column_dtypes(layout.thresholds, layout.opt_in))
        self.writer = BackgroundWriter() if background else InlineWriter()
        self.tracker = (SampleTracker(num_samples, layout.thresholds[-1], sequence_level)
                        if num_samples is not None else None)
        self.buffer: StepBuffer | None = None
        self.kernels = stats.kernels(False)  # the recorder sets the compiled ones on CUDA

    @property
    def buffered(self) -> int:
        return 0 if self.buffer is None else len(self.buffer)

    def add(self, meta: StepMeta, packed: Tensor | None, scalars: tuple[Any, Any, Any],
            index: Tensor | None, *, positions: int,
            deferred: list[Record] | None = None) -> None:
        """Buffer one recorded step (no host sync): its packed vectors, or, deferred, its
        records; and its (loss, grad_weight_norm, bad_target) (see
        :meth:`StepBuffer.append`). Flushes in the background when the buffer is full."""
        device = deferred[0].target.device if packed is None else packed.device
        if self.buffer is not None and self.buffer.device != device:
            self.flush(wait=False)  # the head moved: a new buffer
            self.buffer = None
        if self.buffer is None:
            per_step = len(self.layout.packed) * positions
            capacity = max(1, min(self.flush_every, _BUFFER_VALUES // max(per_step, 1)))
            self.buffer = StepBuffer(capacity, len(self.layout.packed), positions,
                                     meta.samples, device)
        self.buffer.append(meta, packed, scalars, None if index is None
                           else index.to(device, torch.int64), positions=positions,
                           deferred=deferred)
        if self.buffer.full:
            self.flush(wait=False)

    def flush(self, *, wait: bool) -> None:
        """Submit the buffered rows; with ``wait``, return when every row is written.

        Raises:
            Exception: the first error of an earlier flush (a sink's, or out-of-range indices
                or targets); with ``wait`` also of this one.
        """
        earlier = self.writer.take_error()  # of the flushes before this one
        buf = self.buffer
        if buf is not None and len(buf):
            self._submit(buf)
        if wait:
            self.writer.wait()
            earlier = earlier or self.writer.take_error()
        if earlier is not None:
            raise earlier

    def _submit(self, buf: StepBuffer) -> None:
        steps = [m.step for m in buf.meta]
        if buf.deferred:
            fill_rows(buf.packed, buf.deferred, self.layout, self.kernels)
        packed, index = buf.views()
        scalars = pack_scalars(buf.scalars, buf.device)
        raw, logged, per_sample = stats.reduce_rows(packed, scalars, index, buf.meta,
                                                    self.layout, self.num_samples)
        has_index = to_device([m.has_index for m in buf.meta], torch.bool, index.device)
        index = torch.where(has_index[:, None], index, -1)
        width = max(per_sample.shape[-1], index.shape[-1])
        per_sample, index = _pad(per_sample, width, math.nan), _pad(index, width, -1)
        raw, logged, per_sample, index = distributed.gather([raw, logged, per_sample, index])
        world, r = raw.shape[:2]
        # (W, R, ...) -> (R, ..., W * width): the global batch of each step.
        logged = logged.permute(1, 2, 0, 3).reshape(r, logged.shape[2], -1)
        per_sample = per_sample.permute(1, 2, 0, 3).reshape(r, len(VISIT_VALUES), -1)
        index = index.transpose(0, 1).reshape(r, -1)
        if self.tracker is not None:
            self.tracker.update(index, per_sample, steps)
        flat = torch.cat([raw.reshape(-1), logged.reshape(-1)])
        if flat.device.type == "cuda":
            host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
            host.copy_(flat, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = flat, None  # computed afresh from the buffer: safe to reuse it
        buf.clear()
        shape = (world, r, raw.shape[2]), tuple(logged.shape)
        self.writer.submit(lambda: self._finish(host, event, steps, shape))

    def _finish(self, host: Tensor, event: Any, steps: list[int],
                shape: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
        """On the writer thread: host rows -> table rows -> sinks."""
        if event is not None:
            event.synchronize()
        values = host.numpy()  # sync point (the copy was queued at the flush)
        raw_shape, logged_shape = shape
        raw = values[: int(np.prod(raw_shape))].reshape(raw_shape).astype(np.float64)
        logged = values[int(np.prod(raw_shape)):].reshape(logged_shape).astype(np.float64)
        merged = distributed.merge_raw(raw, self.layout.kinds)
        rows = finalize(merged, logged, steps, self.layout)
        self.fanout.add(rows, self._histograms(steps, logged))
        errors = self.fanout.write() if distributed.rank() == 0 else []
        for column, what in (("bad_target", "target values outside [0, num_classes) (and not "
                                            "ignore_index)"),
                             ("bad_index", f"index values outside [0, num_samples="
                                           f"{self.num_samples})")):
            bad = [s for s, b in zip(steps, merged[:, self.layout.index[column]] > 0,
                                     strict=True) if b]
            if bad:
                errors.insert(0, ValueError(f"{what} at steps {bad}; those positions were left "
                                            "out of the statistics and the per-sample record"))
        if errors:
            raise errors[0]

    def _histograms(self, steps: list[int], logged: np.ndarray) -> list[Histogram]:
        if self.histogram_every is None or not self.fanout.wants_histograms:
            return []
        out = []
        for i, s in enumerate(steps):
            if s % self.histogram_every == 0:
                for name in ("p_target", "p_target_noisy", "noise"):
                    values = logged[i, LOGGED.index(name)]
                    out.append(Histogram(s, name, values[np.isfinite(values)]))
        return out

    def metrics(self) -> pd.DataFrame:
        """All rows so far (after a waiting flush), one per recorded step, in step order: read
        back from the table sink, or from the in-memory columns without one
        (:meth:`Fanout.frame`)."""
        self.flush(wait=True)
        return self.fanout.frame()

    def samples(self) -> pd.DataFrame:
        """The per-sample record (after a waiting flush); empty without ``num_samples``."""
        self.flush(wait=True)
        if self.tracker is None:
            return pd.DataFrame({c: pd.Series(dtype=dtype)
                                 for c, (dtype, _) in SAMPLE_COLUMNS.items()})
        return self.tracker.frame()

    def close(self, stack: ExitStack) -> None:
        """Flush and give the samples table to the sinks; the sinks and the writer thread are
        closed by ``stack``'s callbacks even when that raises."""
        for sink in self.fanout.sinks:
            stack.callback(sink.close)
        stack.callback(self.writer.close)
        try:
            self.flush(wait=True)
        finally:
            if self.tracker is not None and self.fanout.takes_samples \
                    and distributed.rank() == 0:
                self.fanout.write_samples(self.tracker.frame())
