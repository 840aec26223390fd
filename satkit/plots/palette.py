"""Colour-blind-safe colours and line styles, fixed per method and alpha2 across every figure.

Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies and
legible in greyscale print by lightness). Softmax and Noisy Softmax are coloured by alpha2:
the paper's alpha2 values have fixed colours, so "alpha2 = 0.1" is the same blue in every
figure whatever else is plotted; other values get a colour that depends only on the value.
Each regulariser of issue 7 has a fixed colour of its own (the two Okabe-Ito colours alpha2
leaves free, then Paul Tol's colour-blind-safe "muted" set). Line style encodes the noise
variant; the normalised margin heads (CosFace, ArcFace) are dashed, since their clean p_y is
the margin-free s cos(theta) softmax rather than the training one.
"""

from __future__ import annotations

import math

from satkit.methods import METHODS, SOFTMAX

__all__ = ["METHOD_COLORS", "OKABE_ITO", "alpha2_color", "alpha2_palette", "method_color",
           "noise_linestyle", "run_style"]

#: The Okabe-Ito palette (Okabe & Ito 2008), black first.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7")
_FIXED = {0.0: "#000000", 0.05: "#56B4E9", 0.1: "#0072B2", 0.5: "#E69F00", 1.0: "#D55E00"}
# For other alpha2 values: the remaining Okabe-Ito colours plus two from Paul Tol's
# colour-blind-safe "muted" set (yellow #F0E442 is left out: unreadable on white).
_SPARE = ("#009E73", "#CC79A7", "#882255", "#44AA99", "#999933", "#332288")
_LINESTYLES = {"none": "-", "annealed": "-", "amplitude": "--", "free": ":", "negative": "-."}
#: The regularisers' fixed colours, from the catalogue (softmax and Noisy Softmax are
#: coloured by alpha2).
METHOD_COLORS = {m.name: m.color for m in METHODS.values() if m.color is not None}


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


def method_color(loss: str | None, alpha2: float = 0.0) -> str:
    """The colour of a method: :data:`METHOD_COLORS` for a regulariser, else by alpha2.

    Example:
        >>> method_color("label-smoothing"), method_color("noisy", 0.1), method_color("softmax")
        ('#009E73', '#0072B2', '#000000')
    """
    if loss in METHOD_COLORS:
        return METHOD_COLORS[loss]
    return alpha2_color(0.0 if loss == SOFTMAX else alpha2)


def alpha2_palette(values) -> dict[float, str]:
    """``{alpha2: colour}`` for the given values (see :func:`alpha2_color`)."""
    return {float(v): alpha2_color(float(v)) for v in values}


def noise_linestyle(noise: str) -> str:
    """Solid for softmax and annealed noise, dashed/dotted for the ablation variants."""
    return _LINESTYLES.get(noise, "-")


def run_style(alpha2: float, noise: str = "annealed", loss: str | None = None,
              setting: str = "") -> dict:
    """Keyword arguments for ``ax.plot``: ``color``, ``linestyle`` and ``label``.

    Args:
        alpha2, noise: Noisy Softmax's settings (0 / ``"none"`` for every other method).
        loss: the method (``Run.loss``); None = softmax or Noisy Softmax by alpha2.
        setting: the method's main parameter as text (``Run.setting``), for the label.
    """
    from satkit.analysis.labels import method_label

    return {"color": method_color(loss, alpha2),
            "linestyle": "--" if loss in METHODS and METHODS[loss].training_logits == "margin"
            else noise_linestyle(noise),
            "label": method_label(alpha2, noise, loss, setting)}
