"""Argument checks shared by the whole package: one wording for every "bad value" error.

Each check returns the value in its canonical type (``float`` for reals) or raises ``error``
(``ValueError`` unless the caller passes its own subclass, such as the trainer's
``ConfigError``) with a message that names the argument and says what was expected. A ``bool``
is never accepted as a number (``True`` is an ``int`` in Python, but never meant as one here).

Pure Python; no torch import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["check_bool", "check_choice", "check_int", "check_real", "check_reals",
           "is_int", "is_real"]


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """A finite ``int`` or ``float`` that is not a ``bool``."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def check_int(name: str, value: object, *, minimum: int | None = None,
              maximum: int | None = None, optional: bool = False,
              error: type[Exception] = ValueError, bound: str | None = None) -> Any:
    """Return ``value`` if it is an int in ``[minimum, maximum]`` (or None when ``optional``).

    ``bound`` says what ``maximum`` is; the message repeats it after the value.

    Example:
        >>> check_int("epochs", 3, minimum=1)
        3
        >>> check_int("epochs", True, minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an integer >= 1, got True
        >>> check_int("every", 10**9, minimum=1, maximum=1000, bound="a typo beyond it")
        Traceback (most recent call last):
        ...
        ValueError: every must be an integer in [1, 1000], got 1000000000 (1000: a typo beyond it)
    """
    if optional and value is None:
        return None
    ok = is_int(value)
    if ok and minimum is not None:
        ok = value >= minimum  # type: ignore[operator]
    if ok and maximum is not None:
        ok = value <= maximum  # type: ignore[operator]
    if not ok:
        if minimum is not None and maximum is not None:
            what = f"an integer in [{minimum}, {maximum}]"
        elif minimum is not None:
            what = f"an integer >= {minimum}"
        elif maximum is not None:
            what = f"an integer <= {maximum}"
        else:
            what = "an integer"
        why = f" ({maximum}: {bound})" if bound and maximum is not None else ""
        raise error(f"{name} must be {what}{' or None' if optional else ''}, got {value!r}{why}")
    return value


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    low = "-inf" if lo is None else f"{lo:g}"
    high = "inf" if hi is None else f"{hi:g}"
    return f"{left}{low}, {high}{right}"


def check_real(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False, optional: bool = False,
               error: type[Exception] = ValueError) -> Any:
    """Return ``float(value)`` if it is a finite real in the interval (or None when optional).

    Example:
        >>> check_real("tau", 0.99, lo=0, hi=1, lo_open=True, hi_open=True)
        0.99
        >>> check_real("tau", float("nan"), lo=0, hi=1, lo_open=True, hi_open=True)
        Traceback (most recent call last):
        ...
        ValueError: tau must be a finite number in (0, 1), got nan
    """
    if optional and value is None:
        return None
    ok = is_real(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo  # type: ignore[operator]
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi  # type: ignore[operator]
    if not ok:
        raise error(f"{name} must be a finite number in {_interval(lo, hi, lo_open, hi_open)}"
                    f"{' or None' if optional else ''}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_reals(name: str, values: Iterable[object], *, increasing: bool = False,
                nonempty: bool = True, error: type[Exception] = ValueError,
                **interval: Any) -> tuple[float, ...]:
    """Check every value with :func:`check_real`; optionally strictly increasing, non-empty.

    Example:
        >>> check_reals("thresholds", [0.9, 0.99], lo=0, hi=1, lo_open=True, hi_open=True)
        (0.9, 0.99)
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise error(f"{name} must be a sequence of numbers, got {values!r}")
    out = tuple(check_real(name, v, error=error, **interval) for v in values)
    if nonempty and not out:
        raise error(f"{name} must hold at least one value")
    if increasing and list(out) != sorted(set(out)):
        raise error(f"{name} must be strictly increasing, got {list(out)!r}")
    return out


def check_choice(name: str, value: object, choices: Iterable[str], *,
                 error: type[Exception] = ValueError) -> str:
    """Return ``value`` if it is one of ``choices``; the message lists them.

    Example:
        >>> check_choice("xi_per", "batch", ("sample", "batch"))
        'batch'
    """
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise error(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_bool(name: str, value: object, *, error: type[Exception] = ValueError) -> bool:
    """Return ``value`` if it is a ``bool`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise error(f"{name} must be true or false, got {value!r}")
    return value
