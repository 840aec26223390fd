"""Figures of softmax saturation (matplotlib), an axes-level layer over satkit.analysis.

Every plot function takes ``data, *, ax=None, ...`` -- the tidy frame of
:func:`satkit.analysis.load_runs`, run(s), or run/comparison directories, whichever the plot
needs -- draws on ``ax`` (default: the current Axes) and returns the Axes. The plots of
saturation take ``saturation="clean"`` or ``"noisy"`` (the training logits; see
:mod:`satkit.analysis.views`), and the per-step ones ``steps="linear"`` or ``"log"`` (a
log-scaled step axis, where early saturation is visible). :func:`dashboard` composes six of
them into one slide-sized Figure, both views side by side; the other named figures
(:data:`FIGURES`, :func:`figure`: ``saturation``, ``survival``, ``summary``, ``gradient``,
``norms``, ``distribution``, ``learning-curves``) show the rest. Importing this package
imports matplotlib but sets no backend and changes no global style; seaborn (curves aggregated
over seeds) is imported only when such a curve is drawn, and changes no global style either.
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
from satkit.plots.figures import (
    FIGURES,
    distribution_figure,
    figure,
    gradient_figure,
    learning_curves_figure,
    norms_figure,
    saturation_figure,
    summary_figure,
    survival_figure,
)
from satkit.plots.learning import learning_curves
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
    "FIGURES",
    "METHOD_COLORS",
    "OKABE_ITO",
    "alpha2_color",
    "alpha2_palette",
    "alpha_sweep",
    "dashboard",
    "data_map",
    "distribution_figure",
    "feature_norms",
    "figure",
    "gradient_curves",
    "gradient_figure",
    "learning_curves",
    "learning_curves_figure",
    "method_color",
    "method_comparison",
    "noise_curves",
    "norms_figure",
    "p_target_heatmap",
    "region_survival",
    "reliability",
    "reliability_figure",
    "run_style",
    "saturated_fraction",
    "saturation_curves",
    "saturation_figure",
    "score_distributions",
    "summary_figure",
    "survival",
    "survival_figure",
]
