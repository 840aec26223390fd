"""The paper's numbers, the side-by-side table and the Markdown formatter."""

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import markdown_table, paper_results, paper_table, paper_table_markdown


def test_paper_results_are_the_papers_table():
    r = paper_results().set_index(["benchmark", "method"])["error"]
    assert r[("CIFAR10", "softmax (α²=0)")] == 8.11
    assert r[("CIFAR10+", "Noisy Softmax α²=0.1")] == 6.36
    assert r[("CIFAR100", "Noisy Softmax α²=1")] == 35.23
    assert r[("CIFAR100", "DisturbLabel (Xie et al. 2016)")] == 32.99
    assert len(r) == 18


def test_paper_table_side_by_side(make_run):
    for alpha2, errors in {0.0: (8.0, 8.4), 0.1: (7.2, 7.4)}.items():
        for seed, err in enumerate(errors):
            root = make_run(alpha2=alpha2, seed=seed, dataset="cifar10", test_error=err,
                            steps=20).parent
    table = paper_table(root)
    assert set(table["benchmark"]) == {"CIFAR10"} and len(table) == 6
    soft = table.set_index("method").loc["softmax (α²=0)"]
    assert soft["paper_error"] == 8.11 and soft["measured_error"] == pytest.approx(8.2)
    assert soft["delta"] == pytest.approx(8.2 - 8.11) and soft["n_seeds"] == 2
    unmeasured = table.set_index("method").loc["Noisy Softmax α²=1"]
    assert np.isnan(unmeasured["measured_error"]) and unmeasured["n_seeds"] == 0
    text = paper_table_markdown(table)
    assert "| CIFAR10 | softmax (α²=0) | 8.11 | 8.20 |" in text


def test_paper_table_augmented_and_unknown_dataset(make_run):
    make_run(alpha2=0.0, dataset="cifar10", config_extra={"augment": True}, steps=10)
    root = make_run(alpha2=0.1, dataset="digits", steps=10).parent
    table = paper_table(root)
    assert set(table["benchmark"]) == {"CIFAR10+", "digits"}
    digits = table[table["benchmark"] == "digits"]
    assert len(digits) == 1 and np.isnan(digits["paper_error"].iloc[0])
    assert "not in the paper" in digits["note"].iloc[0]


def test_markdown_table_formatting():
    frame = pd.DataFrame({"name": ["a|b", None], "x": [1.23456, np.nan], "n": [3, 4],
                          "p": [0.000123, 1.0], "ok": [True, False]})
    text = markdown_table(frame, formats={"p": ".2g"})
    lines = text.splitlines()
    assert lines[0] == "| name | x | n | p | ok |"
    assert lines[1] == "|---|---:|---:|---:|---|"
    assert lines[2] == "| a\\|b | 1.23 | 3 | 0.00012 | yes |"
    assert lines[3] == "| – | – | 4 | 1 | no |"
    assert markdown_table(frame.iloc[:0]).count("\n") == 2


def test_markdown_header_pipes_are_escaped():
    text = markdown_table(pd.DataFrame({"late |g|": [1.0]}))
    assert text.splitlines()[0] == "| late \\|g\\| |"


@pytest.mark.parametrize("value, text", [(0.0021, "0.00210"), (0.0068, "0.00680"),
                                         (1.14, "1.14"), (31.77, "31.8"), (148.0, "148"),
                                         (99.96, "100"), (12345.6, "12346"), (5.0, "5.00")])
def test_three_significant_figures(value, text):
    from satkit.analysis.markdown import format_sig

    assert format_sig(value) == text
    assert markdown_table(pd.DataFrame({"x": [value]})).splitlines()[2] == f"| {text} |"


def test_interval_text_never_prints_nan():
    from satkit.analysis.markdown import format_interval

    assert format_interval(1.1, float("nan")) == "1.10"
    assert format_interval(0.0021, 0.00043) == "0.00210 ± 0.00043"
    assert format_interval(148.0, 12.4, ".0f") == "148 ± 12"
