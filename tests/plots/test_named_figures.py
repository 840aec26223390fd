"""The named figures (``satkit plot --figure NAME``): each a function of satkit.plots, each
panel drawing something at any run length, the dashboard sized for a slide."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection, QuadMesh

from satkit import plots
from satkit.analysis import as_runs


def _drawn(ax) -> int:
    """How many data artists an Axes holds (lines, collections, images, bars), guides left
    out."""
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]  # not axhline
    return len(lines) + len(ax.collections) + len(ax.images) + len(ax.patches)


def _panels(fig) -> list:
    # a colour bar or a twin axis that only scales another panel's artists is not a panel
    return [ax for ax in fig.axes if ax.axison and not ax.get_label().startswith("<")]


def test_every_named_figure_is_a_function_of_satkit_plots():
    assert list(plots.FIGURES) == ["dashboard", "saturation", "survival", "summary", "gradient",
                                   "norms", "distribution", "learning-curves", "reliability"]
    for name, function in plots.FIGURES.items():
        assert getattr(plots, function.__name__) is function, name
    with pytest.raises(ValueError, match="figure must be one of dashboard, saturation"):
        plots.figure("heatmaps", [])


@pytest.mark.parametrize("steps", [3, 72, 1000])
def test_every_panel_draws_data_at_any_run_length(tmp_path, run_writer, steps):
    # a run as short as three steps (one histogram), the 72-step run, and a long one
    for alpha2 in (0.0, 1.0):
        run_writer(tmp_path, alpha2=alpha2, steps=steps, num_samples=40, tensorboard=True,
                   histogram_every=max(1, steps // 4), test_predictions=True)
    runs = as_runs(tmp_path)
    for name in plots.FIGURES:
        fig = plots.figure(name, runs)
        panels = _panels(fig)
        assert panels, name
        for ax in panels:
            # a summary panel of runs where no sample saturated says so in a note instead
            said = len(ax.texts) if name == "summary" else 0
            assert _drawn(ax) + said > 0, (name, ax.get_title(), steps)
            assert ax.get_xlim()[1] > ax.get_xlim()[0]
        if name == "distribution":  # both views of every run, from data, never an empty axis
            meshes = [a for a in panels if any(isinstance(c, QuadMesh) for c in a.collections)]
            assert len(meshes) == 4
            if steps == 3:  # one histogram step says nothing: the batch quantiles instead
                assert all("quantiles" in a.get_title() for a in meshes)
            # the x axis spans the run, never a single column around step 0
            assert all(a.get_xlim()[1] >= 0.5 * (steps - 1) for a in meshes)
        plt.close("all")


def test_the_dashboard_is_six_panels_at_slide_size_with_slide_sized_text(comparison):
    fig = plots.dashboard(comparison)
    panels = _panels(fig)
    assert len(panels) == 6
    width, height = fig.get_size_inches()
    assert (width, height) == (13.0, 7.5) and width * 110 <= 1500  # pixels at the default dpi
    for ax in panels:
        assert ax.title.get_fontsize() >= 11
        assert all(t.get_fontsize() >= 10 for t in ax.get_xticklabels())
    # the story: p_y and first saturation in both views, the late gradient, the noise
    titles = [ax.get_title() for ax in panels]
    assert [t.split(",")[0] for t in titles] == [
        "Saturation", "Saturation", "Gradient on the target logit", "First saturation",
        "First saturation", "Noise on the target logit (annealing)"]
    gradient = panels[2]
    assert gradient.get_yscale() == "log" and "late: last 25%" in [t.get_text()
                                                                    for t in gradient.texts]


def test_summary_markers_are_inside_the_axes(comparison):
    fig = plots.summary_figure(comparison)
    for ax in _panels(fig):
        top = ax.get_ylim()[1]
        for points in (c for c in ax.collections if isinstance(c, PathCollection)):
            ys = points.get_offsets()[:, 1]
            assert (ys < 0.95 * top).all(), ax.get_title()  # room above the highest marker
