"""The two views (clean, training logits) and the two events (first, settled), on tables whose
answer is built in, and what runs recorded before them say when asked."""

import math

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import (
    RunError,
    comparison_table,
    load_run,
    logrank,
    median_time_to_saturation,
    onset_step,
    postponement,
    report,
    run_table,
    saturation_times,
    survival,
)


def _steps(values):
    return pd.array(values, dtype="Int64")


# Six samples, run up to step 20. Clean: first saturated at 2, 2, 4, 4, 6, never. Under the
# training logits (noise lowers p_y) each saturates later: 5, 5, 8, 8, 12, never. Settled
# (never again below tau) later still; <NA>: last visit below tau.
SAMPLES = pd.DataFrame({
    "first_saturated_step": _steps([2, 2, 4, 4, 6, None]),
    "first_saturated_step_noisy": _steps([5, 5, 8, 8, 12, None]),
    "settled_step": _steps([3, 9, 4, 10, None, None]),
    "settled_step_noisy": _steps([6, 14, 9, 16, None, None]),
    "last_seen_step": 20,
})


@pytest.mark.parametrize("saturation, event, times, observed", [
    ("clean", "first", [2, 2, 4, 4, 6, 20], [1, 1, 1, 1, 1, 0]),
    ("noisy", "first", [5, 5, 8, 8, 12, 20], [1, 1, 1, 1, 1, 0]),
    ("clean", "settled", [3, 9, 4, 10, 20, 20], [1, 1, 1, 1, 0, 0]),
    ("noisy", "settled", [6, 14, 9, 16, 20, 20], [1, 1, 1, 1, 0, 0]),
])
def test_each_view_and_event_reads_its_column(saturation, event, times, observed):
    t, o = saturation_times(SAMPLES, saturation=saturation, event=event)
    np.testing.assert_array_equal(t, times)
    np.testing.assert_array_equal(o, np.array(observed, dtype=bool))


def test_medians_in_each_view_and_event():
    # Kaplan-Meier without ties below the median: S drops to 4/6 at the 2nd value, 2/6 at the
    # 4th -> the median is the 4th smallest observed time (fewer than 1 censored before it)
    assert median_time_to_saturation(SAMPLES)["median"] == 4.0
    assert median_time_to_saturation(SAMPLES, saturation="noisy")["median"] == 8.0
    # settled: 3, 4, 9, 10 observed, two censored at 20 -> S(9) = 3/6 = 0.5
    assert median_time_to_saturation(SAMPLES, event="settled")["median"] == 9.0
    m = median_time_to_saturation(SAMPLES, saturation="noisy", event="settled")
    assert (m["median"], m["saturation"], m["event"], m["events"]) == (14.0, "noisy",
                                                                       "settled", 4)
    curve = survival(SAMPLES, saturation="noisy", event="settled")
    assert list(curve["step"]) == [6, 9, 14, 16, 20]
    np.testing.assert_allclose(curve["survival"], [5 / 6, 4 / 6, 3 / 6, 2 / 6, 2 / 6])


@pytest.mark.parametrize("saturation, event", [("noisy", "first"), ("clean", "settled"),
                                               ("noisy", "settled")])
def test_logrank_tests_the_chosen_column(saturation, event):
    from satkit.analysis.views import event_column

    later = SAMPLES.assign(**{c: SAMPLES[c] + 3 for c in SAMPLES
                              if "step" in c and c != "last_seen_step"})
    column = event_column(event, saturation)
    as_first = [t[[column, "last_seen_step"]].rename(columns={column: "first_saturated_step"})
                for t in (SAMPLES, later)]
    got = logrank(SAMPLES, later, saturation=saturation, event=event, alternative="a_earlier")
    expected = logrank(*as_first, alternative="a_earlier")
    assert got["statistic"] == pytest.approx(expected["statistic"]) and got["statistic"] > 0
    assert got["pvalue"] == pytest.approx(expected["pvalue"])


@pytest.mark.parametrize("call", [
    lambda s: saturation_times(s, saturation="nosiy"),
    lambda s: survival(s, saturation="training"),
    lambda s: logrank(s, s, saturation="Noisy"),
], ids=["saturation_times", "survival", "logrank"])
def test_a_misspelt_view_names_the_argument_and_the_views(call):
    with pytest.raises(ValueError, match="saturation must be one of clean, noisy"):
        call(SAMPLES)


def test_a_bad_event_names_the_events():
    with pytest.raises(ValueError, match="event must be one of first, settled"):
        median_time_to_saturation(SAMPLES, event="last")


# ---------------------------------------------------------------- onset in both views

def _metrics():
    return pd.DataFrame({"step": [0, 10, 20, 30, 40],
                         "p_target_median": [0.5, 0.991, 0.995, 0.999, 0.999],
                         "p_target_noisy_median": [0.3, 0.8, 0.95, 0.992, 0.999],
                         "p_target_q10": [0.1, 0.5, 0.99, 0.99, 0.995],
                         "p_target_noisy_q10": [0.1, 0.2, 0.5, 0.9, 0.991]})


