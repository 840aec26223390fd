"""One training run recorded by a framework callback: its config, the targets of each step,
and the summary written at the end, through the run's :class:`~satkit.run_writer.RunWriter`.

The callbacks only translate their framework's events into the four calls of
:class:`RecordingSession` (``announce`` the target of the next training forward, ``step``
after backward, ``finish`` at the end, ``abort`` on an error); what a run directory holds is
written by :class:`~satkit.run_writer.RunWriter`, as ``satkit train`` writes it, so
``satkit report``, ``satkit plot``, ``satkit tensorboard`` and :func:`satkit.analysis.load_run`
read it unchanged.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from satkit import methods
from satkit._version import __version__
from satkit.hooks import RecorderOptions
from satkit.methods import NOISY, SOFTMAX
from satkit.run_writer import RunWriter

__all__ = ["RecordingSession", "SessionOwner", "gradient_scale", "method_config", "run_config",
           "summary_fields"]

#: How far the gradient columns may be from the per-position cross-entropy gradient before
#: :meth:`RecordingSession.finish` warns (float32 round-off stays far below it).
GRADIENT_SCALE_TOLERANCE = 0.01


def method_config(head: nn.Module) -> dict[str, Any]:
    """The raw method fields of a run's config.json (``loss``, ``alpha2``, ``noise``) for the
    head it trains: Noisy Softmax for a :class:`satkit.NoisySoftmax` head, plain softmax
    otherwise (:func:`run_config` derives the method as applied from them).

    Example:
        >>> method_config(torch.nn.Linear(4, 3))
        {'loss': 'softmax', 'alpha2': 0.0, 'noise': 'none'}
    """
    from satkit.heads import NoisySoftmax

    if isinstance(head, NoisySoftmax):
        return {"loss": NOISY, "alpha2": head.alpha2, "noise": head.noise}
    return {"loss": SOFTMAX, "alpha2": 0.0, "noise": "none"}


def run_config(head: nn.Module, options: RecorderOptions, fields: Mapping[str, Any],
               user: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config.json of a recorded run.

    Args:
        head: the recorded head (gives the method, :func:`method_config`).
        options: the recorder's settings (recorded as they were used).
        fields: what the callback knows of the run (framework, model, dataset, seed, ...).
        user: the caller's entries; they override the others (e.g. ``{"dataset": "sst2"}``,
            or ``{"loss": "cosface", "margin": 0.35}`` for a head satkit cannot identify).

    Returns:
        A JSON-ready dict with at least ``method``, ``dataset`` and ``seed``; ``method``,
        ``effective_alpha2`` and ``effective_noise`` are derived from the final ``loss``,
        ``alpha2`` and ``noise`` by the catalogue's rules (:mod:`satkit.methods`).
    """
    config: dict[str, Any] = {**method_config(head), **fields,
                              "thresholds": list(options.thresholds), "every": options.every,
                              "flush_every": options.flush_every,
                              "histogram_every": options.histogram_every,
                              "ignore_index": options.ignore_index,
                              "sequence_level": options.sequence_level,
                              "satkit_version": __version__, "torch_version": torch.__version__,
                              "threads": torch.get_num_threads()}
    config.update(user or {})
    loss, alpha2 = config.get("loss"), config.get("alpha2")
    noise = config.get("noise")
    config["method"] = methods.resolve_method(loss, alpha2)
    config["effective_alpha2"] = methods.effective_alpha2(loss, alpha2)
    config["effective_noise"] = methods.effective_noise(
        loss, alpha2, None if noise == "none" else noise)
    config.setdefault("dataset", "unknown")
    config.setdefault("seed", None)
    return config


