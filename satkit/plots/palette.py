"""Colour-blind-safe colours and line styles, fixed per alpha2 across every figure.

Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies and
legible in greyscale print by lightness). The paper's alpha2 values have fixed colours, so
"alpha2 = 0.1" is the same blue in every figure whatever else is plotted; other values get a
colour that depends only on the value. Line style encodes the noise variant.
"""

from __future__ import annotations

import math

__all__ = ["OKABE_ITO", "alpha2_color", "alpha2_palette", "noise_linestyle", "run_style"]

#: The Okabe-Ito palette (Okabe & Ito 2008), black first.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7")
_FIXED = {0.0: "#000000", 0.05: "#56B4E9", 0.1: "#0072B2", 0.5: "#E69F00", 1.0: "#D55E00"}
# For other alpha2 values: the remaining Okabe-Ito colours plus two from Paul Tol's
# colour-blind-safe "muted" set (yellow #F0E442 is left out: unreadable on white).
_SPARE = ("#009E73", "#CC79A7", "#882255", "#44AA99", "#999933", "#332288")
_LINESTYLES = {"none": "-", "annealed": "-", "amplitude": "--", "free": ":", "negative": "-."}


def alpha2_color(alpha2: float) -> str:
    """The colour of an alpha2 value (hex string); the same value always gets the same one.

    Example:
        >>> alpha2_color(0.0), alpha2_color(0.1)
        ('#000000', '#0072B2')
    """
    for value, colour in _FIXED.items():
        if math.isclose(alpha2, value, rel_tol=1e-9, abs_tol=1e-12):
            return colour
    if alpha2 is None or math.isnan(alpha2) or alpha2 <= 0:
        return "#999999"
    return _SPARE[round(4 * math.log10(alpha2)) % len(_SPARE)]


def alpha2_palette(values) -> dict[float, str]:
    """``{alpha2: colour}`` for the given values (see :func:`alpha2_color`)."""
    return {float(v): alpha2_color(float(v)) for v in values}


def noise_linestyle(noise: str) -> str:
    """Solid for softmax and annealed noise, dashed/dotted for the ablation variants."""
    return _LINESTYLES.get(noise, "-")


def run_style(alpha2: float, noise: str = "annealed") -> dict:
    """Keyword arguments for ``ax.plot``: ``color``, ``linestyle`` and ``label``."""
    from satkit.analysis.labels import method_label

    return {"color": alpha2_color(alpha2), "linestyle": noise_linestyle(noise),
            "label": method_label(alpha2, noise)}
