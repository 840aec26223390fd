"""Across-seed intervals and the paired test, against scipy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from satkit.analysis import paired_test, run_table, seed_summary, t_interval


def test_t_interval_equals_scipy():
    x = [4.1, 5.3, 4.8, 5.0]
    mean, low, high = t_interval(x, 0.95)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert (low, high) == (pytest.approx(ref[0]), pytest.approx(ref[1]))
    assert t_interval([2.0])[0] == 2.0 and math.isnan(t_interval([2.0])[1])
    assert math.isnan(t_interval([np.nan])[0])
    assert t_interval([1.0, np.nan, 3.0])[0] == 2.0  # NaN ignored


def _table(errors_by_alpha2):
    rows = []
    for alpha2, errors in errors_by_alpha2.items():
        for seed, err in enumerate(errors):
            rows.append({"run": f"a{alpha2}s{seed}", "dataset": "digits",
                         "noise": "none" if alpha2 == 0 else "annealed", "alpha2": alpha2,
                         "seed": seed, "test_error": err,
                         "onset_step": np.nan if err > 9 else 10.0 * err})
    return pd.DataFrame(rows)


def test_seed_summary_hand_table():
    table = _table({0.0: [5.0, 6.0, 7.0], 0.1: [4.0, 4.5, 10.0]})
    out = seed_summary(table, figures=("test_error", "onset_step"))
    assert list(out.columns) == ["dataset", "loss", "setting", "noise", "alpha2", "figure", "n",
                                 "mean", "sd", "ci_low", "ci_high"]
    assert set(out["loss"]) == {"softmax", "noisy"}  # filled in for a table without them
    row = out.query("alpha2 == 0.0 and figure == 'test_error'").iloc[0]
    assert row["n"] == 3 and row["mean"] == 6.0 and row["sd"] == 1.0
    assert row["ci_high"] - 6.0 == pytest.approx(stats.t.ppf(0.975, 2) / math.sqrt(3))
    onset = out.query("alpha2 == 0.1 and figure == 'onset_step'").iloc[0]
    assert onset["n"] == 2 and onset["mean"] == pytest.approx(42.5)  # never-saturated run left out


def test_seed_summary_from_runs(make_run):
    root = None
    for alpha2 in (0.0, 0.1):
        for seed in (0, 1):
            root = make_run(alpha2=alpha2, seed=seed, steps=100).parent
    out = seed_summary(root)
    test_error = out.query("figure == 'test_error'")
    assert list(test_error["alpha2"]) == [0.0, 0.1] and list(test_error["n"]) == [2, 2]
    assert test_error.iloc[0]["mean"] == pytest.approx(5.1)  # 5 + 0.2 * seed, seeds 0, 1


def test_paired_test_equals_scipy():
    base = [5.0, 6.0, 7.0, 6.5, 5.5, 6.2, 5.9]
    noisy = [4.5, 5.8, 6.1, 6.4, 5.0, 6.0, 5.2]
    table = _table({0.0: base, 0.1: noisy})
    out = paired_test(table)
    assert len(out) == 1
    row = out.iloc[0]
    ref = stats.ttest_rel(noisy, base)
    assert row["n_pairs"] == 7 and row["t"] == pytest.approx(ref.statistic)
    assert row["pvalue"] == pytest.approx(ref.pvalue)
    diffs = np.subtract(noisy, base)
    assert row["mean_diff"] == pytest.approx(diffs.mean())
    assert (row["ci_low"], row["ci_high"]) == tuple(pytest.approx(v) for v in t_interval(diffs)[1:])
    assert row["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(diffs).pvalue)


def test_paired_test_small_samples_and_matching():
    table = _table({0.0: [5.0, 6.0, 7.0], 0.1: [4.0, 5.5]})  # seeds 0, 1 pair; seed 2 unpaired
    row = paired_test(table).iloc[0]
    assert row["n_pairs"] == 2 and row["seeds"] == "0,1"
    assert math.isnan(row["wilcoxon_pvalue"])  # < 6 pairs
    assert row["pvalue"] == pytest.approx(stats.ttest_rel([4.0, 5.5], [5.0, 6.0]).pvalue)
    one = paired_test(_table({0.0: [5.0], 0.1: [4.0]})).iloc[0]
    assert one["n_pairs"] == 1 and math.isnan(one["pvalue"])
    assert paired_test(_table({0.1: [4.0]})).empty  # no baseline


def test_run_table_columns(make_run):
    path = make_run(alpha2=0.1, seed=2, steps=300)
    row = run_table([path]).iloc[0]
    assert row["onset_step"] == math.ceil(30 * math.log(100)) - 1
    assert row["test_error"] == pytest.approx(5.0 - 0.8 + 0.12 + 0.4)
    assert row["last_step"] == 299 and row["noise"] == "annealed"
    assert 0 < row["grad_target_late"] < 0.2 and row["median_saturation_step"] > 0


def test_comparison_table_three_significant_figures_and_no_interval_for_one_seed():
    from satkit.analysis import comparison_table

    table = pd.DataFrame({
        "run": ["s0", "s1", "n0"], "dataset": "digits", "alpha2": [0.0, 0.0, 0.1],
        "noise": ["none", "none", "annealed"], "seed": [0, 1, 0],
        "test_error": [1.14, 1.18, 1.10], "onset_step": [99.0, 101.0, 148.0],
        "onset_step_noisy": [99.0, 101.0, 170.0], "median_saturation_step": [37.0, 37.0, 41.0],
        "median_saturation_step_noisy": [37.0, 37.0, np.nan],
        "grad_target_late": [0.0021, 0.0023, 0.0068], "noisy_view": True})
    out = comparison_table(table).set_index("method")
    assert list(out.columns) == ["alpha2", "seeds", "test error %", "onset step (clean)",
                                 "onset step (training logits)", "median sample onset (clean)",
                                 "median sample onset (training logits)", "late |dL/df_y|"]
    noisy = out.loc["Noisy Softmax α²=0.1"]
    assert noisy["late |dL/df_y|"] == "0.00680"  # not "0.01"
    assert noisy["test error %"] == "1.10" and noisy["onset step (training logits)"] == "170"
    assert noisy["median sample onset (training logits)"] == "never"
    assert "±" not in "".join(noisy.astype(str)) and "nan" not in "".join(noisy.astype(str))
    soft = out.loc["softmax (α²=0)"]
    half = stats.t.ppf(0.975, 1) * np.std([0.0021, 0.0023], ddof=1) / math.sqrt(2)
    assert soft["late |dL/df_y|"] == f"0.00220 ± {half:.2g}"
    assert soft["onset step (clean)"].startswith("100 ± ")


def test_comparison_of_runs_with_the_noisy_view(make_run, expected_onset):
    from satkit.analysis import comparison_table

    root = None
    for alpha2 in (0.0, 0.1):
        root = make_run(alpha2=alpha2, steps=300).parent
    row = comparison_table(root).set_index("method").loc["Noisy Softmax α²=0.1"]
    assert row["onset step (clean)"] == str(expected_onset(0.1, "clean"))
    assert row["onset step (training logits)"] == str(expected_onset(0.1, "noisy"))