def summary_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The summary.json fields that restate the run's config.json (the method as applied).

    Example:
        >>> summary_fields({"method": "softmax", "effective_alpha2": 0.0, "seed": 3})["loss"]
        'softmax'
    """
    return {"dataset": config.get("dataset"), "model": config.get("model"),
            "loss": config.get("method"), "alpha2": config.get("effective_alpha2"),
            "noise": config.get("effective_noise"), "seed": config.get("seed"),
            "device": config.get("device")}


def gradient_scale(metrics: pd.DataFrame) -> float:
    """How many times the recorded target gradient is the cross-entropy one, 1 - p_y.

    For a cross-entropy loss on the head's logits, |dL_i/df_y| = 1 - p_y under the training
    logits, so ``grad_target_mean`` equals ``1 - p_target_noisy_mean`` row by row when the
    step's loss is the mean over the step's positions (what the recorder assumes). The
    median ratio over the rows where 1 - p_y is not tiny tells the actual scaling (e.g. 2 when
    a framework summed two accumulated micro-batch means instead of averaging them).

    Returns:
        The median ratio; NaN when no row can tell (nothing recorded, everything saturated).

    Example:
        >>> gradient_scale(pd.DataFrame({"grad_target_mean": [0.5, 0.2],
        ...                              "p_target_noisy_mean": [0.75, 0.9]}))
        2.0
    """
    if not {"grad_target_mean", "p_target_noisy_mean"} <= set(metrics.columns):
        return math.nan
    rest = 1.0 - metrics["p_target_noisy_mean"].to_numpy(dtype=np.float64)
    grad = metrics["grad_target_mean"].to_numpy(dtype=np.float64)
    usable = np.isfinite(rest) & np.isfinite(grad) & (rest > 1e-3)
    return float(np.median(grad[usable] / rest[usable])) if usable.any() else math.nan


class RecordingSession:
    """The recorder of one training run and what it writes.

    Args:
        head: the module producing the logits (:func:`satkit.integrations.find_head`).
        writer: the run directory's writer (:meth:`RunWriter.claim`; one that writes nothing
            off rank 0: no sinks, the recorder only takes part in the reduction across ranks).
        options: the recorder's settings.
        num_samples: the training set's size, for the per-sample record (needs dataset
            indices in :meth:`announce`); None: no per-sample record.
        sinks: further sinks for the recorder (on the writing process).

    The recorder writes ``metrics.parquet`` and ``samples.parquet`` and TensorBoard event
    files into the writer's run directory (:meth:`RunWriter.recorder`).
    """

    def __init__(self, head: nn.Module, writer: RunWriter, options: RecorderOptions, *,
                 num_samples: int | None = None, sinks: Sequence[Any] = ()) -> None:
        self.writer = writer
        self.run_dir: Path | None = writer.path
        self.recorder = writer.recorder(head, options, num_samples=num_samples, sinks=sinks)
        self._indices: list[Tensor] = []
        self._started = time.perf_counter()
        self.closed = False

    def announce(self, target: Tensor, index: Tensor | None = None, *,
                 grad_scale: Tensor | float | None = None) -> None:
        """The target (and the dataset indices) of the head's next training forward, and what
        turns its logits gradient into per-position gradients (None: the recorder's default).
        The framework gives the forward's loss to :meth:`loss` before backward.

        No host sync: the target goes to :meth:`SaturationRecorder.set_target`, the index is
        kept until :meth:`step`.
        """
        self.recorder.set_target(target, grad_scale=grad_scale, loss_follows=True)
        if index is not None:
            self._indices.append(index)

    def loss(self, loss: Tensor | None) -> None:
        """The loss of the announced forward(s), before backward (None: the framework has
        none to give): see :meth:`SaturationRecorder.set_loss`."""
        self.recorder.set_loss(loss)

    def step(self) -> None:
        """Close the optimizer step: every forward announced since the last step belongs to it
        (gradient accumulation). Call after backward, before the gradients are zeroed."""
        indices, self._indices = self._indices, []
        index = None if not indices else indices[0] if len(indices) == 1 else torch.cat(indices)
        self.recorder.step(index=index)

    def finish(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Flush and close the recorder (on every rank), then write summary.json.

        Args:
            fields: the summary figures the callback knows (steps, epochs, finished, ...);
                the saturation figures come from the whole run's tables
                (:func:`satkit.analysis.saturation_summary`), the timings from here.

        Returns:
            The summary written (the keys of :data:`satkit.schema.SUMMARY_FIELDS`), None on a
            process without ``run_dir``.

        Warns:
            UserWarning: the gradient columns are not the per-position cross-entropy
                gradient (:func:`gradient_scale` away from 1), saying by how much.
        """
        from satkit.analysis import load_run, saturation_summary

        seconds = time.perf_counter() - self._started
        self.closed = True
        self.recorder.close()
        if self.run_dir is None:
            return None
        run = load_run(self.run_dir)
        scale = gradient_scale(run.metrics)
        if math.isfinite(scale) and abs(scale - 1.0) > GRADIENT_SCALE_TOLERANCE:
            warnings.warn(
                f"{self.run_dir}: the gradient columns are {scale:.4g} x the per-position "
                "cross-entropy gradient 1 - p_y: the step's loss was not the mean over the "
                "step's positions (or is not plain cross-entropy); see satkit.integrations",
                stacklevel=3)
        steps = int(fields.get("steps") or 0)
        values = {**fields, **saturation_summary(run),
                  "seconds": round(seconds, 3),
                  "seconds_per_step": seconds / steps if steps else None,
                  "wall_seconds": round(seconds, 3), "satkit_version": __version__}
        return self.writer.write_summary(values)

    def abort(self, *, flush: bool) -> None:
        """Stop after an error (idempotent). ``flush=True``: close the recorder (flush, samples
        table, sinks closed). ``flush=False`` only removes the hooks: under
        ``torch.distributed`` a flush would wait for ranks that may have died; the rows of
        earlier flushes are on disk already (:func:`satkit.sinks.read_table` reads them)."""
        if self.closed:
            return
        self.closed = True
        if flush:
            self.recorder.close()
        else:
            self.recorder.remove()


class SessionOwner:
    """What a framework callback holds while it records: its :class:`RecordingSession` and the
    :class:`~satkit.run_writer.RunWriter` under it, and the one way to let go of both."""

    _session: RecordingSession | None = None
    _writer: RunWriter | None = None

    def _close_session(self, *, flush: bool) -> None:
        """Abort the open session (``flush``: write the rows it holds first; False where the
        other ranks may not take part), then :meth:`_release` the directory, also on an error."""
        session, self._session = self._session, None
        try:
            if session is not None:
                session.abort(flush=flush)
        finally:
            self._release()

    def _release(self) -> None:
        """Close the run directory's files and let go of its lock (another process may then
        resume or read it)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
