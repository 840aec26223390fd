"""Raw rows to table rows, on the host (the writer thread): means from sums and counts,
quantiles of the logged per-position values, fractions, flags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from satkit.columns import QUANTILES, column_names, threshold_column
from satkit.hooks.layout import LOGGED, Layout

__all__ = ["finalize", "nanquantiles"]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def nanquantiles(values: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """``np.nanquantile(values, qs, axis=1)`` (linear interpolation), without its per-row loop:
    one sort of the (R, W) array (NaN sorts last) and two gathers. All-NaN rows give NaN.

    Returns:
        (len(qs), R) float64.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] == 0:
        return np.full((len(qs), values.shape[0]), np.nan)
    ordered = np.sort(values, axis=1)
    count = (~np.isnan(values)).sum(axis=1)  # (R,)
    at = np.asarray(qs, dtype=np.float64)[:, None] * np.maximum(count - 1, 0)  # (Q, R)
    lo = np.floor(at).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    below = np.take_along_axis(ordered, lo.T, axis=1).T
    above = np.take_along_axis(ordered, hi.T, axis=1).T
    with np.errstate(invalid="ignore"):
        out = below + (at - lo) * (above - below)
    out[:, count == 0] = np.nan
    return out


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
    kinds: dict[str, list[str]] = {}  # value -> its quantiles, each value sorted once
    for q in layout.quantities:
        if q.reduce in QUANTILES and q.reduce not in kinds.setdefault(q.value, []):
            kinds[q.value].append(q.reduce)
    quantile = {}
    for v, wanted in kinds.items():
        if len(steps) == 0:
            continue
        found = nanquantiles(logged[:, LOGGED.index(v)], [QUANTILES[k] for k in wanted])
        quantile.update({(v, k): found[i] for i, k in enumerate(wanted)})
    for q in layout.quantities:
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
    names = column_names(layout.thresholds, layout.opt_in)
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
