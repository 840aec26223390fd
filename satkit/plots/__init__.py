"""Figures of softmax saturation (matplotlib), an axes-level layer over satkit.analysis.

Every plot function takes ``data, *, ax=None, ...`` -- the tidy frame of
:func:`satkit.analysis.load_runs`, run(s), or run/comparison directories, whichever the plot
needs -- draws on ``ax`` (default: the current Axes) and returns the Axes. The plots of
saturation take ``saturation="clean"`` or ``"noisy"`` (the training logits; see
:mod:`satkit.analysis.views`). :func:`dashboard` composes them into one Figure, both views
side by side. Importing this package imports matplotlib but sets no backend and changes no
global style; seaborn (curves aggregated over seeds) is imported only when such a curve is
drawn, and changes no global style either.
"""

from satkit.plots.composite import dashboard
from satkit.plots.curves import (
    feature_norms,
    gradient_curves,
    noise_curves,
    saturated_fraction,
    saturation_curves,
)
from satkit.plots.data_maps import data_map, region_survival, score_distributions
from satkit.plots.distribution import p_target_heatmap
from satkit.plots.methods import method_comparison
from satkit.plots.palette import (
    METHOD_COLORS,
    OKABE_ITO,
    alpha2_color,
    alpha2_palette,
    method_color,
    run_style,
)
from satkit.plots.reliability import reliability, reliability_figure
from satkit.plots.survival_curves import survival
from satkit.plots.sweep import alpha_sweep

__all__ = [
    "METHOD_COLORS",
    "OKABE_ITO",
    "alpha2_color",
    "alpha2_palette",
    "alpha_sweep",
    "dashboard",
    "data_map",
    "feature_norms",
    "gradient_curves",
    "method_color",
    "method_comparison",
    "noise_curves",
    "p_target_heatmap",
    "region_survival",
    "reliability",
    "reliability_figure",
    "run_style",
    "saturated_fraction",
    "saturation_curves",
    "score_distributions",
    "survival",
]
