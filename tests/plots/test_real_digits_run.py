"""A real (tiny) run on the embedded digits data, through load, report, plots and the CLI.

Two one-epoch runs (softmax and alpha2 = 1) written by satkit's trainer: whatever the trainer
and recorder really write, the analysis reads.
"""

import math

import matplotlib.pyplot as plt
import pytest

from satkit import plots
from satkit.analysis import (
    load_run,
    load_runs,
    onset_step,
    p_target_distribution,
    postponement,
    report,
    survival,
)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    training = pytest.importorskip("satkit.training.run")
    from satkit.training.config import TrainConfig

    root = tmp_path_factory.mktemp("digits")
    for alpha2 in (0.0, 1.0):
        training.train(TrainConfig(dataset="digits", alpha2=alpha2, epochs=1, batch_size=64,
                                   device="cpu", quiet=True,
                                   out=str(root / f"alpha2={alpha2:g}_seed=0")))
    return root


def test_real_runs_load_and_analyse(real_runs):
    soft, noisy = load_run(real_runs / "alpha2=0_seed=0"), load_run(real_runs / "alpha2=1_seed=0")
    assert soft.noise == "none" and noisy.alpha2 == 1.0 and len(soft.metrics) > 10
    assert soft.summary["onset_step"] == onset_step(soft, tau=0.99)
    p = postponement(soft, noisy)
    assert p["grad_ratio_late"] > 1  # more gradient flows under noise
    assert not math.isnan(p["noise_annealing"])
    assert survival(soft)["at_risk"].iloc[0] == soft.samples["last_seen_step"].notna().sum()
    assert set(p_target_distribution(soft)["source"]) == {"histograms"}
    assert not load_runs(real_runs).empty
    assert "## Postponement" in report(real_runs)


def test_real_runs_plot(real_runs, tmp_path):
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    for ax, plot in zip(axes.flat, [plots.saturation_curves, plots.gradient_curves,
                                    plots.noise_curves, plots.saturated_fraction,
                                    plots.feature_norms, plots.survival, plots.p_target_heatmap,
                                    plots.alpha_sweep], strict=True):
        assert plot(real_runs, ax=ax) is ax
    fig.savefig(tmp_path / "real.png", dpi=50)
    dash = plots.dashboard(real_runs)
    dash.savefig(tmp_path / "dash.png", dpi=40)
    assert (tmp_path / "dash.png").stat().st_size > 10_000
