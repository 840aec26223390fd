"""Kaplan-Meier survival of individual saturation, against hand computation and scipy."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from satkit.analysis import (
    RunError,
    load_run,
    logrank,
    median_time_to_saturation,
    saturation_times,
    survival,
)


def _samples(first, last_seen=None):
    frame = pd.DataFrame({"first_saturated_step": pd.array(first, dtype="Int64")})
    if last_seen is not None:
        frame["last_seen_step"] = last_seen
    return frame


# five samples saturate at 1, 2, 2, 5, 7; three never do (censored at the last step, 10)
HAND = _samples([1, 2, 2, 5, 7, None, None, None])


def test_survival_matches_hand_kaplan_meier():
    curve = survival(HAND, last_step=10)
    assert list(curve["step"]) == [1, 2, 5, 7, 10]
    expected = [7 / 8, 7 / 8 * 5 / 7, 5 / 8 * 4 / 5, 1 / 2 * 3 / 4, 3 / 8]
    np.testing.assert_allclose(curve["survival"], expected)
    assert list(curve["at_risk"]) == [8, 7, 5, 4, 3]
    assert list(curve["events"]) == [1, 2, 1, 1, 0]
    assert list(curve["censored"]) == [0, 0, 0, 0, 3]


def test_linear_interval_is_greenwood():
    curve = survival(HAND, last_step=10, method="linear")
    # Greenwood at step 2: var = S^2 (1/(8*7) + 2/(7*5))
    s = 5 / 8
    half = stats.norm.ppf(0.975) * s * math.sqrt(1 / 56 + 2 / 35)
    row = curve.set_index("step").loc[2]
    assert row["ci_low"] == pytest.approx(s - half) and row["ci_high"] == pytest.approx(s + half)


def test_loglog_interval_equals_scipy():
    curve = survival(HAND, last_step=10, confidence=0.9)
    data = stats.CensoredData(uncensored=[1, 2, 2, 5, 7], right=[10, 10, 10])
    ci = stats.ecdf(data).sf.confidence_interval(0.9, method="log-log")
    np.testing.assert_allclose(curve["ci_low"], ci.low.probabilities)
    np.testing.assert_allclose(curve["ci_high"], ci.high.probabilities)
    assert (curve["ci_low"] <= curve["survival"]).all()


def test_median_and_its_interval_invert_the_pointwise_band():
    m = median_time_to_saturation(HAND, last_step=10)
    assert m["median"] == 5.0 and m["n"] == 8 and m["events"] == 5
    curve = survival(HAND, last_step=10)
    first_low = curve.loc[curve["ci_low"] <= 0.5, "step"].iloc[0]
    assert m["ci_low"] == first_low
    assert math.isnan(m["ci_high"])  # the upper band never drops to 0.5: not reached
    assert m["ci_low"] <= m["median"]


def test_median_not_reached_and_all_censored():
    m = median_time_to_saturation(_samples([3, None, None, None]), last_step=10)
    assert math.isnan(m["median"]) and m["events"] == 1
    curve = survival(_samples([None, None]), last_step=10)
    assert list(curve["survival"]) == [1.0] and list(curve["ci_low"]) == [1.0]


def test_default_censoring_step_and_unseen_samples():
    samples = _samples([2, None, None], last_seen=[4, 9, -1])  # third sample never seen
    times, saturated = saturation_times(samples)
    np.testing.assert_array_equal(times, [2, 9]) and np.testing.assert_array_equal(saturated,
                                                                                  [True, False])
    with pytest.raises(RunError, match="last_step"):
        saturation_times(_samples([2, None]))
    with pytest.raises(RunError, match="first_saturated_step"):
        saturation_times(pd.DataFrame({"x": [1]}))


def test_survival_of_run_censors_at_its_last_step(make_run):
    run = load_run(make_run(alpha2=0.0, steps=100, num_samples=50))
    times, saturated = saturation_times(run)
    assert times[~saturated].tolist() == [99.0] * int((~saturated).sum())
    curve = survival(run)
    assert curve["survival"].is_monotonic_decreasing and curve["at_risk"].iloc[0] == 50


def test_empty_samples_give_empty_results():
    empty = _samples([])
    assert survival(empty, last_step=5).empty
    m = median_time_to_saturation(empty, last_step=5)
    assert m["n"] == 0 and math.isnan(m["median"])
    assert math.isnan(logrank(empty, HAND, last_step_a=5, last_step_b=10)["pvalue"])


def test_logrank_matches_scipy_and_handles_no_events():
    other = _samples([4, 6, 8, None])
    res = logrank(HAND, other, last_step_a=10, last_step_b=10)
    ref = stats.logrank(stats.CensoredData(uncensored=[1, 2, 2, 5, 7], right=[10] * 3),
                        stats.CensoredData(uncensored=[4, 6, 8], right=[10]))
    assert res["statistic"] == pytest.approx(ref.statistic)
    assert res["pvalue"] == pytest.approx(ref.pvalue)
    assert (res["n_a"], res["n_b"], res["events_a"], res["events_b"]) == (8, 4, 5, 3)
    none = logrank(_samples([None]), _samples([None]), last_step_a=3, last_step_b=3)
    assert math.isnan(none["statistic"]) and math.isnan(none["pvalue"])


def test_softmax_saturates_earlier_than_noisy(make_run):
    soft = load_run(make_run(alpha2=0.0, steps=300, num_samples=300))
    noisy = load_run(make_run(alpha2=1.0, steps=300, num_samples=300))
    assert median_time_to_saturation(soft)["median"] < median_time_to_saturation(noisy)["median"]
    assert logrank(soft, noisy)["pvalue"] < 1e-6
