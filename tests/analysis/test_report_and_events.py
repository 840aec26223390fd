"""The Markdown report, TensorBoard event files and the p_target distribution."""

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import (
    RunError,
    from_tensorboard,
    load_run,
    p_target_distribution,
    report,
)


def test_report_has_every_section(make_run):
    for alpha2 in (0.0, 0.1, 1.0):
        for seed in (0, 1):
            root = make_run(alpha2=alpha2, seed=seed, steps=300).parent
    text = report(root)
    for heading in ("# satkit report", "## Runs", "## Across seeds", "## Postponement",
                    "## Individual saturation", "## Paired test", "## Paper comparison"):
        assert heading in text
    assert "Noisy Softmax α²=0.1" in text and "softmax (α²=0)" in text
    # alpha2 = 1 never reaches tau within 300 steps: reported as a lower bound, no crash
    assert "> " in text.split("## Postponement")[1].split("##")[0]
    assert "Traceback" not in text


def test_report_single_run_without_baseline(make_run):
    text = report(make_run(alpha2=0.1, steps=50))
    assert "No softmax baseline" in text and "## Paired test" in text


def test_from_tensorboard_rebuilds_metrics(make_run, metrics_factory):
    metrics = metrics_factory(30, 0.1)
    path = make_run(alpha2=0.1, steps=30, tensorboard=True)
    tb = from_tensorboard(path)
    assert tb["step"].tolist() == list(range(30))
    for column in ("p_target_mean", "p_target_median", "saturated_frac", "grad_target_mean",
                   "noise_mean", "feature_norm_mean"):
        np.testing.assert_allclose(tb[column], metrics[column], rtol=1e-6)  # float32 in TB
    (path / "metrics.parquet").unlink()
    run = load_run(path)  # falls back to the event files
    assert len(run.metrics) == 30 and "grad_target_mean" in run.metrics


def test_from_tensorboard_without_event_files(tmp_path):
    with pytest.raises(RunError, match="no TensorBoard event files"):
        from_tensorboard(tmp_path)


def test_p_target_distribution_from_histograms_and_quantiles(make_run):
    run = load_run(make_run(alpha2=0.0, steps=101, tensorboard=True))
    hist = p_target_distribution(run, bins=10)
    assert set(hist["source"]) == {"histograms"} and sorted(hist["step"].unique()) == [0, 50, 100]
    sums = hist.groupby("step")["fraction"].sum()
    np.testing.assert_allclose(sums, 1.0)
    late = hist[hist["step"] == 100].set_index("p_low")["fraction"]
    assert late.iloc[-1] > 0.5  # beta(11, 1): most mass near 1
    quant = p_target_distribution(run, bins=10, source="quantiles", max_steps=5)
    assert quant["step"].nunique() == 5
    np.testing.assert_allclose(quant.groupby("step")["fraction"].sum(), 1.0)


def test_quantile_distribution_is_piecewise_uniform(make_run):
    metrics = pd.DataFrame({"step": [0], "p_target_q10": [0.2], "p_target_median": [0.5],
                            "p_target_q90": [0.8]})
    run = load_run(make_run(metrics=metrics))
    dist = p_target_distribution(run, bins=10)
    expected = [0.05, 0.05, 0.4 / 3, 0.4 / 3, 0.4 / 3, 0.4 / 3, 0.4 / 3, 0.4 / 3, 0.05, 0.05]
    np.testing.assert_allclose(dist["fraction"], expected)
    with pytest.raises(RunError, match="histograms"):
        p_target_distribution(run, source="histograms")


def test_report_with_empty_and_never_saturating_runs(make_run, metrics_factory):
    make_run(alpha2=0.0, steps=50)
    make_run(alpha2=5.0, steps=50)  # never saturates
    root = make_run(alpha2=0.1, steps=50, metrics=metrics_factory(1, 0.1).iloc[:0],
                    num_samples=0).parent  # interrupted before the first flush
    text = report(root)
    assert "no metrics recorded" in text and "not reached by step 49" in text
    runs_section = text.split("## Runs")[1].split("##")[0]
    assert runs_section.index("alpha2=0_seed=0") < runs_section.index("alpha2=0.1_seed=0")
