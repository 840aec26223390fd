"""The recorder's rows, written to every sink exactly once, and read back for ``metrics()``.

A row is kept in memory only until every sink has it. ``metrics()`` then reads the rows back
from a sink that can (one with ``read_metrics()``, e.g. :class:`satkit.sinks.TableSink`), plus
the rows that sink has not had yet; with no such sink (none at all, or only TensorBoard) every
row is also kept in a :class:`~satkit.hooks.store.ColumnStore` (8 bytes a value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from satkit.hooks.store import ColumnStore, StepSet
from satkit.sinks.base import Histogram, optional_methods

__all__ = ["Fanout"]


class Fanout:
    """The rows some sink has not had yet, a cursor per sink, and what :meth:`frame` reads.

    A sink that raises keeps its cursor, so it gets the same rows again at the next
    :meth:`write`; the other sinks are written anyway. Rows and histograms are kept only
    until every sink (that takes them) has them. The first sink with ``read_metrics()`` is the
    *reader*: :meth:`frame` is what it reads back (only the steps added here: a resumed table
    holds earlier ones) plus the rows it has not had; without a reader every added row is
    kept in a :class:`ColumnStore` as well.

    Args:
        sinks: objects with ``write(rows)`` and ``close()`` (see :mod:`satkit.sinks.base`).
        dtypes: the metrics columns and their dtypes, in table order.

    Raises:
        TypeError: a sink without ``write``/``close``.
    """

    def __init__(self, sinks: Sequence[Any], dtypes: Mapping[str, str]) -> None:
        self.sinks = tuple(sinks)
        self._methods = [optional_methods(s) for s in self.sinks]
        self.dtypes = dict(dtypes)
        self._rows: list[dict[str, Any]] = []  # not yet written to every sink
        readers = [i for i, m in enumerate(self._methods) if "read_metrics" in m]
        self._reader = readers[0] if readers else None
        self._store = ColumnStore(self.dtypes) if self._reader is None else None
        self._steps = StepSet()  # the steps added, to pick them out of the reader's table
        self._histograms: list[Histogram] = []
        self._written = [0] * len(self.sinks)
        self._hist_written = [0] * len(self.sinks)

    @property
    def wants_histograms(self) -> bool:
        """Whether some sink takes histograms."""
        return any("write_histograms" in m for m in self._methods)

    @property
    def pending(self) -> int:
        """Rows kept because some sink has not had them yet."""
        return len(self._rows)

    def add(self, rows: list[dict[str, Any]], histograms: list[Histogram]) -> None:
        """Take new rows (and histograms) for the sinks; kept until every sink has them."""
        if self._store is not None:
            self._store.extend(rows)
        else:
            self._steps.extend([r["step"] for r in rows])
        if self.sinks:
            self._rows.extend(rows)
        if self.wants_histograms:
            self._histograms.extend(histograms)

    def write(self) -> list[Exception]:
        """Give every sink the rows (and histograms) it has not had, then drop the rows and
        histograms every sink has; returns the errors."""
        errors: list[Exception] = []
        for i, (sink, methods) in enumerate(zip(self.sinks, self._methods, strict=True)):
            try:
                if self._written[i] < len(self._rows):
                    sink.write(self._rows[self._written[i]:])
                    self._written[i] = len(self._rows)
                write_hist = methods.get("write_histograms")
                if write_hist is None:
                    self._hist_written[i] = len(self._histograms)
                elif self._hist_written[i] < len(self._histograms):
                    write_hist(self._histograms[self._hist_written[i]:])
                    self._hist_written[i] = len(self._histograms)
            except Exception as err:  # every sink gets its chance; the caller re-raises
                err.add_note(f"raised by sink {sink!r}; its rows are kept and retried")
                errors.append(err)
        done = min(self._written, default=len(self._rows))
        del self._rows[:done]
        self._written = [w - done for w in self._written]
        done = min(self._hist_written, default=len(self._histograms))
        del self._histograms[:done]
        self._hist_written = [w - done for w in self._hist_written]
        return errors

    def frame(self) -> pd.DataFrame:
        """Every row added so far, in the order added, with :attr:`dtypes`.

        Raises:
            Exception: what the reader's ``read_metrics()`` raised (its file was removed).
        """
        columns = list(self.dtypes)
        if self._store is not None:
            return self._store.frame()
        unread = self._rows[self._written[self._reader]:]
        table = self._methods[self._reader]["read_metrics"]()
        if "step" in table.columns and len(table):
            steps = table["step"].to_numpy()
            keep = self._steps.contains(steps) & ~np.isin(steps, [r["step"] for r in unread])
            table = table.loc[keep].reindex(columns=columns)
        else:
            table = pd.DataFrame(columns=columns)
        frames = [table] + ([pd.DataFrame(unread, columns=columns)] if unread else [])
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        return frame.reset_index(drop=True).astype(self.dtypes)

    def write_samples(self, frame: pd.DataFrame) -> None:
        """Give the samples table to the sinks that take it."""
        for methods in self._methods:
            if "write_samples" in methods:
                methods["write_samples"](frame)

    @property
    def takes_samples(self) -> bool:
        return any("write_samples" in m for m in self._methods)
