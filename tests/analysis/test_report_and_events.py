"""The Markdown report, TensorBoard event files and the p_target distribution."""

import re

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
    assert "paired t-test, two-sided" in _section(text, "## Paired test")
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
    # three histogram steps say little about a run: "auto" draws the batch quantiles instead
    assert set(p_target_distribution(run, bins=10)["source"]) == {"quantiles"}
    hist = p_target_distribution(run, bins=10, source="histograms")
    assert set(hist["source"]) == {"histograms"} and sorted(hist["step"].unique()) == [0, 50, 100]
    sums = hist.groupby("step")["fraction"].sum()
    np.testing.assert_allclose(sums, 1.0)
    late = hist[hist["step"] == 100].set_index("p_low")["fraction"]
    assert late.iloc[-1] > 0.5  # beta(11, 1): most mass near 1
    quant = p_target_distribution(run, bins=10, source="quantiles", max_steps=5)
    assert quant["step"].nunique() == 5
    np.testing.assert_allclose(quant.groupby("step")["fraction"].sum(), 1.0)


def test_p_target_distribution_uses_histograms_when_there_are_enough(make_run):
    from satkit.analysis.distribution import MIN_SLICES

    run = load_run(make_run(alpha2=0.0, steps=10 * MIN_SLICES, tensorboard=True,
                            histogram_every=10))
    dist = p_target_distribution(run, bins=10)
    assert set(dist["source"]) == {"histograms"} and dist["step"].nunique() == MIN_SLICES
    few = load_run(make_run(alpha2=0.0, steps=10 * MIN_SLICES - 10, tensorboard=True,
                            histogram_every=10, name="few"))
    assert set(p_target_distribution(few, bins=10)["source"]) == {"quantiles"}


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


def _section(text: str, heading: str) -> str:
    return text.split(heading)[1].split("\n## ")[0]


def _row(section: str, run: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {run} |"))
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]  # not at "\|"


def test_report_shows_both_views_and_says_which_p_values_are_one_sided(make_run,
                                                                       expected_onset):
    for alpha2 in (0.0, 0.1):
        root = make_run(alpha2=alpha2, steps=300).parent
    text = report(root)
    assert "one-sided" in text and "two-sided" in text
    assert "alternative: softmax saturates earlier" in text
    runs = _section(text, "## Runs")
    header = _row(runs, "run")
    noisy = dict(zip(header, _row(runs, "alpha2=0.1_seed=0"), strict=True))
    assert noisy["onset step (clean)"] == str(expected_onset(0.1, "clean"))
    assert noisy["onset step (training logits)"] == str(expected_onset(0.1, "noisy"))
    assert noisy["status"] == "finished"
    post = _section(text, "## Postponement")
    row = dict(zip(_row(post, "run"), _row(post, "alpha2=0.1_seed=0"), strict=True))
    soft = expected_onset(0.0)
    assert row["onset, clean"].startswith(f"{soft} → {expected_onset(0.1, 'clean')} (×")
    assert row["onset, training logits"].startswith(f"{soft} → {expected_onset(0.1, 'noisy')}")
    survival = _section(text, "## Individual saturation")
    row = dict(zip(_row(survival, "run"), _row(survival, "alpha2=0.1_seed=0"), strict=True))
    assert set(row) >= {"median first step, clean", "median first step, training logits",
                        "median settled step, training logits", "p clean (one-sided)",
                        "p training logits (one-sided)"}
    # the synthetic Noisy Softmax samples saturate later: "softmax earlier" has a small p
    assert float(row["p training logits (one-sided)"]) < 0.01


def test_report_p_value_is_softmax_earlier_not_its_complement(make_run):
    from satkit.analysis import load_run, logrank

    soft = load_run(make_run(alpha2=0.0, steps=200))
    noisy = load_run(make_run(alpha2=0.1, steps=200))
    survival = _section(report([soft, noisy]), "## Individual saturation")
    row = dict(zip(_row(survival, "run"), _row(survival, noisy.name), strict=True))
    expected = logrank(soft, noisy, alternative="a_earlier")["pvalue"]
    assert float(row["p clean (one-sided)"]) == pytest.approx(expected, rel=1e-2)
    assert expected < 0.5 < 1 - expected  # the complement would read as "no evidence"


def test_unfinished_runs_are_marked_with_how_far_they_got(make_run):
    make_run(alpha2=0.0, steps=100)
    make_run(alpha2=0.1, steps=60, name="stopped",
             summary_extra={"finished": False, "epochs": 1, "epochs_planned": 3})
    root = make_run(alpha2=0.1, seed=1, steps=40, summary=False, epochs=2,
                    name="killed").parent
    text = report(root)
    runs = _section(text, "## Runs")
    status = _row(runs, "run").index("status")
    assert _row(runs, "alpha2=0_seed=0")[status] == "finished"
    assert _row(runs, "stopped")[status] == "unfinished (1/3 epochs)"
    # no summary.json: the epochs done come from epochs.csv, the plan from config.json
    assert _row(runs, "killed")[status] == "unfinished (2/2 epochs)"
    assert "2 run(s) unfinished" in runs
