"""The recorder's rows, kept in memory and written to every sink exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from satkit.sinks.base import Histogram, optional_methods

__all__ = ["Fanout"]


class Fanout:
    """All rows recorded so far, and a cursor per sink of what it has received.

    A sink that raises keeps its cursor, so it gets the same rows again at the next
    :meth:`write`; the other sinks are written anyway. Histograms are kept only until every
    sink that takes them has them.

    Args:
        sinks: objects with ``write(rows)`` and ``close()`` (see :mod:`satkit.sinks.base`).

    Raises:
        TypeError: a sink without ``write``/``close``.
    """

    def __init__(self, sinks: Sequence[Any]) -> None:
        self.sinks = tuple(sinks)
        self._methods = [optional_methods(s) for s in self.sinks]
        self.rows: list[dict[str, Any]] = []
        self._histograms: list[Histogram] = []
        self._written = [0] * len(self.sinks)
        self._hist_written = [0] * len(self.sinks)

    @property
    def wants_histograms(self) -> bool:
        """Whether some sink takes histograms."""
        return any("write_histograms" in m for m in self._methods)

    def add(self, rows: list[dict[str, Any]], histograms: list[Histogram]) -> None:
        self.rows.extend(rows)
        if self.wants_histograms:
            self._histograms.extend(histograms)

    def write(self) -> list[Exception]:
        """Give every sink the rows (and histograms) it has not had; returns the errors."""
        errors: list[Exception] = []
        for i, (sink, methods) in enumerate(zip(self.sinks, self._methods, strict=True)):
            try:
                if self._written[i] < len(self.rows):
                    sink.write(self.rows[self._written[i]:])
                    self._written[i] = len(self.rows)
                write_hist = methods.get("write_histograms")
                if write_hist is None:
                    self._hist_written[i] = len(self._histograms)
                elif self._hist_written[i] < len(self._histograms):
                    write_hist(self._histograms[self._hist_written[i]:])
                    self._hist_written[i] = len(self._histograms)
            except Exception as err:  # every sink gets its chance; the caller re-raises
                err.add_note(f"raised by sink {sink!r}; its rows are kept and retried")
                errors.append(err)
        done = min(self._hist_written, default=len(self._histograms))
        del self._histograms[:done]
        self._hist_written = [w - done for w in self._hist_written]
        return errors

    def write_samples(self, frame: pd.DataFrame) -> None:
        """Give the samples table to the sinks that take it."""
        for methods in self._methods:
            if "write_samples" in methods:
                methods["write_samples"](frame)

    @property
    def takes_samples(self) -> bool:
        return any("write_samples" in m for m in self._methods)
