"""Several runs as one tidy frame: one row per run, step and metric (seaborn's long form)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from satkit import schema
from satkit.analysis.checks import require_columns
from satkit.analysis.runs import LONG_COLUMNS, Run, as_runs

__all__ = ["load_runs", "tidy_metrics"]


def tidy_metrics(runs: Sequence[Run], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """The metrics of several runs in tidy long form.

    Args:
        runs: loaded runs.
        metrics: metric columns to keep (default: every numeric column but ``step``).

    Returns:
        Columns ``run, alpha2, seed, loss, setting, noise, step, metric, value`` (``loss`` is
        the method, ``setting`` its main parameter, see :class:`Run`); ``run``, ``loss``,
        ``setting``, ``noise`` and ``metric`` are categoricals (a million-step run stays small);
        ``seed`` is nullable ``Int64``; boolean columns (``nonfinite``) become 0.0/1.0.

    Raises:
        RunError: a requested metric is missing from a run's metrics table.
    """
    blocks = []  # (run, metric names, values of shape (rows, metrics), steps)
    for run in runs:
        table = run.metrics
        names = [c for c in table.columns if c != "step" and _numeric(table[c])] \
            if metrics is None else list(metrics)
        require_columns(table, names, run.path / schema.METRICS)
        values = table[names].to_numpy(dtype="float64", na_value=np.nan)
        blocks.append((run, names, values, table["step"].to_numpy(dtype="int64")))
    if not blocks:
        return pd.DataFrame({c: [] for c in LONG_COLUMNS})
    # Build every column once, categoricals from integer codes: no per-row Python objects,
    # so a million-step run stays fast and small.
    all_names = list(dict.fromkeys(n for _, names, _, _ in blocks for n in names))
    position = {n: i for i, n in enumerate(all_names)}
    sizes = [values.size for _, _, values, _ in blocks]

    def per_run(values: list, dtype: str) -> np.ndarray:
        return np.concatenate([np.full(n, v, dtype=dtype) for v, n in zip(values, sizes,
                                                                            strict=True)])

    def labels(values: list) -> pd.Categorical:
        categories = list(dict.fromkeys(values))
        return pd.Categorical.from_codes(per_run([categories.index(v) for v in values],
                                                 "int16"), categories)

    seeds = per_run([-1 if r.seed is None else r.seed for r, _, _, _ in blocks], "int64")
    return pd.DataFrame({
        "run": labels([r.name for r, _, _, _ in blocks]),
        "alpha2": per_run([r.alpha2 for r, _, _, _ in blocks], "float64"),
        "seed": pd.arrays.IntegerArray(seeds, seeds < 0),
        "loss": labels([r.loss for r, _, _, _ in blocks]),
        "setting": labels([r.setting for r, _, _, _ in blocks]),
        "noise": labels([r.noise for r, _, _, _ in blocks]),
        "step": np.concatenate([np.tile(steps, len(names)) for _, names, _, steps in blocks]),
        "metric": pd.Categorical.from_codes(np.concatenate([
            np.full(len(steps), position[n], dtype="int16")
            for _, names, _, steps in blocks for n in names]), all_names),
        "value": np.concatenate([values.T.reshape(-1) for _, _, values, _ in blocks]),
    }, copy=False)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def load_runs(paths_or_glob, *, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Load run directories (or comparison directories, or a glob) into one tidy frame.

    Args:
        paths_or_glob: a path, a glob pattern, or a sequence of them; comparison directories
            expand to the run directories they hold.
        metrics: metric columns to keep (default all; a subset keeps a long run small).

    Returns:
        Tidy long frame ``run, alpha2, seed, loss, setting, noise, step, metric, value`` (see
        :func:`tidy_metrics`).

    Raises:
        RunError: a path or a required file is missing or corrupt.
    """
    return tidy_metrics(as_runs(paths_or_glob), metrics)
