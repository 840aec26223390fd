"""Figures of a comparison of methods: one colour per method everywhere, a per-method plot."""

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection

from satkit import plots
from satkit.analysis import as_runs, load_runs, run_table
from satkit.plots import METHOD_COLORS, alpha2_color, method_color


def _hex(colour) -> str:
    return mcolors.to_hex(colour).upper()


def test_method_colours_are_distinct_and_fixed():
    fixed = [alpha2_color(a) for a in (0.0, 0.05, 0.1, 0.5, 1.0)]
    colours = list(METHOD_COLORS.values())
    assert len(set(colours)) == len(colours) and not set(colours) & set(fixed)
    assert method_color("softmax", 0.3) == alpha2_color(0.0)  # softmax is always black
    assert method_color("noisy", 0.5) == alpha2_color(0.5)
    assert method_color(None, 0.1) == alpha2_color(0.1)
    style = plots.run_style(0.0, "none", "arcface", "s=30 m=0.5")
    assert style == {"color": METHOD_COLORS["arcface"], "linestyle": "--",
                     "label": "ArcFace s=30 m=0.5"}
    assert plots.run_style(0.1, "free")["label"] == "Noisy Softmax α²=0.1 (free)"


@pytest.mark.parametrize("plot", [plots.saturation_curves, plots.gradient_curves],
                         ids=lambda f: f.__name__)
def test_curves_colour_each_method_alike_from_runs_and_tidy(plot, methods, mixed_methods):
    fig, (left, right) = plt.subplots(1, 2)
    for ax, data in ((left, as_runs(methods)), (right, load_runs(methods))):
        plot(data, ax=ax)
        handles, labels = ax.get_legend_handles_labels()
        colours = {label: _hex(h.get_color()) for h, label in zip(handles, labels, strict=True)
                   if label.startswith(("softmax", "Noisy", "label", "focal", "CosFace"))}
        expected = {"softmax (α²=0)": alpha2_color(0.0),
                    "Noisy Softmax α²=0.1": alpha2_color(0.1),
                    **{label: METHOD_COLORS[loss] for loss, (label, _) in mixed_methods.items()}}
        assert colours == expected
        assert list(colours) == list(expected)  # legend in method order
    cosface = [line for line in left.get_lines() if line.get_label() == "CosFace s=30 m=0.35"]
    assert cosface[0].get_linestyle() == "--"


def test_survival_curves_follow_the_method_palette(methods):
    ax = plots.survival(methods, band=False)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["softmax (α²=0)", "Noisy Softmax α²=0.1", "label smoothing ε=0.1",
                      "focal loss γ=2", "CosFace s=30 m=0.35"]


def test_method_comparison(methods, figure_path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    assert plots.method_comparison(methods, ax=axes[0]) is axes[0]
    ticks = [t.get_text() for t in axes[0].get_yticklabels()]
    assert ticks == ["softmax (α²=0)", "Noisy Softmax α²=0.1", "label smoothing ε=0.1",
                     "focal loss γ=2", "CosFace s=30 m=0.35"]
    assert axes[0].get_xlabel() == "test error (%)"
    # focal's and CosFace's synthetic runs (onset at step 276 and 460) never saturate
    # within their 200 steps
    plots.method_comparison(run_table(methods), ax=axes[1], figure="onset_step")
    assert [t.get_text() for t in axes[1].texts] == ["never by 199"] * 2
    assert len(axes[1].lines) + len(axes[1].collections) > 0
    fig.savefig(figure_path("methods.png"))
    assert figure_path("methods.png").stat().st_size > 10_000


def test_alpha_sweep_leaves_other_methods_out(methods):
    ax = plots.alpha_sweep(methods, seeds=False, paper=False)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]  # the scatters
    xs = sorted(x for c in points for x, _ in c.get_offsets())
    assert xs == [0.0, 0.1]  # softmax and Noisy Softmax only, not four points at alpha2 = 0


def test_summary_figure_switches_to_methods(methods, comparison):
    titles = [ax.get_title() for ax in plots.summary_figure(methods).axes]
    assert "Test error by method" in titles and not any("vs α²" in t for t in titles)
    assert "Test error vs α²" in [ax.get_title() for ax in plots.summary_figure(comparison).axes]