def test_onset_in_both_views_on_a_hand_table():
    m = _metrics()
    assert onset_step(m) == 10 and onset_step(m, saturation="noisy") == 30
    assert onset_step(m, 0.9, saturation="noisy") == 20  # tau may be given positionally
    assert onset_step(m, stat="p_target_q10") == 20
    assert onset_step(m, stat="p_target_q10", saturation="noisy") == 40
    # window 2 on the noisy median: .3, .55, .875, .971, .9955 -> reaches .99 at step 40
    assert onset_step(m, saturation="noisy", window=2) == 40
    assert onset_step(m, 0.9999, saturation="noisy") is None


def test_onset_argument_errors():
    m = _metrics()
    with pytest.raises(ValueError, match="saturation must be one of clean, noisy"):
        onset_step(m, saturation="nosiy")
    with pytest.raises(ValueError, match="clean view"):
        onset_step(m, stat="p_target_noisy_median", saturation="noisy")
    with pytest.raises(ValueError, match="tau"):
        onset_step(m, 1.5)
    with pytest.raises(RunError, match="p_target_noisy_q90"):
        onset_step(m, stat="p_target_q90", saturation="noisy")


def test_postponement_in_the_training_logit_view(make_run, expected_onset):
    soft = load_run(make_run(alpha2=0.0, steps=300))
    noisy = load_run(make_run(alpha2=0.1, steps=300))
    clean = postponement(soft, noisy)
    train = postponement(soft, noisy, saturation="noisy")
    assert clean["onset_noisy"] == expected_onset(0.1, "clean")
    assert train["onset_noisy"] == expected_onset(0.1, "noisy")
    assert train["onset_softmax"] == clean["onset_softmax"] == expected_onset(0.0, "clean")
    assert train["onset_ratio"] > clean["onset_ratio"] > 1
    # gradient and noise figures do not depend on the view
    assert train["grad_ratio_late"] == clean["grad_ratio_late"]
    assert train["noise_annealing"] == clean["noise_annealing"]
    assert train["median_sample_noisy"] == median_time_to_saturation(
        noisy, saturation="noisy")["median"]
    settled = postponement(soft, noisy, saturation="noisy", event="settled")
    assert settled["median_sample_noisy"] > train["median_sample_noisy"]
    assert (settled["saturation"], settled["event"]) == ("noisy", "settled")
    with pytest.raises(ValueError, match="event must be one of"):
        postponement(soft, noisy, event="final")


# ---------------------------------------------------------------- runs recorded before

@pytest.fixture
def legacy(make_run):
    return load_run(make_run(alpha2=0.1, steps=200, legacy=True, name="old"))


@pytest.mark.parametrize("call, column", [
    (lambda r: saturation_times(r, saturation="noisy"), "first_saturated_step_noisy"),
    (lambda r: survival(r, event="settled"), "settled_step"),
    (lambda r: median_time_to_saturation(r, saturation="noisy", event="settled"),
     "settled_step_noisy"),
    (lambda r: logrank(r, r, saturation="noisy"), "first_saturated_step_noisy"),
    (lambda r: onset_step(r, saturation="noisy"), "p_target_noisy_median"),
    (lambda r: postponement(r, r, saturation="noisy"), "p_target_noisy_median"),
], ids=["times", "survival", "median", "logrank", "onset", "postponement"])
def test_old_runs_name_the_missing_column(legacy, call, column):
    with pytest.raises(RunError, match=f"'{column}'") as err:
        call(legacy)
    assert str(legacy.path) in str(err.value)
    assert "saturation='clean'" in str(err.value) or "event='first'" in str(err.value)


def test_old_runs_summarise_without_crashing(legacy, make_run):
    soft = load_run(make_run(alpha2=0.0, steps=200))
    table = run_table([soft, legacy]).set_index("run")
    assert not table.loc["old", "noisy_view"] and table.loc["alpha2=0_seed=0", "noisy_view"]
    for figure in ("onset_step_noisy", "median_saturation_step_noisy", "median_settled_step",
                   "median_settled_step_noisy"):
        assert math.isnan(table.loc["old", figure])
    assert math.isfinite(table.loc["old", "onset_step"])
    shown = comparison_table([soft, legacy]).set_index("method")
    old = shown.loc["Noisy Softmax α²=0.1"]
    assert old["onset step (training logits)"] == "–"
    assert old["median sample onset (training logits)"] == "–"
    assert old["onset step (clean)"] == f"{table.loc['old', 'onset_step']:.0f}"
    text = report([soft, legacy])
    assert "Traceback" not in text and "nan" not in text
    row = next(line for line in text.split("## Individual saturation")[1].splitlines()
               if line.startswith("| old |"))
    cells = [cell.strip() for cell in row.split("|")]
    assert cells.count("–") == 3  # both noisy medians and the noisy p-value


def test_run_table_has_both_views_in_closed_form(make_run, expected_onset):
    row = run_table([make_run(alpha2=0.1, steps=300)]).iloc[0]
    assert row["onset_step"] == expected_onset(0.1, "clean")
    assert row["onset_step_noisy"] == expected_onset(0.1, "noisy")
    assert row["median_saturation_step_noisy"] > row["median_saturation_step"]
    assert row["median_settled_step"] >= row["median_saturation_step"]
    assert row["median_settled_step_noisy"] >= row["median_saturation_step_noisy"]
    assert row["noisy_view"] and row["finished"]
