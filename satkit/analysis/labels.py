"""Human-readable names for runs (shared by tables, reports and figure legends).

A *method* is what a run trained with: plain softmax, Noisy Softmax at some alpha2 (and noise
variant), or one of the softmax regularisers of issue 7 (``loss`` in a run's config). Its
*setting* is the method's main parameter as text (``"ε=0.1"`` for label smoothing); runs of
the same method but different settings are different methods in every table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["METHODS", "format_alpha2", "method_label", "method_order", "method_setting"]

#: The methods in the order tables and legends list them (the trainer's ``LOSS_NAMES``),
#: each with its display name and the config fields of its main parameter (field, symbol).
METHODS: Mapping[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "softmax": ("softmax", ()),
    "noisy": ("Noisy Softmax", ()),
    "label-smoothing": ("label smoothing", (("epsilon", "ε"),)),
    "confidence-penalty": ("confidence penalty", (("beta", "β"),)),
    "disturb-label": ("DisturbLabel", (("disturb_alpha", "α"),)),
    "focal": ("focal loss", (("gamma", "γ"),)),
    "temperature": ("temperature", (("temperature", "T"),)),
    "cosface": ("CosFace", (("scale", "s"), ("margin", "m"))),
    "arcface": ("ArcFace", (("scale", "s"), ("margin", "m"))),
}
# The margin heads' defaults when the config leaves ``margin`` unset (as satkit.heads does;
# kept here so the analysis does not import torch).
_DEFAULT_MARGIN = {"cosface": 0.35, "arcface": 0.5}


def format_alpha2(alpha2: float) -> str:
    """``0.1 -> "0.1"``, ``1.0 -> "1"``, NaN -> ``"?"``."""
    return "?" if alpha2 is None or math.isnan(alpha2) else f"{alpha2:g}"


def method_setting(loss: str, config: Mapping) -> str:
    """The main parameter(s) of a method as text, read from a run's config.

    Empty for softmax and Noisy Softmax (alpha2 and the noise variant name those), and for
    a parameter the config lacks.

    Example:
        >>> method_setting("label-smoothing", {"epsilon": 0.1})
        'ε=0.1'
        >>> method_setting("cosface", {"scale": 30.0, "margin": None})
        's=30 m=0.35'
        >>> method_setting("noisy", {"alpha2": 0.1})
        ''
    """
    parts = []
    for field, symbol in METHODS.get(loss, ("", ()))[1]:
        value = config.get(field)
        if value is None and field == "margin":
            value = _DEFAULT_MARGIN.get(loss)
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{symbol}={value:g}")
    return " ".join(parts)


def method_order(loss: str) -> int:
    """Position of a method in tables and legends (softmax first; unknown names last)."""
    names = list(METHODS)
    return names.index(loss) if loss in METHODS else len(names)


def method_label(alpha2: float, noise: str = "annealed", loss: str | None = None,
                 setting: str = "") -> str:
    """The legend / table name of a method.

    Args:
        alpha2: Noisy Softmax's alpha^2 (0 for every other method).
        noise: the noise variant (``"none"`` = no noise).
        loss: the method (a key of :data:`METHODS`); None means softmax or Noisy Softmax,
            decided by alpha2 (runs written before the regularisers existed).
        setting: the method's main parameter as text (:func:`method_setting`).

    Example:
        >>> method_label(0.0), method_label(0.1), method_label(0.1, "free")
        ('softmax (α²=0)', 'Noisy Softmax α²=0.1', 'Noisy Softmax α²=0.1 (free)')
        >>> method_label(0.0, "none", "label-smoothing", "ε=0.1"), method_label(0, loss="focal")
        ('label smoothing ε=0.1', 'focal loss')
    """
    if loss is not None and loss not in ("softmax", "noisy"):
        name = METHODS[loss][0] if loss in METHODS else loss
        return f"{name} {setting}" if setting else name
    if loss == "softmax" or alpha2 == 0 or noise == "none":
        return "softmax (α²=0)"
    label = f"Noisy Softmax α²={format_alpha2(alpha2)}"
    return label if noise in ("annealed", "", None) else f"{label} ({noise})"
