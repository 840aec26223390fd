"""Human-readable names for runs (shared by tables, reports and figure legends).

A *method* is what a run trained with (:data:`satkit.methods.METHODS`): plain softmax, Noisy
Softmax at some alpha2 (and noise variant), or one of the softmax regularisers. Its *setting*
is the method's main parameter as text (``"ε=0.1"`` for label smoothing); runs of the same
method but different settings are different methods in every table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from satkit.methods import METHODS, NOISY, SOFTMAX, method_order, setting_values

__all__ = ["METHODS", "format_alpha2", "method_label", "method_order", "method_setting"]


def format_alpha2(alpha2: float) -> str:
    """``0.1 -> "0.1"``, ``1.0 -> "1"``, NaN -> ``"?"``."""
    return "?" if alpha2 is None or math.isnan(alpha2) else f"{alpha2:g}"


def method_setting(loss: str, config: Mapping) -> str:
    """The main parameter(s) of a method as text, read from a run's config.

    Empty for softmax and Noisy Softmax (alpha2 and the noise variant name those), and for a
    setting the config does not record; one it sets to None takes the method's default.

    Example:
        >>> method_setting("label-smoothing", {"epsilon": 0.1})
        'ε=0.1'
        >>> method_setting("cosface", {"scale": 30.0, "margin": None})
        's=30 m=0.35'
        >>> method_setting("noisy", {"alpha2": 0.1})
        ''
    """
    if loss not in METHODS:
        return ""
    values = setting_values(loss, config)
    symbols = {s.field: s.symbol for s in METHODS[loss].settings}
    return " ".join(f"{symbols[f]}={v:g}" for f, v in values.items()
                    if isinstance(v, int | float) and not isinstance(v, bool))


def method_label(alpha2: float, noise: str = "annealed", loss: str | None = None,
                 setting: str = "") -> str:
    """The legend / table name of a method.

    Args:
        alpha2: Noisy Softmax's alpha^2 (0 for every other method).
        noise: the noise variant (``"none"`` = no noise).
        loss: the method (a key of :data:`satkit.methods.METHODS`); None means softmax or
            Noisy Softmax, decided by alpha2 (runs written before the regularisers existed).
        setting: the method's main parameter as text (:func:`method_setting`).

    Example:
        >>> method_label(0.0), method_label(0.1), method_label(0.1, "free")
        ('softmax (α²=0)', 'Noisy Softmax α²=0.1', 'Noisy Softmax α²=0.1 (free)')
        >>> method_label(0.0, "none", "label-smoothing", "ε=0.1"), method_label(0, loss="focal")
        ('label smoothing ε=0.1', 'focal loss')
    """
    if loss is not None and loss not in (SOFTMAX, NOISY):
        name = METHODS[loss].label if loss in METHODS else loss
        return f"{name} {setting}" if setting else name
    if loss == SOFTMAX or alpha2 == 0 or noise == "none":
        return "softmax (α²=0)"
    label = f"Noisy Softmax α²={format_alpha2(alpha2)}"
    return label if noise in ("annealed", "", None) else f"{label} ({noise})"
