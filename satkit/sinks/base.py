"""The sink protocol: where the recorder's rows go (TensorBoard, Parquet, your own).

A sink needs two methods, ``write(rows)`` and ``close()``. Two more are optional and are
called only when a sink defines them:

* ``write_histograms(histograms)``: per-sample distributions (:class:`Histogram`) of the clean
  p_target and of the noise, for the steps the recorder samples them;
* ``write_samples(frame)``: the per-sample ``samples`` table, once, at the recorder's close.

The recorder calls ``write`` with the rows of each flush, in step order, exactly once per row
(a sink that raised is retried with the same rows at the next flush), and ``close`` once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = ["Histogram", "Sink", "ensure_writable_dir"]


class Histogram(NamedTuple):
    """The per-sample values of one quantity at one step, for a histogram.

    Attributes:
        step: the step index.
        name: ``"p_target"`` (clean target probability) or ``"noise"``.
        values: 1-D float64 array of the finite per-sample values of the step's batch.
    """

    step: int
    name: str
    values: np.ndarray


@runtime_checkable
class Sink(Protocol):
    """Receives the rows of the metrics table (dicts keyed by column name).

    Example:
        >>> class ListSink:
        ...     def __init__(self):
        ...         self.rows = []
        ...     def write(self, rows):
        ...         self.rows.extend(rows)
        ...     def close(self):
        ...         pass
        >>> isinstance(ListSink(), Sink)
        True
    """

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` (one dict per recorded step, keyed by metrics column)."""

    def close(self) -> None:
        """Finish writing; called once, also when training raised."""


def ensure_writable_dir(directory: str | os.PathLike, sink: str) -> Path:
    """Create ``directory`` if needed and prove a file can be written there.

    Raises:
        OSError: naming the sink and the directory, at construction rather than at the first
            flush, so nothing recorded waits on a sink that can never write.
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(err.errno, f"{sink} cannot write to {path}: {err.strerror or err}") from err
    return path
