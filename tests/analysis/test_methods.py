"""Runs of every issue-7 method: labels, grouping and the paired test are method-aware."""

import json
import math

import pandas as pd
import pytest
from scipy import stats

from satkit.analysis import (
    comparison_table,
    load_run,
    method_label,
    method_setting,
    paired_test,
    run_table,
    seed_summary,
)
from satkit.methods import METHODS


def trainer_config(loss: str, *, alpha2: float = 0.1, **fields) -> dict:
    """config.json keys as the trainer writes them: raw ``loss``/``alpha2`` (the config
    default 0.1 even when unused) plus ``method`` and ``effective_alpha2``."""
    method = "softmax" if loss == "noisy" and alpha2 == 0 else loss
    return {"loss": loss, "alpha2": alpha2, "method": method,
            "effective_alpha2": alpha2 if loss == "noisy" else 0.0, "epsilon": 0.1,
            "beta": 0.1, "disturb_alpha": 0.1, "gamma": 2.0, "temperature": 2.0,
            "scale": 30.0, "margin": None, **fields}


def write_method(run_writer, root, loss, *, seed=0, timing=0.0, alpha2=0.1, dataset="digits",
                 **kwargs):
    """A run of ``loss`` whose synthetic metrics saturate like alpha2 = ``timing``."""
    config = trainer_config(loss, alpha2=alpha2, **kwargs.pop("config", {}))
    summary = {"loss": config["method"], "alpha2": config["effective_alpha2"],
               "noise": "annealed" if config["method"] == "noisy" else "none",
               **kwargs.pop("summary", {})}
    return run_writer(root, alpha2=timing, seed=seed, dataset=dataset, config_extra=config,
                      summary_extra=summary, name=f"{dataset}_{loss}_{alpha2:g}_seed={seed}",
                      **kwargs)


def test_every_method_has_a_colour_and_the_trainer_reads_the_catalogue():
    from satkit.heads import LOSSES
    from satkit.plots import METHOD_COLORS
    from satkit.training.config import LOSS_NAMES

    assert tuple(METHODS) == LOSS_NAMES == tuple(LOSSES)
    assert set(METHOD_COLORS) == set(METHODS) - {"softmax", "noisy"}


@pytest.mark.parametrize("loss, expected", [
    ("label-smoothing", "label smoothing ε=0.1"),
    ("confidence-penalty", "confidence penalty β=0.1"),
    ("disturb-label", "DisturbLabel α=0.1"), ("focal", "focal loss γ=2"),
    ("temperature", "temperature T=2"), ("cosface", "CosFace s=30 m=0.35"),
    ("arcface", "ArcFace s=30 m=0.5"), ("softmax", "softmax (α²=0)"),
])
def test_run_reads_method_and_effective_alpha2(tmp_path, run_writer, loss, expected):
    run = load_run(write_method(run_writer, tmp_path, loss))
    assert (run.loss, run.alpha2, run.noise) == (loss, 0.0, "none")
    assert run.label == expected
    assert method_label(run.alpha2, run.noise, run.loss, run.setting) == expected


def test_noisy_runs_keep_alpha2_and_noise(tmp_path, run_writer):
    noisy = load_run(write_method(run_writer, tmp_path, "noisy", alpha2=0.5, timing=0.5))
    assert (noisy.loss, noisy.alpha2, noisy.noise, noisy.setting) == ("noisy", 0.5, "annealed", "")
    zero = load_run(write_method(run_writer, tmp_path, "noisy", alpha2=0.0))
    assert (zero.loss, zero.alpha2, zero.noise, zero.label) == ("softmax", 0.0, "none",
                                                                  "softmax (α²=0)")


@pytest.mark.parametrize("config, expected", [
    ({"loss": "focal", "alpha2": 0.1}, ("focal", 0.0, "none")),       # regulariser, raw alpha2
    ({"loss": "noisy", "alpha2": 0.0}, ("softmax", 0.0, "none")),     # noise off = softmax
    ({"loss": "noisy", "alpha2": 0.1}, ("noisy", 0.1, "annealed")),
    ({"alpha2": 0.1}, ("noisy", 0.1, "annealed")),                    # before --loss existed
    ({"alpha2": 0.0}, ("softmax", 0.0, "none")),
])
def test_older_runs_fall_back(tmp_path, run_writer, config, expected):
    path = run_writer(tmp_path, alpha2=0.1, config_extra=config)
    raw = path / "config.json"  # drop what this older format lacks (``method`` never written)
    data = {k: v for k, v in json.loads(raw.read_text()).items()
            if k not in ("loss", "alpha2") or k in config}
    raw.write_text(json.dumps(data))
    summary = json.loads((path / "summary.json").read_text())
    summary.pop("loss")
    summary["alpha2"] = config["alpha2"]
    (path / "summary.json").write_text(json.dumps(summary))
    run = load_run(path)
    assert (run.loss, run.alpha2, run.noise) == expected


def test_summary_only_run(tmp_path, run_writer):
    path = write_method(run_writer, tmp_path, "label-smoothing")
    (path / "config.json").unlink()
    run = load_run(path)  # summary.json stands in: its loss is the method, alpha2 effective
    assert (run.loss, run.alpha2, run.label) == ("label-smoothing", 0.0, "label smoothing")


