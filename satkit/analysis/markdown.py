"""A tiny Markdown (GitHub pipe) table formatter, so satkit does not need ``tabulate``."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["markdown_table"]


def _cell(value, fmt: str, na: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return na
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return format(float(value), fmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, *, floatfmt: str = ".2f",
                   formats: Mapping[str, str] | None = None, na: str = "–") -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table (index not included).

    Args:
        frame: the table.
        floatfmt: format spec for float cells (``".2f"``); integers print as they are.
        formats: per-column format specs overriding ``floatfmt`` (e.g. ``{"pvalue": ".3g"}``).
        na: text for missing values (NaN, None, ``<NA>``).

    Returns:
        The table, one line per row plus header and separator, newline-terminated; numeric
        columns are right-aligned; ``|`` inside cells and headers is escaped. An empty frame
        gives the header and separator only.

    Example:
        >>> print(markdown_table(pd.DataFrame({"a": [1.234], "b": ["x|y"]})), end="")
        | a | b |
        |---:|---|
        | 1.23 | x\\|y |
    """
    formats = dict(formats or {})
    header = "| " + " | ".join(_cell(str(c), floatfmt, na) for c in frame.columns) + " |"
    align = ["---:" if pd.api.types.is_numeric_dtype(frame[c])
             and not pd.api.types.is_bool_dtype(frame[c]) else "---" for c in frame.columns]
    lines = [header, "|" + "|".join(align) + "|"]
    for row in frame.itertuples(index=False, name=None):
        cells = [_cell(v, formats.get(c, floatfmt), na)
                 for c, v in zip(frame.columns, row, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
