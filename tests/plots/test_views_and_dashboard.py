"""Figures state what their data supports: both views, every run, no interval from one seed,
no autoscaled V, and the axes-level contract with type hints."""

import inspect

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from satkit import plots
from satkit.analysis import as_runs


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _heatmaps(fig) -> list:
    return [ax for ax in fig.axes if ax.get_title().count("\n") == 1
            and "p_y (" in ax.get_title().split("\n")[1]]


def _on(fig) -> list:
    return [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]


def test_dashboard_shows_both_views_every_run_and_says_so(comparison):
    runs = as_runs(comparison)
    fig = plots.dashboard(runs)
    titles = _titles(fig)
    for view in ("clean", "training logits"):
        assert f"Saturation, p_y ({view}), seed mean; band: range of seeds" in titles
        assert f"First saturation, p_y ({view}), seeds pooled" in titles
    assert "Gradient on the target logit" in titles
    assert "Noise on the target logit (annealing)" in titles
    assert len(_on(fig)) == 6  # a few panels, at slide size
    assert tuple(fig.get_size_inches()) == (13.0, 7.5)
    # saturation happens early: its panels have a log-scaled step axis, and say so
    early = [ax for ax in fig.axes if ax.get_title().startswith(("Saturation", "First"))]
    assert len(early) == 4 and all(ax.get_xscale() == "symlog" for ax in early)
    assert all(ax.get_xlabel() == "training step (log scale)" for ax in early)
    title = fig._suptitle.get_text()
    assert "digits" in title and "6 run(s), 2 seeds" in title
    assert "clean p_y" in title and "training logits" in title
    # every run's p_y distribution, in both views, is its own figure
    heatmaps = _heatmaps(plots.distribution_figure(runs))
    assert len(heatmaps) == 2 * len(runs) == 12
    assert {ax.get_title().split("\n")[0] for ax in heatmaps} == {
        f"{r.label}, seed {r.seed}" for r in runs}
    assert {ax.get_title().split("\n")[1].split(",")[0] for ax in heatmaps} == {
        "p_y (clean)", "p_y (training logits)"}


def test_dashboard_of_one_run_drops_what_means_nothing(tmp_path, run_writer):
    fig = plots.dashboard(run_writer(tmp_path, alpha2=0.0, steps=60, num_samples=30))
    titles = _titles(fig)
    assert "Noise on the target logit (annealing)" not in titles  # softmax has no noise
    assert "Test error per epoch" in titles  # in its place
    assert "seeds pooled" not in " ".join(titles)
    assert "one curve per run" not in fig._suptitle.get_text()
    assert len(_on(fig)) == 6


def test_dashboard_of_old_runs_notes_what_was_not_recorded(tmp_path, run_writer):
    run_writer(tmp_path, alpha2=0.0, steps=60, legacy=True, name="old_softmax")
    run_writer(tmp_path, alpha2=0.1, steps=60, name="new_noisy")
    fig = plots.dashboard(tmp_path)
    survival = next(ax for ax in fig.axes
                    if ax.get_title() == "First saturation, p_y (training logits)")
    assert [t.get_text() for t in survival.texts] == ["not recorded by 1 of 2 run(s)"]
    assert survival.get_legend_handles_labels()[1] == ["Noisy Softmax α²=0.1"]


def test_aggregated_curves_band_only_where_there_are_seeds(tmp_path, run_writer):
    for seed in (0, 1, 2):
        run_writer(tmp_path, alpha2=0.1, seed=seed, steps=80, num_samples=10)
    run_writer(tmp_path, alpha2=0.0, seed=0, steps=80, num_samples=10)
    fig, ax = plt.subplots()
    before = dict(mpl.rcParams)
    plots.saturation_curves(tmp_path, ax=ax, aggregate=True, saturation="noisy")
    assert dict(mpl.rcParams) == before  # seaborn changed no global style
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["softmax (α²=0)", "Noisy Softmax α²=0.1", "τ = 0.99"]
    assert len([line for line in ax.get_lines() if not line.get_label().startswith("τ")]) == 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # three seeds of Noisy Softmax; one softmax seed has no band
    assert "range of seeds" in ax.get_title() and "training logits" in ax.get_ylabel()


