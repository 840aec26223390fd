"""Compact in-memory keeping of metrics rows: columns of at most 8 bytes a value, and steps.

:class:`ColumnStore` keeps the rows of a recorder that has no sink to read them back from
(:class:`~satkit.hooks.fanout.Fanout`): one NumPy array per column (int64, float64 or bool),
grown geometrically, instead of one Python dict per row (about 1.7 KB a row). :class:`StepSet`
keeps which steps a recorder wrote, as arithmetic runs (a few integers for a whole run), so
rows read back from a table that also holds other runs' steps (a resumed run) can be told apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnStore", "StepSet"]


class ColumnStore:
    """Rows of fixed columns, kept as one NumPy array per column.

    Args:
        dtypes: column -> pandas/NumPy dtype name (``int64``, ``float64``, ``bool``), in table
            order (:func:`satkit.columns.column_dtypes`).

    Example:
        >>> store = ColumnStore({"step": "int64", "loss": "float64"})
        >>> store.extend([{"step": 0, "loss": 2.5}, {"step": 1, "loss": 2.25}])
        >>> store.frame()["loss"].tolist(), len(store)
        ([2.5, 2.25], 2)
    """

    def __init__(self, dtypes: Mapping[str, str]) -> None:
        self.dtypes = dict(dtypes)
        self._columns = {c: np.empty(0, dtype=d) for c, d in self.dtypes.items()}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (capacity included)."""
        return sum(a.nbytes for a in self._columns.values())

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` (dicts with every column)."""
        if not rows:
            return
        n, end = self._n, self._n + len(rows)
        capacity = len(next(iter(self._columns.values()), ()))
        if end > capacity:
            grown = max(end, 2 * capacity, 64)
            for c, a in self._columns.items():
                b = np.empty(grown, dtype=a.dtype)
                b[:n] = a[:n]
                self._columns[c] = b
        for c, a in self._columns.items():
            a[n:end] = [r[c] for r in rows]
        self._n = end

    def frame(self) -> pd.DataFrame:
        """The rows so far, a copy, as a DataFrame with the declared dtypes."""
        return pd.DataFrame({c: a[:self._n].copy() for c, a in self._columns.items()})


class StepSet:
    """A set of step indices kept as arithmetic runs ``(first, stride, count)``: a recorder's
    steps (every ``every``-th) are one run, so memory does not grow with the run's length.

    Example:
        >>> steps = StepSet()
        >>> steps.extend([0, 3, 6, 9]); steps.extend([10])
        >>> steps.runs, steps.contains(np.arange(11)).nonzero()[0].tolist()
        ([(0, 3, 4), (10, 0, 1)], [0, 3, 6, 9, 10])
    """

    def __init__(self) -> None:
        self._runs: list[list[int]] = []

    @property
    def runs(self) -> list[tuple[int, int, int]]:
        return [tuple(r) for r in self._runs]  # type: ignore[misc]

    def extend(self, steps: Sequence[int]) -> None:
        for s in steps:
            s = int(s)
            last = self._runs[-1] if self._runs else None
            if last is not None and last[2] == 1 and s > last[0]:
                last[1], last[2] = s - last[0], 2
            elif last is not None and last[2] > 1 and s == last[0] + last[1] * last[2]:
                last[2] += 1
            else:
                self._runs.append([s, 0, 1])

    def contains(self, steps: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``steps`` are in the set."""
        steps = np.asarray(steps, dtype=np.int64)
        found = np.zeros(steps.shape, dtype=bool)
        for first, stride, count in self._runs:
            offset = steps - first
            if stride == 0:
                found |= offset == 0
            else:
                found |= (offset >= 0) & (offset <= stride * (count - 1)) & (offset % stride == 0)
        return found
