"""Raw rows to table rows, on the host (the writer thread): means from sums and counts,
quantiles of the logged per-position values, fractions, flags."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from satkit.hooks import quantities
from satkit.hooks.quantities import QUANTILES, column_names, threshold_column
from satkit.hooks.stats import LOGGED, Layout

__all__ = ["finalize"]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def finalize(raw: np.ndarray, logged: np.ndarray, steps: Sequence[int],
             layout: Layout) -> list[dict[str, Any]]:
    """Turn raw rows into rows of the ``metrics`` table (host side, float64).

    Args:
        raw: raw rows, (R, K), reduced over ranks already.
        logged: (R, 3, W) the :data:`LOGGED` per-position values of every rank (NaN padding).
        steps: the step index of each row, length R.
        layout: the layout of ``raw``.

    Returns:
        R dicts with the keys of :func:`column_names`, in that order.
    """
    raw = np.asarray(raw, dtype=np.float64)
    c = {name: raw[:, i] for i, name in enumerate(layout.names)}
    n, nf = c["n"], c["n_finite"]
    cols: dict[str, np.ndarray] = {}
    needed = {(q.value, q.reduce) for q in quantities.QUANTITIES if q.reduce in QUANTILES}
    # An all-NaN step (no finite position) gives NaN quantiles without a RuntimeWarning.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        quantile = {(v, kind): np.nanquantile(logged[:, LOGGED.index(v)], QUANTILES[kind], axis=1)
                    for v, kind in needed} if len(steps) else {}
    for q in quantities.QUANTITIES:
        if q.reduce == "mean":
            cols[q.name] = _div(c[f"sum_{q.value}"], nf)
        elif q.reduce == "max":
            cols[q.name] = np.where(nf > 0, c[f"max_{q.value}"], np.nan)
        elif q.reduce in QUANTILES:
            cols[q.name] = quantile[(q.value, q.reduce)]
        elif q.reduce == "fraction":
            fracs = [_div(c[f"count_{q.value}_{i}"], nf) for i in range(len(layout.thresholds))]
            for tau, frac in zip(layout.thresholds, fracs, strict=True):
                cols[threshold_column(tau, q.name)] = frac
            if q.alias_of_last:
                cols[q.name] = fracs[-1]
        elif q.reduce == "loss":
            cols[q.name] = np.where(c["loss_given"] > 0, _div(c["loss_sum"], n),
                                    _div(c["sum_ce"], nf))
        elif q.reduce == "scalar":
            cols[q.name] = c[q.name]
    loss_bad = (((c["loss_given"] > 0) & ~np.isfinite(c["loss_sum"]))
                | ((n > 0) & ~np.isfinite(cols["loss"])))  # an empty step has no loss
    names = column_names(layout.thresholds)
    rows = []
    for r, step in enumerate(steps):
        row: dict[str, Any] = {}
        for name in names:
            if name == "step":
                row[name] = int(step)
            elif name == "batch_size":
                row[name] = int(n[r])
            elif name == "nonfinite":
                row[name] = bool(nf[r] < n[r] or loss_bad[r])
            else:
                row[name] = float(cols[name][r])
        rows.append(row)
    return rows