def test_aggregated_mean_is_the_mean_over_seeds(tmp_path, run_writer, metrics_factory):
    for seed, shift in ((0, 0.0), (1, 0.2)):
        metrics = metrics_factory(20, 0.1)
        metrics["grad_target_mean"] = 0.1 + shift
        run_writer(tmp_path, alpha2=0.1, seed=seed, steps=20, num_samples=5, metrics=metrics)
    fig, ax = plt.subplots()
    plots.gradient_curves(tmp_path, ax=ax, aggregate=True)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 0.2)
    band = next(c for c in ax.collections if isinstance(c, PolyCollection))
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.1) and ys.max() == pytest.approx(0.3)  # the range


def test_sweep_of_one_seed_has_no_interval_and_does_not_blow_up_a_step():
    table = pd.DataFrame({"run": ["a", "b", "c"], "dataset": "digits",
                          "alpha2": [0.0, 0.1, 1.0], "seed": 0,
                          "onset_step": [99.0, 100.0, 98.0], "test_error": [1.1, 1.0, 1.2]})
    fig, (ax, ax2) = plt.subplots(1, 2)
    plots.alpha_sweep(table, ax=ax, figure="onset_step")
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 100  # no V from a 2-step spread
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["measured, digits: one seed"]
    assert not any("CI" in label for label in labels)
    two = pd.concat([table, table.assign(run=list("def"), seed=1, onset_step=[97.0, 104, 99])])
    labels = plots.alpha_sweep(two, ax=ax2, figure="onset_step").get_legend_handles_labels()[1]
    assert labels[0] == "measured, digits: mean ± 95% CI over seeds"


def test_method_comparison_axis_starts_at_zero(methods):
    ax = plots.method_comparison(methods, figure="onset_step")
    assert ax.get_xlim()[0] == 0


def test_saturated_fraction_in_the_training_logit_view(comparison):
    fig, (clean, noisy) = plt.subplots(1, 2)
    plots.saturated_fraction(comparison, ax=clean)
    plots.saturated_fraction(comparison, ax=noisy, saturation="noisy", thresholds=[0.99])
    assert "training logits" in noisy.get_ylabel()
    assert len(clean.get_lines()) == 2 * len(noisy.get_lines()) == 12  # 6 runs, 2 thresholds
    runs = as_runs(comparison)
    line = next(ln for ln in noisy.get_lines() if ln.get_label().startswith("Noisy Softmax α²=1"))
    frame = next(r for r in runs if r.alpha2 == 1.0 and r.seed == 0).metrics
    np.testing.assert_allclose(line.get_ydata(), frame["saturated_frac_noisy_0.99"])


def test_heatmap_in_the_training_logit_view(comparison):
    ax = plots.p_target_heatmap(as_runs(comparison), run="alpha2=1_seed=1", saturation="noisy")
    assert ax.get_ylabel() == "p_y (training logits)"
    assert "p_y (training logits), from the batch quantiles q10, median, q90" in ax.get_title()


def test_a_bad_view_names_the_argument(comparison):
    with pytest.raises(ValueError, match="saturation must be one of clean, noisy"):
        plots.survival(comparison, saturation="nosiy")


PLOTS = [plots.saturation_curves, plots.gradient_curves, plots.noise_curves,
         plots.saturated_fraction, plots.feature_norms, plots.survival, plots.p_target_heatmap,
         plots.alpha_sweep, plots.method_comparison, plots.reliability]


@pytest.mark.parametrize("plot", PLOTS, ids=lambda f: f.__name__)
def test_every_plot_function_is_typed_axes_level(plot):
    sig = inspect.signature(plot)
    params = list(sig.parameters.values())
    assert params[0].name == "data" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ax = sig.parameters["ax"]
    assert ax.kind is inspect.Parameter.KEYWORD_ONLY and ax.default is None
    assert ax.annotation == "Axes | None" and sig.return_annotation == "Axes"
    assert all(p.annotation is not inspect.Parameter.empty for p in params)
