"""Calibration beside test error and onsets: run table, ranking (--rank-by), comparison table and
the report's Calibration section, on hand-built runs with known figures."""

import math

import pandas as pd
import pytest

from satkit.analysis import (
    calibration_table,
    comparison_table,
    rank_methods,
    ranking_markdown,
    report,
    run_table,
    t_interval,
)

# loss: (test errors by seed, ECE by seed, ECE after TS by seed, temperature by seed)
SPEC = {
    "softmax": ((5.0, 5.2), (0.040, 0.050), (0.010, 0.012), (1.5, 1.6)),
    "label-smoothing": ((4.0, 4.4), (0.060, 0.070), (0.020, 0.024), (0.8, 0.9)),
    "focal": ((6.0, 6.0), (0.020, 0.022), (0.015, 0.017), (1.1, 1.0)),
}


@pytest.fixture
def calibrated(tmp_path, run_writer):
    """Three methods, two seeds, whose ECE ranks them opposite to their test error's order
    for two of them (label smoothing: lowest error, highest ECE; focal: the reverse)."""
    root = tmp_path / "cmp"
    for loss, (errors, eces, scaled, temps) in SPEC.items():
        for seed in (0, 1):
            run_writer(root, name=f"{loss}_seed={seed}", seed=seed, test_error=errors[seed],
                     config_extra={"loss": loss, "method": loss, "effective_alpha2": 0.0,
                                   "alpha2": 0.1, "epsilon": 0.1, "gamma": 2.0},
                     summary_extra={"loss": loss, "alpha2": 0.0, "test_ece": eces[seed],
                                    "test_ece_adaptive": eces[seed] / 2,
                                    "test_ece_ts": scaled[seed], "temperature": temps[seed],
                                    "test_brier": 0.1, "test_confidence": 0.9,
                                    "test_overconfidence": 0.05, "test_nll_ts": 0.2})
    return root


def test_rank_methods_carries_the_calibration_with_intervals(calibrated):
    ranking = rank_methods(calibrated).set_index("loss")
    for loss, (_, eces, scaled, temps) in SPEC.items():
        mean, low, high = t_interval(eces)
        row = ranking.loc[loss]
        assert (row.test_ece, row.test_ece_ci_low, row.test_ece_ci_high) == pytest.approx(
            (mean, low, high))
        assert row.test_ece_adaptive == pytest.approx(mean / 2)
        assert row.test_ece_ts == pytest.approx(sum(scaled) / 2)
        assert row.temperature == pytest.approx(sum(temps) / 2)
    assert ranking["rank_ece"].to_dict() == {"focal": 1, "softmax": 2, "label-smoothing": 3}
    assert ranking["rank_test_error"].to_dict() == {"label-smoothing": 1, "softmax": 2,
                                                    "focal": 3}


def test_rank_by_sorts_the_rows_by_that_figure(calibrated):
    assert list(rank_methods(calibrated)["loss"]) == ["label-smoothing", "softmax", "focal"]
    assert list(rank_methods(calibrated, rank_by="test_ece")["loss"]) == [
        "focal", "softmax", "label-smoothing"]
    assert list(rank_methods(calibrated, rank_by="test_ece_ts")["loss"]) == [
        "softmax", "focal", "label-smoothing"]
    with pytest.raises(ValueError, match="rank_by must be one of test_error, test_ece"):
        rank_methods(calibrated, rank_by="onset")


def test_markdown_shows_ece_and_ece_after_ts_only_when_fitted(calibrated, make_run):
    text = ranking_markdown(rank_methods(calibrated))
    header = text.splitlines()[0]
    assert "| ECE |" in header and "| adaptive ECE |" in header and "ECE after TS" in header
    assert "0.0450 ± 0.064 (#2)" in text  # softmax: mean, half-width of the t-interval, rank
    assert "(T = 1.55)" in text
    # runs without a validation split: the column is left out, the ECE stays
    root = make_run(name="softmax_seed=0", config_extra={"method": "softmax"},
                    summary_extra={"test_ece": 0.03}).parent
    make_run(name="focal_seed=0", config_extra={"method": "focal", "gamma": 2.0},
             summary_extra={"test_ece": 0.02})
    header = ranking_markdown(rank_methods(root)).splitlines()[0]
    assert "| ECE |" in header and "ECE after TS" not in header


def test_comparison_table_puts_ece_beside_the_error_and_leaves_out_what_nobody_measured(
        calibrated, make_run):
    table = comparison_table(calibrated).set_index("method")
    assert table.loc["softmax (α²=0)", "ECE"] == "0.0450 ± 0.064"
    assert table.loc["softmax (α²=0)", "ECE after TS"] == "0.0110 ± 0.013"
    assert list(table.columns[:4]) == ["alpha2", "seeds", "test error %", "ECE"]
    old = make_run(name="old", alpha2=0.1).parent  # written before calibration existed
    table = comparison_table(old)
    assert "ECE after TS" not in table and "ECE" not in table


def test_run_table_reads_the_summary_else_the_last_epoch(make_run, tmp_path):
    run = make_run(name="unfinished", summary=False)
    epochs = pd.read_csv(run / "epochs.csv").assign(test_ece=[0.3, 0.2, 0.1],
                                                    test_brier=[0.5, 0.4, 0.3])
    epochs.to_csv(run / "epochs.csv", index=False)
    row = run_table(run).iloc[0]
    assert (row.test_ece, row.test_brier) == (0.1, 0.3)
    assert math.isnan(row.temperature) and math.isnan(row.test_ece_ts)  # never fitted


def test_report_has_a_calibration_section_and_ranks_by_ece(calibrated):
    text = report(calibrated, rank_by="test_ece")
    section = text.split("## Calibration")[1].split("\n## ")[0]
    table = calibration_table(calibrated).set_index("method")
    assert table.loc["focal loss γ=2", "T"] == "1.05 ± 0.64"
    assert table.loc["label smoothing ε=0.1", "ECE after TS"] == "0.0220 ± 0.025"
    assert "| label smoothing ε=0.1 |" in section and "ECE after TS" in section
    ranking = text.split("## Ranking of the methods")[1].split("\n## ")[0]
    assert "best first on test_ece" in ranking
    first = [line for line in ranking.splitlines() if line.startswith("| focal")]
    rows = [line for line in ranking.splitlines() if line.startswith("| ")][1:]  # no header
    assert rows[0] == first[0]  # focal, the lowest ECE, heads the clean-view table


def test_test_predictions_load_typed_and_a_wrong_type_is_named(make_run):
    from satkit.analysis import RunError, load_run

    run = make_run(name="predicted")
    assert load_run(run).test_predictions.empty  # none written: an empty typed table
    frame = pd.DataFrame({"index": [0, 1], "label": [1, 2], "predicted": [1, 0],
                          "confidence": [0.9, 0.6], "p_label": [0.9, 0.3]})
    frame.to_parquet(run / "test_predictions.parquet")
    assert load_run(run).test_predictions["confidence"].tolist() == [0.9, 0.6]
    frame.assign(confidence=["high", "low"]).to_parquet(run / "test_predictions.parquet")
    with pytest.raises(RunError, match="test_predictions.parquet: column 'confidence'"):
        load_run(run)
