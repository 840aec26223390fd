"""The sink protocol: where the recorder's rows go (TensorBoard, Parquet, your own).

A sink needs two methods, ``write(rows)`` and ``close()``. The others of :class:`Sink` are
optional: a sink that defines them gets

* ``write_histograms(histograms)``: per-sample distributions (:class:`Histogram`) of p_target
  in both views and of the noise, for the steps the recorder samples them;
* ``write_samples(frame)``: the per-sample ``samples`` table, once, at the recorder's close;
* ``write_hparams(hparams, metrics, step=...)`` and ``write_scalars(step, values, group=...)``:
  a run's hyperparameters with its final figures, and figures that are not recorder rows
  (the trainer's per-epoch curves).

The recorder calls ``write`` with the rows of each flush, in step order, exactly once per row
(a sink that raised is retried with the same rows at the next flush), and ``close`` once.
:func:`optional_methods` resolves a sink's optional methods once, so nothing downstream asks
``hasattr``; subclassing :class:`SinkBase` gives no-op defaults.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["OPTIONAL_METHODS", "Histogram", "Sink", "SinkBase", "ensure_writable_dir", "fsync_dir",
           "optional_methods"]


class Histogram(NamedTuple):
    """The per-sample values of one quantity at one step, for a histogram.

    Attributes:
        step: the step index.
        name: ``"p_target"`` (clean target probability), ``"p_target_noisy"`` (under the
            training logits) or ``"noise"``.
        values: 1-D float64 array of the finite per-sample values of the step's batch.
    """

    step: int
    name: str
    values: np.ndarray


@runtime_checkable
class Sink(Protocol):
    """Receives the rows of the metrics table (dicts keyed by column name).

    Only ``write`` and ``close`` are required (that is what ``isinstance`` checks); the
    methods of :data:`OPTIONAL_METHODS` are used when a sink has them.

    Example:
        >>> class ListSink:
        ...     def __init__(self):
        ...         self.rows = []
        ...     def write(self, rows):
        ...         self.rows.extend(rows)
        ...     def close(self):
        ...         pass
        >>> isinstance(ListSink(), Sink), sorted(optional_methods(ListSink()))
        (True, [])
    """

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Store ``rows`` (one dict per recorded step, keyed by metrics column)."""

    def close(self) -> None:
        """Finish writing; called once, also when training raised."""


#: The optional methods of a sink, with their signatures as documentation.
OPTIONAL_METHODS: Mapping[str, str] = {
    "write_histograms": "(histograms: list[Histogram]) -> None",
    "write_samples": "(frame: pandas.DataFrame) -> None",
    "write_hparams": "(hparams: Mapping[str, Any], metrics: Mapping[str, float], *, "
                     "step: int, runs: Sequence[Mapping[str, Any]] | None) -> None",
    "write_scalars": "(step: int, values: Mapping[str, float], *, group: str) -> None",
}


def optional_methods(sink: object) -> dict[str, Callable[..., None]]:
    """The optional methods ``sink`` defines, bound, by name (resolved once).

    Raises:
        TypeError: ``sink`` lacks ``write`` or ``close``.
    """
    if not (callable(getattr(sink, "write", None)) and callable(getattr(sink, "close", None))):
        raise TypeError(f"a sink needs write(rows) and close(), got {type(sink).__name__}")
    found = {name: getattr(sink, name, None) for name in OPTIONAL_METHODS}
    return {name: method for name, method in found.items() if callable(method)}


class SinkBase:
    """A base for sinks: ``write`` to implement, the rest no-ops to override as needed."""

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def write_histograms(self, histograms: list[Histogram]) -> None:
        """Per-sample distributions; ignored unless overridden."""

    def write_samples(self, frame: pd.DataFrame) -> None:
        """The per-sample table; ignored unless overridden."""

    def close(self) -> None:
        """Nothing to finish unless overridden."""


def check_utf8_path(path: str | os.PathLike, name: str) -> None:
    """Refuse a path that is not UTF-8 text: bytes a file system accepts (e.g. a Latin-1 name),
    which Python holds as surrogate escapes. TensorBoard writes its event files only under
    UTF-8 paths, so every run directory must be one; check before creating anything.

    Raises:
        ValueError: naming ``name``, the path as bytes and the first byte that is not UTF-8.

    Example:
        >>> check_utf8_path(os.fsdecode(b"runs/caf\\xe9"), "--out")
        Traceback (most recent call last):
        ...
        ValueError: --out b'runs/caf\\xe9' is not UTF-8 text (byte 0xe9); TensorBoard ...
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = os.fsencode(text[exc.start:exc.end])[:1]
        raise ValueError(f"{name} {os.fsencode(text)!r} is not UTF-8 text (byte 0x{bad.hex()}); "
                         "TensorBoard writes its event files only under UTF-8 paths: choose a "
                         "UTF-8 name") from None


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


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename or a new file in ``directory`` durable (fsync the directory); a no-op
    where the platform or file system cannot open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
