"""Type checks of what a run directory holds: the columns of its tables, the fields of its JSON.

:func:`satkit.analysis.load_run` runs them on every file it reads, so a file with the right
columns but the wrong types (text where a number belongs, a fractional step, a list where a
figure belongs) is refused there, in one line naming the file, the column or field and what was
expected, instead of a pandas traceback or a wrong figure further down. What is expected is
declared in :mod:`satkit.schema` (``SAMPLE_COLUMNS``, ``EPOCH_DTYPES``, ``CONFIG_TYPES``,
``SUMMARY_TYPES``); every metrics column holds numbers (``step``: whole numbers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from satkit.analysis.errors import RunError

__all__ = ["check_columns", "check_fields", "check_metrics", "require_columns"]

_WHAT = {"int64": "whole numbers", "Int64": "whole numbers or <NA>", "float64": "numbers",
         "number": "numbers", "bool": "booleans"}


def _matches(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False  # never a number here
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "list of numbers":
        return isinstance(value, list) and all(_matches(v, "number") for v in value)
    if kind == "list of strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise ValueError(f"unknown JSON type {kind!r} in satkit.schema")


def require_columns(frame: pd.DataFrame, required: Sequence[str],
                    path: str | os.PathLike) -> None:
    """Raises RunError naming the file and the ``required`` columns ``frame`` lacks."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunError(f"{path}: missing column(s) {missing}; has {list(frame.columns)}")


def check_fields(data: Mapping[str, Any], types: Mapping[str, str],
                 path: str | os.PathLike) -> None:
    """Check the fields of a JSON object against ``types`` (field -> JSON type, see
    :data:`satkit.schema.SUMMARY_TYPES`); absent and undeclared fields pass.

    Raises:
        RunError: naming the file, the field, the type expected and the value found.

    Example:
        >>> check_fields({"epochs": "many"}, {"epochs": "integer or null"}, "config.json")
        Traceback (most recent call last):
        ...
        satkit.analysis.errors.RunError: config.json: field 'epochs' must be an integer or ...
    """
    for name, expected in types.items():
        if name in data and not any(_matches(data[name], k) for k in expected.split(" or ")):
            article = "an" if expected[0] in "aeiou" else "a"
            found = json.dumps(data[name], default=str)
            found = found if len(found) <= 60 else found[:57] + "..."
            raise RunError(f"{path}: field {name!r} must be {article} {expected}; got {found}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _check_column(series: pd.Series, expected: str, path: str | os.PathLike) -> None:
    """``expected``: a pandas dtype of the schema (int64, Int64, float64, bool) or "number"
    (any numeric dtype, booleans included)."""
    values = series
    if not pd.api.types.is_numeric_dtype(series.dtype):  # text, objects, dates
        good = series.map(_is_number)
        if not good.all():
            _refuse(series, good, expected, path)
        values = pd.to_numeric(series)  # numbers held as Python objects
    if pd.api.types.is_bool_dtype(values.dtype):
        good = pd.Series(expected in ("bool", "number"), index=values.index)
    elif expected == "bool":
        good = values.isin([0, 1])
    elif expected in ("int64", "Int64") and not pd.api.types.is_integer_dtype(values.dtype):
        floats = values.astype("float64").to_numpy()
        good = pd.Series(np.isfinite(floats) & (floats == np.floor(floats)), index=values.index)
        if expected == "Int64":
            good |= values.isna()
    else:
        return
    if not good.all():
        _refuse(series, good, expected, path)


def _refuse(series: pd.Series, good: pd.Series, expected: str, path: str | os.PathLike) -> None:
    row = int(np.flatnonzero(~good.to_numpy(dtype=bool))[0])
    value = series.iloc[row]
    value = value.item() if isinstance(value, np.generic) else value
    dtype = "" if expected == "number" else f" ({expected})"
    raise RunError(f"{path}: column {series.name!r} must hold {_WHAT[expected]}{dtype}; got "
                   f"{series.dtype} values, e.g. {value!r} in row {row}")


def check_columns(frame: pd.DataFrame, dtypes: Mapping[str, str],
                  path: str | os.PathLike) -> None:
    """Check the columns of a table against ``dtypes`` (column -> pandas dtype of the schema);
    absent and undeclared columns pass. A column of whole numbers may be read as float64.

    Raises:
        RunError: naming the file, the column, what it must hold and a value that is not that.

    Example:
        >>> frame = pd.DataFrame({"first_saturated_step": [3.0, 4.5]})
        >>> check_columns(frame, {"first_saturated_step": "Int64"}, "run/samples.parquet")
        Traceback (most recent call last):
        ...
        satkit.analysis.errors.RunError: run/samples.parquet: column 'first_saturated_step' must \
hold whole numbers or <NA> (Int64); got float64 values, e.g. 4.5 in row 1
    """
    for column, expected in dtypes.items():
        if column in frame.columns:
            _check_column(frame[column], expected, path)


def check_metrics(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Check the metrics table: ``step`` holds whole numbers, every other column numbers (or
    booleans: the ``nonfinite`` flag).

    Raises:
        RunError: as :func:`check_columns`.
    """
    check_columns(frame, {column: "int64" if column == "step" else "number"
                          for column in frame.columns}, path)
