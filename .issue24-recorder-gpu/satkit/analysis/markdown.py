"""A tiny Markdown (GitHub pipe) table formatter, so satkit does not need ``tabulate``, and
the number formats every table shares (three significant figures; an interval's half-width
to two)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["Format", "format_interval", "format_number", "format_sig", "markdown_table"]

#: A number format: a format spec (``".2f"``) or a function of the value.
Format = str | Callable[[float], str]


def format_sig(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, trailing zeros kept (they are
    significant); numbers with more integer digits than that are rounded to a whole number
    rather than written with an exponent (a step count stays a step count).

    Example:
        >>> format_sig(0.0021), format_sig(0.00683), format_sig(31.77), format_sig(5.0)
        ('0.00210', '0.00683', '31.8', '5.00')
        >>> format_sig(148.0), format_sig(99.96), format_sig(1234.5), format_sig(-2.5e-7)
        ('148', '100', '1234', '-2.50e-07')
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{value:#.{digits}g}".removesuffix(".")  # 99.95 -> "100.", not a decimal


def format_number(value: float, fmt: Format) -> str:
    """``value`` in ``fmt``: a format spec or a function (such as :func:`format_sig`)."""
    return fmt(value) if callable(fmt) else format(value, fmt)


def format_interval(mean: float, half_width: float, fmt: Format = format_sig) -> str:
    """``"mean ± half-width"``, or the mean alone when the half-width is not finite (one
    seed has no interval: never ``"± nan"``).

    With the default format the mean has three significant figures and the half-width two
    (:func:`format_sig`); an explicit ``fmt`` formats both.

    Example:
        >>> format_interval(0.00212, 0.000314), format_interval(148.3, 12.6)
        ('0.00212 ± 0.00031', '148 ± 13')
        >>> format_interval(4.2, float("nan")), format_interval(2.0, 12.7, ".1f")
        ('4.20', '2.0 ± 12.7')
    """
    if not math.isfinite(half_width):
        return format_number(mean, fmt)
    if fmt is format_sig:
        return f"{format_sig(mean)} ± {format_sig(half_width, 2)}"
    return f"{format_number(mean, fmt)} ± {format_number(half_width, fmt)}"


def _cell(value, fmt: Format, na: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return na
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return format_number(float(value), fmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, *, floatfmt: Format = format_sig,
                   formats: Mapping[str, Format] | None = None, na: str = "–") -> str:
    """Render a DataFrame as a GitHub-flavoured Markdown table (index not included).

    Args:
        frame: the table.
        floatfmt: format of float cells: a format spec (``".2f"``) or a function; default
            three significant figures (:func:`format_sig`). Integers print as they are.
        formats: per-column formats overriding ``floatfmt`` (e.g. ``{"pvalue": ".3g"}``).
        na: text for missing values (NaN, None, ``<NA>``).

    Returns:
        The table, one line per row plus header and separator, newline-terminated; numeric
        columns are right-aligned; ``|`` inside cells and headers is escaped. An empty frame
        gives the header and separator only.

    Example:
        >>> print(markdown_table(pd.DataFrame({"a": [1.234, 0.00213], "b": ["x|y", "z"]})),
        ...       end="")
        | a | b |
        |---:|---|
        | 1.23 | x\\|y |
        | 0.00213 | z |
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
