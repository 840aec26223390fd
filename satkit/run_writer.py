"""``RunWriter``: the one writer of a run directory (:mod:`satkit.schema` says what it holds).

``satkit train`` (:func:`satkit.training.train`) and both framework callbacks
(:mod:`satkit.integrations`) write their run directories through it, so a run directory has one
format whoever trains: the same claim and lock, ``config.json``, recorder and sinks
(``metrics.parquet``, ``samples.parquet``, TensorBoard event files), table state at a
checkpoint, and ``summary.json``. What each writer adds of its own (``epochs.csv``, a
checkpoint, figures) it writes into :attr:`RunWriter.path`.

Under ``torch.distributed`` only one process writes: the others hold a ``RunWriter`` that
writes nothing (:meth:`RunWriter.claim` with ``writes=False``), whose recorder has no sinks and
only takes part in the reduction across ranks.

Order, so that a refused run leaves nothing behind and a failed one loses nothing:
:meth:`~RunWriter.claim` (atomic; a directory in use is skipped or, to resume, refused),
:meth:`~RunWriter.write_config` (a fresh directory whose config cannot be written is given up),
:meth:`~RunWriter.recorder`, training, :meth:`~RunWriter.write_summary`,
:meth:`~RunWriter.close` (closes the sinks and lets go of the lock; idempotent).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from satkit import schema
from satkit.hooks import RecorderOptions, SaturationRecorder
from satkit.run_dir import (
    RunDirLock,
    claim_run_dir,
    release_run_dir,
    sweep_temporary,
    write_json,
)

__all__ = ["RunWriter"]


class _KeptOpen:
    """Hands a sink's rows and histograms to the recorder, but not its ``close``: the writer
    may still write into the TensorBoard sink once the summary is known (the hparams of a
    finished run), then closes it in :meth:`RunWriter.close`."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.sink.write(rows)

    def write_histograms(self, histograms: list[Any]) -> None:
        self.sink.write_histograms(histograms)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return repr(self.sink)


class RunWriter:
    """The process's hold on one run directory and everything it writes there.

    Args:
        lock: the claimed and locked directory (:func:`satkit.run_dir.claim_run_dir`); None on
            a process that writes nothing (another rank).

    Attributes:
        path: the run directory; None on a process that writes nothing.
        table: the :class:`~satkit.sinks.TableSink` of ``metrics.parquet`` once
            :meth:`recorder` built it (None before, and off the writing process).
        tensorboard: the :class:`~satkit.sinks.TensorBoardSink`, likewise.

    Example:
        >>> import tempfile, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     writer = RunWriter.claim(os.path.join(tmp, "run"))
        ...     writer.write_config({"method": "softmax", "dataset": "toy", "seed": 0})
        ...     head = torch.nn.Linear(4, 3)
        ...     with writer.recorder(head, RecorderOptions(histogram_every=None)) as rec:
        ...         torch.nn.functional.cross_entropy(head(torch.randn(8, 4)),
        ...                                           torch.randint(0, 3, (8,))).backward()
        ...         rec.step(torch.randint(0, 3, (8,)))
        ...     writer.close()
        ...     sorted(p.name for p in writer.path.iterdir() if not p.name.startswith((".", "ev")))
        ['config.json', 'figures', 'metrics.parquet']
    """

    def __init__(self, lock: RunDirLock | None) -> None:
        self._lock = lock
        self.path: Path | None = None if lock is None else lock.path
        self.table: Any | None = None
        self.tensorboard: Any | None = None
        self._resume = False

    @classmethod
    def claim(cls, out: str | os.PathLike[str], *, resume: bool = False,
              writes: bool = True) -> RunWriter:
        """Claim and lock a fresh run directory at ``out`` (``out-1``, ``out-2``, ... when it
        is taken), or with ``resume`` lock the existing one; ``writes=False``: a writer that
        writes nothing (a process other than the one writing the run).

        Raises:
            RunDirError: ``resume`` with nothing to resume in ``out``.
            RunLockedError: another process writes ``out`` (``resume``).
            RunWriteError: ``out`` cannot be created.
        """
        if not writes:
            return cls(None)
        writer = cls(claim_run_dir(out, resume=resume))
        writer._resume = resume
        return writer

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory."""
        return self.path is not None

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write ``config.json`` and create ``figures/``. Resuming, first delete what writers
        killed mid-write left and the old ``summary.json`` (no longer the truth). A fresh
        directory whose config cannot be written is given up (removed, lock released)."""
        if self.path is None:
            return
        try:
            if self._resume:
                sweep_temporary(self.path)
                (self.path / schema.SUMMARY).unlink(missing_ok=True)
            write_json(self.path / schema.CONFIG, dict(config))
            (self.path / schema.FIGURES).mkdir(exist_ok=True)
        except BaseException:
            if not self._resume and self._lock is not None:
                lock, self._lock = self._lock, None
                release_run_dir(lock)
            raise

    def recorder(self, head: Any, options: RecorderOptions, *, num_samples: int | None = None,
                 sample_columns: Any = None, sinks: Sequence[Any] = ()) -> SaturationRecorder:
        """The recorder on ``head``, writing ``metrics.parquet`` (and ``samples.parquet``, with
        ``sample_columns`` added: :data:`satkit.schema.SAMPLE_LABEL_COLUMNS`), TensorBoard
        event files and then ``sinks`` (only on the writing process; elsewhere the recorder
        has no sink). Resuming, the table continues the one on disk.

        Raises:
            OSError: the run directory cannot be written.
        """
        from satkit.sinks import TableSink, TensorBoardSink

        all_sinks: list[Any] = []
        if self.path is not None:
            self.table = TableSink(self.path / schema.METRICS, resume=self._resume,
                                   sample_columns=sample_columns)
            self.tensorboard = TensorBoardSink(self.path,
                                               histogram_every=options.histogram_every,
                                               thresholds=options.thresholds)
            all_sinks = [self.table, _KeptOpen(self.tensorboard), *sinks]
        return SaturationRecorder(head, options, num_samples=num_samples, sinks=all_sinks)

    def truncate_after(self, step: int) -> None:
        """Cut the recorded tables back to a checkpoint: drop the rows after ``step`` (they
        will be recorded again)."""
        if self.table is not None:
            self.table.truncate_after(step)

    def write_summary(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write ``summary.json``: the fields of :data:`satkit.schema.SUMMARY_FIELDS`, in that
        order, from ``values`` (a missing one is null). Returns what was written; None on a
        process that writes nothing."""
        if self.path is None:
            return None
        summary = {key: values.get(key) for key in schema.SUMMARY_FIELDS}
        write_json(self.path / schema.SUMMARY, summary)
        return summary

    def close_sinks(self) -> None:
        """Close the TensorBoard sink (the recorder closes the others); idempotent."""
        tensorboard, self.tensorboard = self.tensorboard, None
        if tensorboard is not None:
            tensorboard.close()

    def close(self) -> None:
        """Close the sinks and let go of the lock (another process may then resume or read
        the run). Idempotent."""
        lock, self._lock = self._lock, None
        try:
            self.close_sinks()
        finally:
            if lock is not None:
                lock.release()
