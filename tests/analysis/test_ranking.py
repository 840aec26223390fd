"""rank_methods on hand-built runs whose figures have known values, and the report section."""

import math

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import (
    has_several_methods,
    load_run,
    median_time_to_saturation,
    rank_methods,
    ranking_markdown,
    report,
    run_table,
    t_interval,
)
from satkit.analysis.ranking import RANKING_COLUMNS

STEPS = 300


def _onset(timing: float) -> int:
    """Onset of the synthetic metrics (conftest): p = 1 - exp(-(t+1)/(20 (1 + 5 a)))."""
    return math.ceil(20 * (1 + 5 * timing) * math.log(100)) - 1


def _never_saturated(num: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"index": np.arange(num),
                         "first_saturated_step": pd.array([pd.NA] * num, dtype="Int64"),
                         "desaturations": 0, "last_p_target": 0.5,
                         "last_seen_step": STEPS - 1})


@pytest.fixture
def ranked(tmp_path, run_writer, metrics_factory):
    """softmax, label smoothing (later onset, lower error, 1.1x cost), focal (never saturates,
    highest error, 2x cost); seeds 0 and 1; a second data set with its own softmax."""
    root = tmp_path / "cmp"
    spec = {  # loss: (metrics timing, test errors by seed, seconds per step by seed)
        "softmax": (0.0, (5.0, 5.2), (0.10, 0.10)),
        "label-smoothing": (0.2, (4.0, 4.4), (0.12, 0.10)),
        "focal": (None, (6.0, 6.0), (0.20, 0.20)),
    }
    for loss, (timing, errors, costs) in spec.items():
        for seed in (0, 1):
            never = timing is None
            metrics = metrics_factory(STEPS, 0.0)
            if never:
                metrics = metrics.assign(p_target_median=0.5)
            run_writer(root, name=f"{loss}_seed={seed}", seed=seed, steps=STEPS,
                       alpha2=0.0 if never else timing, test_error=errors[seed],
                       metrics=metrics if never else None,
                       samples=_never_saturated() if never else None,
                       config_extra={"loss": loss, "method": loss, "effective_alpha2": 0.0,
                                     "alpha2": 0.1, "epsilon": 0.1, "gamma": 2.0},
                       summary_extra={"loss": loss, "alpha2": 0.0,
                                      "seconds_per_step": costs[seed]})
    for loss, cost in (("softmax", 1.0), ("label-smoothing", 3.0)):
        run_writer(root, name=f"mnist_{loss}", dataset="mnist", steps=STEPS, test_error=1.0,
                   config_extra={"loss": loss, "method": loss, "effective_alpha2": 0.0},
                   summary_extra={"loss": loss, "seconds_per_step": cost})
    return root


def test_rank_methods_known_answers(ranked):
    out = rank_methods(ranked)
    assert list(out.columns) == list(RANKING_COLUMNS)
    digits = out[out["dataset"] == "digits"].set_index("loss")
    # sorted by test error within the data set
    assert list(digits.index) == ["label-smoothing", "softmax", "focal"]
    assert list(digits["method"]) == ["label smoothing ε=0.1", "softmax (α²=0)",
                                      "focal loss γ=2"]
    ls = digits.loc["label-smoothing"]
    assert ls["seeds"] == 2 and ls["test_error"] == pytest.approx(4.2)
    assert (ls["test_error_ci_low"], ls["test_error_ci_high"]) == pytest.approx(
        t_interval([4.0, 4.4])[1:])
    assert digits.loc["softmax", "onset_step"] == _onset(0.0)
    assert ls["onset_step"] == _onset(0.2) and ls["onset_never"] == 0
    focal = digits.loc["focal"]
    assert math.isnan(focal["onset_step"]) and focal["onset_never"] == 2
    assert math.isnan(focal["median_saturation_step"]) and focal["saturated_fraction"] == 0
    # cost: mean seconds per step over the method's runs / the softmax mean of the data set
    assert ls["cost_vs_softmax"] == pytest.approx(0.11 / 0.10)
    assert focal["cost_vs_softmax"] == pytest.approx(2.0)
    assert digits.loc["softmax", "cost_vs_softmax"] == 1.0
    assert out[(out["dataset"] == "mnist") & (out["loss"] == "label-smoothing")][
        "cost_vs_softmax"].item() == pytest.approx(3.0)
    # ranks: 1 = best; never saturating ranks as latest onset and latest median
    assert list(digits["rank_test_error"]) == [1, 2, 3]
    assert list(digits["rank_onset"]) == [2, 3, 1]
    assert list(digits["rank_median_saturation"]) == [2, 3, 1]
    assert list(digits["rank_cost"]) == [2, 1, 3]
    assert str(out["rank_cost"].dtype) == "Int64"


def test_pooled_median_and_late_gradient_match_the_single_run_functions(ranked):
    runs = [load_run(ranked / f"softmax_seed={s}") for s in (0, 1)]
    pooled = pd.concat([r.samples for r in runs], ignore_index=True)  # same last step
    expected = median_time_to_saturation(pooled)
    row = rank_methods(runs).iloc[0]
    assert row["median_saturation_step"] == expected["median"]
    assert (row["median_saturation_ci_low"], row["median_saturation_ci_high"]) == (
        expected["ci_low"], expected["ci_high"])
    assert row["saturated_fraction"] == expected["events"] / expected["n"]
    assert row["grad_target_late"] == pytest.approx(run_table(runs)["grad_target_late"].mean())
    assert math.isfinite(row["test_error_ci_low"])  # two seeds: an interval


