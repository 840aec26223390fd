"""The type checks of a run's files (satkit.analysis.checks), in both directions: what every
writer of satkit produces passes, and each wrong type is refused naming the file, the column or
field and what was expected."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from satkit import schema
from satkit.analysis import RunError
from satkit.analysis.checks import check_columns, check_fields, check_metrics


@pytest.mark.parametrize(("kind", "good", "bad"), [
    ("integer", [0, 3, 2.0, -1], [2.5, "3", True, None, [1], math.nan]),
    ("integer or null", [None, 7], [1.5, "x"]),
    ("number", [0, 0.5, -3, math.nan, math.inf], ["0.5", True, None, [1], {"a": 1}]),
    ("number or null", [None, 1.5], ["many", [1]]),
    ("string", ["", "cpu"], [None, 1, ["a"]]),
    ("string or null", [None, "x"], [0, False]),
    ("boolean", [True, False], [0, 1, "true", None]),
    ("list of numbers", [[], [0.9, 0.99], [1, 2]], [[0.9, "x"], (0.9,), 0.9, [True], None]),
    ("list of strings", [[], ["entropy"]], [["entropy", 1], ("entropy",), "entropy", None]),
])
def test_json_types_accept_and_refuse(kind, good, bad):
    for value in good:
        check_fields({"f": value}, {"f": kind}, "x.json")
    for value in bad:
        with pytest.raises(RunError, match=rf"^x.json: field 'f' must be an? {kind}; got "):
            check_fields({"f": value}, {"f": kind}, "x.json")


def test_absent_and_undeclared_fields_pass():
    check_fields({"other": object()}, {"epochs": "integer"}, "config.json")


@pytest.mark.parametrize(("dtype", "good", "bad", "shown"), [
    ("int64", [np.array([0, 1, 2]), np.array([0.0, 5.0])],
     [np.array([0.0, 1.5]), np.array([1.0, np.nan]), np.array(["1", "2"], dtype=object),
      np.array([True, False])], None),
    ("Int64", [np.array([0, 1]), pd.array([1, None], dtype="Int64"), np.array([3.0, np.nan])],
     [np.array([3.0, 4.5]), np.array([np.inf, 1.0])], "whole numbers or <NA> (Int64)"),
    ("float64", [np.array([0.5, np.nan]), np.array([1, 2])],
     [np.array(["0.5", "high"], dtype=object), np.array([True, False])], "numbers (float64)"),
    ("bool", [np.array([True, False]), np.array([0, 1])], [np.array([0, 2]),
                                                          np.array(["True"], dtype=object)],
     "booleans (bool)"),
])
def test_table_dtypes_accept_and_refuse(dtype, good, bad, shown):
    for values in good:
        check_columns(pd.DataFrame({"c": values}), {"c": dtype}, "t.parquet")
    for values in bad:
        with pytest.raises(RunError, match=r"^t.parquet: column 'c' must hold ") as info:
            check_columns(pd.DataFrame({"c": values}), {"c": dtype}, "t.parquet")
        assert shown is None or shown in str(info.value)


def test_the_message_shows_the_first_bad_value_and_its_row():
    frame = pd.DataFrame({"first_saturated_step": [1.0, 2.0, 7.25, 0.5]})
    with pytest.raises(RunError, match=r"got float64 values, e.g. 7.25 in row 2$"):
        check_columns(frame, {"first_saturated_step": "Int64"}, "samples.parquet")


def test_metrics_need_whole_steps_and_numbers_everywhere():
    good = pd.DataFrame({"step": [0, 1], "loss": [0.5, 0.4], "batch_size": [8, 8],
                         "nonfinite": [False, True], "a_new_column": [1.0, 2.0]})
    check_metrics(good, "metrics.parquet")
    with pytest.raises(RunError, match="column 'step' must hold whole numbers"):
        check_metrics(good.assign(step=[0.0, 0.5]), "metrics.parquet")
    with pytest.raises(RunError, match=r"column 'a_new_column' must hold numbers; got object "
                                       r"values, e.g. 'x' in row 1"):
        check_metrics(good.assign(a_new_column=[1.0, "x"]), "metrics.parquet")


def test_every_declared_type_is_one_the_checker_knows():
    for kinds in (schema.CONFIG_TYPES, schema.SUMMARY_TYPES):
        for kind in kinds.values():
            for part in kind.split(" or "):
                assert part in ("null", "string", "integer", "number", "boolean",
                                "list of numbers", "list of strings"), kind
    assert set(schema.EPOCH_DTYPES.values()) <= {"int64", "float64"}
