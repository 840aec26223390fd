"""A background writer: the recorder's flushes finish off the training thread.

Jobs (host-side work: turning raw rows into table rows, writing Parquet parts with fsync,
TensorBoard events) run in submission order on one daemon thread. The queue is bounded, so a
training loop that outpaces the disk waits at the next flush instead of piling up memory; a
step that does not flush never waits. An error of a job is kept and raised on the training
thread by a later flush (:meth:`BackgroundWriter.take_error`): an automatic flush raises the
errors of the flushes before it, an explicit ``flush()`` waits and raises its own too.

What a crash can lose: a job still queued when the process is killed (at most ``maxsize``
flushes of rows, plus the rows not yet flushed). ``close()``, an exception or Ctrl-C in the
training loop, and every explicit ``flush()``, wait for the queue to drain.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["BackgroundWriter", "InlineWriter"]


class InlineWriter:
    """Runs each job at once, on the caller's thread (``background=False``)."""

    def __init__(self) -> None:
        self._error: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as err:  # kept for take_error(): the same contract as the thread
            self._error = self._error or err

    def wait(self) -> None:
        """Nothing queued: jobs ran in submit."""

    def take_error(self) -> BaseException | None:
        """The first error of a job since the last call (and forget it)."""
        err, self._error = self._error, None
        return err

    def close(self) -> None:
        """Nothing to stop."""


class BackgroundWriter(InlineWriter):
    """Runs jobs on a daemon thread, in order, with a bounded queue.

    Args:
        maxsize: jobs that may wait; ``submit`` blocks when that many are queued.
        name: the thread's name.
    """

    def __init__(self, maxsize: int = 2, name: str = "satkit-writer") -> None:
        super().__init__()
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                try:
                    job()
                except Exception as err:
                    self._error = self._error or err
            finally:
                self._queue.task_done()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job`` (blocks while the queue is full)."""
        if not self._thread.is_alive():
            raise RuntimeError("the recorder's writer thread has stopped")
        self._queue.put(job)

    def wait(self) -> None:
        """Block until every queued job has run."""
        if self._thread.is_alive():
            self._queue.join()

    def close(self) -> None:
        """Run what is queued, then stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