def test_ties_share_the_lower_rank_and_missing_figures_are_unranked(tmp_path, run_writer):
    root = tmp_path / "ties"
    for loss in ("softmax", "focal", "temperature"):
        run_writer(root, name=loss, test_error=3.0, steps=50,
                   config_extra={"loss": loss, "method": loss, "effective_alpha2": 0.0})
    out = rank_methods(root)
    assert list(out["rank_test_error"]) == [1, 1, 1]
    assert list(out["loss"]) == ["softmax", "focal", "temperature"]  # method order breaks ties
    # summary.json has seconds and steps but no seconds_per_step: seconds / steps is used
    assert out["seconds_per_step"].tolist() == pytest.approx([3.0 / 50] * 3)


def test_rank_without_softmax_leaves_cost_unknown(tmp_path, run_writer):
    path = run_writer(tmp_path, name="focal", steps=50,
                      config_extra={"loss": "focal", "method": "focal", "effective_alpha2": 0.0})
    out = rank_methods(path)
    assert len(out) == 1 and math.isnan(out["cost_vs_softmax"].item())
    assert out["rank_cost"].isna().all()


def test_has_several_methods(ranked, make_run):
    assert has_several_methods(ranked)
    assert has_several_methods(run_table(ranked))
    sweep = [make_run(alpha2=a, name=f"a{a}") for a in (0.0, 0.1)]
    assert not has_several_methods(sweep)  # an alpha2 sweep keeps its own tables


def test_markdown_and_report_section(ranked):
    text = ranking_markdown(rank_methods(ranked))
    assert "| dataset | method |" in text  # two data sets: the column is shown
    assert "4.20 ± 2.5 (#1)" in text  # three significant figures, the half-width two
    assert "never by 299 (#1)" in text and "> 299, 0% saturated (#1)" in text
    assert "2.00× (#3)" in text
    full = report(ranked)
    assert "## Ranking of the methods" in full
    assert full.index("## Ranking") < full.index("## Across seeds")
    assert "label smoothing ε=0.1" in full.split("## Paired test")[1]
    assert "bench_heads.py" in full


def test_report_of_an_alpha2_sweep_has_no_ranking(make_run):
    root = None
    for alpha2 in (0.0, 0.1):
        root = make_run(alpha2=alpha2, steps=60).parent
    assert "## Ranking" not in report(root)


def test_rank_in_each_view_known_answers_both_ways(tmp_path, run_writer, metrics_factory,
                                                    samples_factory):
    """softmax saturates late in the clean view and early under its training logits; label
    smoothing the other way round: each view ranks the other method first."""
    early, late = metrics_factory(STEPS, 0.0), metrics_factory(STEPS, 0.2)
    s_early, s_late = samples_factory(STEPS, 0.0, 200), samples_factory(STEPS, 0.2, 200)

    def mixed(clean, noisy):
        cols = [c for c in clean.columns if "noisy" in c]
        return clean.assign(**{c: noisy[c] for c in cols})

    root = tmp_path / "views"
    for loss, (metrics, samples) in {"softmax": (mixed(late, early), mixed(s_late, s_early)),
                                     "label-smoothing": (mixed(early, late),
                                                         mixed(s_early, s_late))}.items():
        run_writer(root, name=loss, steps=STEPS, test_error=1.0, metrics=metrics,
                   samples=samples, config_extra={"loss": loss, "method": loss,
                                                  "effective_alpha2": 0.0, "epsilon": 0.1},
                   summary_extra={"loss": loss, "seconds_per_step": 0.1})
    clean = rank_methods(root).set_index("loss")
    noisy = rank_methods(root, saturation="noisy").set_index("loss")
    late_onset = math.ceil(20 * 2.0 * 1.2 * math.log(100)) - 1  # alpha2 = 0.2, noisy view
    assert clean.loc["softmax", "onset_step"] == _onset(0.2)
    assert clean.loc["label-smoothing", "onset_step"] == _onset(0.0)
    assert noisy.loc["softmax", "onset_step"] == _onset(0.0)
    assert noisy.loc["label-smoothing", "onset_step"] == late_onset
    assert (clean.loc["softmax", "rank_onset"], clean.loc["label-smoothing", "rank_onset"]) \
        == (1, 2)
    assert (noisy.loc["softmax", "rank_onset"], noisy.loc["label-smoothing", "rank_onset"]) \
        == (2, 1)
    assert (clean.loc["softmax", "rank_median_saturation"],
            noisy.loc["softmax", "rank_median_saturation"]) == (1, 2)
    ls = load_run(root / "label-smoothing")
    assert noisy.loc["label-smoothing", "median_saturation_step"] == \
        median_time_to_saturation(ls, saturation="noisy")["median"]
    with pytest.raises(ValueError, match="saturation must be one of clean, noisy"):
        rank_methods(root, saturation="training")


def test_runs_without_the_noisy_view_rank_nothing_there(ranked):
    # focal's samples tables predate the noisy view: not recorded, so NaN and unranked there
    clean = rank_methods(ranked).set_index(["dataset", "loss"])
    noisy = rank_methods(ranked, saturation="noisy").set_index(["dataset", "loss"])
    assert clean.loc[("digits", "focal"), "saturated_fraction"] == 0
    assert math.isnan(noisy.loc[("digits", "focal"), "saturated_fraction"])
    assert pd.isna(noisy.loc[("digits", "focal"), "rank_median_saturation"])
    assert noisy.loc[("digits", "softmax"), "median_saturation_step"] > 0
    assert noisy["test_error"].tolist() == clean["test_error"].tolist()
