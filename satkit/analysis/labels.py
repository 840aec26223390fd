"""Human-readable names for runs (shared by tables, reports and figure legends)."""

from __future__ import annotations

import math

__all__ = ["format_alpha2", "method_label"]


def format_alpha2(alpha2: float) -> str:
    """``0.1 -> "0.1"``, ``1.0 -> "1"``, NaN -> ``"?"``."""
    return "?" if alpha2 is None or math.isnan(alpha2) else f"{alpha2:g}"


def method_label(alpha2: float, noise: str = "annealed") -> str:
    """The legend / table name of a method.

    Example:
        >>> method_label(0.0), method_label(0.1), method_label(0.1, "free")
        ('softmax (α²=0)', 'Noisy Softmax α²=0.1', 'Noisy Softmax α²=0.1 (free)')
    """
    if alpha2 == 0 or noise == "none":
        return "softmax (α²=0)"
    label = f"Noisy Softmax α²={format_alpha2(alpha2)}"
    return label if noise in ("annealed", "", None) else f"{label} ({noise})"
