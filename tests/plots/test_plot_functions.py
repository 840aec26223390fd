"""Every plot renders to a PNG under Agg, returns its Axes, and reads well (labels, legend)."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from satkit import plots
from satkit.analysis import as_runs, load_runs, run_table
from satkit.plots import alpha2_color

CURVES = [plots.saturation_curves, plots.gradient_curves, plots.noise_curves,
          plots.saturated_fraction, plots.feature_norms]


@pytest.mark.parametrize("plot", CURVES, ids=lambda f: f.__name__)
def test_curves_from_tidy_frame_and_runs(plot, comparison, figure_path):
    tidy = load_runs(comparison)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    assert plot(tidy, ax=left) is left
    assert plot(as_runs(comparison), ax=right) is right
    for ax in (left, right):
        assert ax.get_xlabel() == "training step" and ax.get_ylabel()
        labels = ax.get_legend_handles_labels()[1]
        assert any("softmax (α²=0)" in label for label in labels)
        assert any("Noisy Softmax α²=0.1" in label for label in labels)
    # the same lines, whichever input
    assert len(left.get_lines()) == len(right.get_lines())
    fig.savefig(figure_path(f"{plot.__name__}.png"))
    assert figure_path(f"{plot.__name__}.png").stat().st_size > 10_000


def test_ax_none_draws_on_current_axes(comparison):
    fig, ax = plt.subplots()
    assert plots.gradient_curves(comparison) is ax
    assert ax.get_yscale() == "log"


def test_seeds_share_colour_and_one_legend_entry(comparison):
    ax = plots.saturation_curves(comparison, tau=None)
    lines = [line for line in ax.get_lines()]
    assert len(lines) == 6  # 3 alpha2 x 2 seeds
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["softmax (α²=0)", "Noisy Softmax α²=0.1", "Noisy Softmax α²=1"]
    colours = {line.get_label(): line.get_color() for line in lines if line.get_label()[0] != "_"}
    assert colours["Noisy Softmax α²=0.1"] == alpha2_color(0.1)


def test_long_runs_are_thinned(tmp_path, run_writer):
    run = run_writer(tmp_path, steps=20_000, num_samples=10)
    ax = plots.gradient_curves(run, max_points=500)
    assert len(ax.get_lines()[0].get_xdata()) <= 500


def test_heatmap_survival_sweep(comparison, figure_path):
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    runs = as_runs(comparison)
    assert plots.p_target_heatmap(runs, ax=axes[0], run="alpha2=0_seed=0") is axes[0]
    assert "histograms" in axes[0].get_title()
    plots.p_target_heatmap(runs, ax=axes[1], run="alpha2=0.1_seed=1", source="quantiles")
    assert "α²=0.1" in axes[1].get_title() and "quantiles" in axes[1].get_title()
    assert plots.survival(runs, ax=axes[2]) is axes[2]
    assert axes[2].get_ylabel() == "samples not yet saturated"
    assert axes[2].get_title() == "First saturation, p_y (clean)"
    assert plots.alpha_sweep(run_table(runs), ax=axes[3]) is axes[3]
    assert axes[3].get_xscale() == "symlog" and axes[3].get_ylabel() == "test error (%)"
    fig.savefig(figure_path("misc.png"))


def test_alpha_sweep_overlays_paper_on_cifar(tmp_path, run_writer):
    for alpha2 in (0.0, 0.1):
        run_writer(tmp_path, alpha2=alpha2, dataset="cifar10", steps=20, num_samples=5)
    ax = plots.alpha_sweep(tmp_path)
    assert "paper, CIFAR10" in ax.get_legend_handles_labels()[1]
    onset = plots.alpha_sweep(tmp_path, figure="onset_step")
    assert onset.get_ylabel() == "saturation onset, clean (training step)"


def test_dashboard_is_a_figure_and_saves(comparison, figure_path):
    fig = plots.dashboard(comparison)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    for suffix in ("png", "pdf", "svg"):
        fig.savefig(figure_path(f"dashboard.{suffix}"), dpi=60)
        assert figure_path(f"dashboard.{suffix}").stat().st_size > 10_000


def test_dashboard_single_run_without_samples(tmp_path, run_writer):
    run = run_writer(tmp_path, alpha2=0.1, steps=30, num_samples=0)
    fig = plots.dashboard(run)
    fig.savefig(tmp_path / "one.png", dpi=40)


def test_palette_is_fixed_and_colour_blind_safe():
    assert plots.alpha2_palette([1.0, 0.0]) == {1.0: "#D55E00", 0.0: "#000000"}
    assert alpha2_color(0.3) == alpha2_color(0.3) != alpha2_color(0.1)
    assert all(c in plots.OKABE_ITO for c in map(alpha2_color, (0.0, 0.05, 0.1, 0.5, 1.0)))
    style = plots.run_style(0.1, "free")
    assert style["linestyle"] == ":" and style["label"] == "Noisy Softmax α²=0.1 (free)"


def test_plots_do_not_change_global_state():
    import subprocess
    import sys

    code = ("import sys, matplotlib; b = matplotlib.get_backend(); "
            "import satkit.plots; print(matplotlib.get_backend() == b, "
            "'seaborn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "False"]


def test_types(comparison):
    ax = plots.noise_curves(comparison)
    assert isinstance(ax, Axes)


def test_dashboard_with_empty_and_never_saturating_runs(tmp_path, run_writer):
    import warnings

    from satkit.analysis import load_run

    run_writer(tmp_path, alpha2=0.0, steps=40)
    run_writer(tmp_path, alpha2=5.0, steps=40)
    empty = run_writer(tmp_path, alpha2=0.1, steps=40, num_samples=0)
    load_run(empty).metrics.iloc[:0].to_parquet(empty / "metrics.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.dashboard(tmp_path)
        fig.savefig(tmp_path / "edge.png", dpi=30)


def test_noise_curves_show_negative_noise():
    import matplotlib.pyplot as plt
    import pandas as pd

    from satkit.plots import noise_curves

    tidy = pd.DataFrame({"run": "neg", "alpha2": 0.1, "seed": 0, "loss": "noisy",
                         "noise": "negative", "setting": "", "step": range(5),
                         "metric": "noise_mean", "value": [-1.0, -0.8, -0.6, -0.5, -0.4]})
    fig, ax = plt.subplots()
    noise_curves(tidy, ax=ax)
    assert ax.get_ylim()[0] <= -1.0
    plt.close(fig)