def test_method_setting_and_label_defaults():
    assert method_setting("arcface", {"scale": 64, "margin": 0.3}) == "s=64 m=0.3"
    assert method_setting("focal", {}) == ""
    assert method_label(0.0, "none", "unknown-method") == "unknown-method"
    assert method_label(0.1, "annealed", "noisy") == "Noisy Softmax α²=0.1"


@pytest.fixture
def methods_root(tmp_path, run_writer):
    """softmax (one of the two seeds via noisy at alpha2=0), label smoothing at two epsilons,
    focal; seeds 0 and 1; plus a softmax run of another data set."""
    root = tmp_path / "cmp"
    errors = {"softmax": (5.0, 6.0), "label-smoothing": (4.0, 4.5), "focal": (7.0, 6.5)}
    for seed in (0, 1):
        write_method(run_writer, root, "noisy" if seed == 0 else "softmax", alpha2=0.0,
                     seed=seed, test_error=errors["softmax"][seed], steps=100)
        write_method(run_writer, root, "label-smoothing", seed=seed, timing=0.2,
                     test_error=errors["label-smoothing"][seed], steps=100)
        write_method(run_writer, root, "label-smoothing", seed=seed, timing=0.2, alpha2=0.2,
                     config={"epsilon": 0.3}, test_error=3.0, steps=100)
        write_method(run_writer, root, "focal", seed=seed, timing=1.0,
                     test_error=errors["focal"][seed], steps=100)
    write_method(run_writer, root, "softmax", dataset="mnist", test_error=1.0, steps=100)
    return root


def test_runs_group_by_method(methods_root):
    table = run_table(methods_root)
    assert set(table["alpha2"]) == {0.0}  # every method is alpha2 = 0 ...
    summary = seed_summary(table, figures=("test_error",))
    # ... yet each method and setting is its own group, in data set then method order
    assert list(zip(summary["dataset"], summary["loss"], summary["setting"], strict=True)) == [
        ("digits", "softmax", ""), ("digits", "label-smoothing", "ε=0.1"),
        ("digits", "label-smoothing", "ε=0.3"), ("digits", "focal", "γ=2"),
        ("mnist", "softmax", "")]
    digits = summary[summary["dataset"] == "digits"].set_index("setting")
    assert digits.loc["ε=0.1", "mean"] == 4.25 and digits.loc["", "n"] == 2
    shown = comparison_table(table, figures={"test_error": ("err", ".2f")})
    assert list(shown["method"]) == ["softmax (α²=0)", "label smoothing ε=0.1",
                                     "label smoothing ε=0.3", "focal loss γ=2", "softmax (α²=0)"]


def test_paired_test_baseline_is_softmax_of_same_dataset_and_seed(methods_root):
    out = paired_test(methods_root)
    assert list(out["loss"]) == ["label-smoothing", "label-smoothing", "focal"]
    row = out[out["setting"] == "ε=0.1"].iloc[0]
    # seed 0's baseline is Noisy Softmax at alpha2 = 0, seed 1's plain softmax
    assert row["n_pairs"] == 2 and row["baseline_mean"] == 5.5
    assert row["pvalue"] == pytest.approx(stats.ttest_rel([4.0, 4.5], [5.0, 6.0]).pvalue)
    assert math.isnan(out[out["loss"] == "focal"].iloc[0]["wilcoxon_pvalue"])
    assert "mnist" not in set(out["dataset"])  # the mnist softmax run has nothing to pair


def test_hand_table_without_method_columns_still_pairs():
    table = pd.DataFrame({"run": list("abcd"), "alpha2": [0.0, 0.0, 0.1, 0.1],
                          "seed": [0, 1, 0, 1], "test_error": [5.0, 6.0, 4.0, 5.5]})
    row = paired_test(table).iloc[0]
    assert (row["loss"], row["noise"], row["n_pairs"]) == ("noisy", "annealed", 2)


def test_paper_table_puts_measured_disturblabel_on_the_papers_row(tmp_path, run_writer):
    from satkit.analysis import paper_table
    from satkit.analysis.paper import DISTURBLABEL

    root = tmp_path / "cifar"
    write_method(run_writer, root, "softmax", alpha2=0.0, dataset="cifar10", test_error=8.0)
    write_method(run_writer, root, "disturb-label", dataset="cifar10", test_error=9.0)
    write_method(run_writer, root, "focal", dataset="cifar10", test_error=8.5)
    table = paper_table(root).set_index("method")
    assert table.loc[DISTURBLABEL, "measured_error"] == 9.0
    assert table.loc[DISTURBLABEL, "paper_error"] == 9.45
    assert table.loc["softmax (α²=0)", "measured_error"] == 8.0
    assert table.loc["focal loss γ=2", "measured_error"] == 8.5
    assert math.isnan(table.loc["focal loss γ=2", "paper_error"])
    assert list(table.index)[-1] == "focal loss γ=2"  # regularisers after the paper's rows
