"""The log-rank test: its direction with the truth built in, and its statistic by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from satkit.analysis import logrank, saturation_times

LAST = 60


def _censored_exponential(mean: float, n: int, seed: int) -> pd.DataFrame:
    """Samples whose first saturation is exponential with ``mean`` steps; those past LAST
    never saturated within the run (censored at its last step)."""
    first = np.random.default_rng(seed).exponential(mean, n).astype("int64")
    steps = pd.array(first, dtype="Int64")
    steps[first > LAST] = pd.NA
    return pd.DataFrame({"first_saturated_step": steps, "last_seen_step": LAST})


EARLY = _censored_exponential(10.0, 150, seed=1)   # saturates early
LATE = _censored_exponential(40.0, 150, seed=2)    # saturates later, a third censored


def hand_logrank(times_a, observed_a, times_b, observed_b) -> tuple[float, float, float]:
    """``(O_a, E_a, V)``: events of a, those expected under H0 over the pooled risk sets, and
    the hypergeometric variance, summed over the distinct event times (at risk: time >= t)."""
    times = np.concatenate([times_a, times_b])
    observed = np.concatenate([observed_a, observed_b])
    expected = variance = 0.0
    for t in np.unique(times[observed]):
        n = np.sum(times >= t)
        n_a = np.sum(times_a >= t)
        d = np.sum((times == t) & observed)
        expected += d * n_a / n
        if n > 1:
            variance += d * (n_a / n) * (1 - n_a / n) * (n - d) / (n - 1)
    return float(observed_a.sum()), expected, variance


def test_the_statistic_is_observed_minus_expected_over_its_standard_deviation():
    ta, sa = saturation_times(EARLY)
    tb, sb = saturation_times(LATE)
    o, e, v = hand_logrank(ta, sa, tb, sb)
    z = (o - e) / math.sqrt(v)
    res = logrank(EARLY, LATE, alternative="a_earlier")
    assert o > e  # the early run had more saturations than the null expects
    assert res["statistic"] == pytest.approx(z, rel=1e-10)
    assert res["pvalue"] == pytest.approx(stats.norm.sf(z), rel=1e-8)
    two = logrank(EARLY, LATE)
    assert two["statistic"] == pytest.approx(z, rel=1e-10)
    assert two["pvalue"] == pytest.approx(stats.chi2.sf(z * z, df=1), rel=1e-8)


@pytest.mark.parametrize("a, b, earlier", [(EARLY, LATE, True), (LATE, EARLY, False)],
                         ids=["a-early", "a-late"])
def test_direction_known_answer_both_ways(a, b, earlier):
    p_earlier = logrank(a, b, alternative="a_earlier")["pvalue"]
    p_later = logrank(a, b, alternative="a_later")["pvalue"]
    true_p, false_p = (p_earlier, p_later) if earlier else (p_later, p_earlier)
    assert true_p < 1e-6
    assert false_p > 1 - 1e-6
    assert p_earlier + p_later == pytest.approx(1.0)
    assert logrank(a, b)["pvalue"] == pytest.approx(2 * min(p_earlier, p_later))


def test_no_difference_gives_no_evidence_either_way():
    same = logrank(EARLY, EARLY.copy(), alternative="a_earlier")
    assert same["statistic"] == pytest.approx(0.0, abs=1e-12)
    assert same["pvalue"] == pytest.approx(0.5)


def test_censoring_counts_at_risk_until_the_last_step():
    # a: 2 saturate at step 1, 2 never (censored at 10); b: all 4 saturate at step 5.
    a = pd.DataFrame({"first_saturated_step": pd.array([1, 1, None, None], dtype="Int64")})
    b = pd.DataFrame({"first_saturated_step": pd.array([5, 5, 5, 5], dtype="Int64")})
    # step 1: 8 at risk, 4 of a, 2 events -> E_a = 1, V = 2 * 1/2 * 1/2 * 6/7
    # step 5: 6 at risk, 2 of a (censored later), 4 events -> E_a = 4/3, V = 4*1/3*2/3*2/5
    e = 1 + 4 / 3
    v = 2 * 0.25 * 6 / 7 + 4 * (1 / 3) * (2 / 3) * (2 / 5)
    res = logrank(a, b, last_step_a=10, last_step_b=10, alternative="a_later")
    assert res["statistic"] == pytest.approx((2 - e) / math.sqrt(v))
    assert res["pvalue"] == pytest.approx(stats.norm.cdf((2 - e) / math.sqrt(v)))
    assert (res["events_a"], res["events_b"], res["n_a"], res["n_b"]) == (2, 4, 4, 4)


def test_the_result_says_what_was_tested():
    res = logrank(EARLY, LATE, alternative="a_later", saturation="clean")
    assert (res["alternative"], res["sided"], res["saturation"], res["event"]) == (
        "a_later", "one-sided", "clean", "first")
    assert logrank(EARLY, LATE)["sided"] == "two-sided"


@pytest.mark.parametrize("bad", ["less", "greater", "earlier", "two_sided"])
def test_scipys_words_are_refused_with_the_valid_ones(bad):
    with pytest.raises(ValueError, match="alternative must be one of two-sided, a_earlier, "
                                         "a_later"):
        logrank(EARLY, LATE, alternative=bad)


def test_pooled_seeds_are_the_concatenated_samples(make_run):
    from satkit.analysis import load_run

    soft = [load_run(make_run(alpha2=0.0, seed=s, steps=200, num_samples=60)) for s in (0, 1)]
    noisy = [load_run(make_run(alpha2=1.0, seed=s, steps=200, num_samples=60)) for s in (0, 1)]
    pooled = logrank(soft, noisy, alternative="a_earlier")
    tables = [pd.concat([r.samples for r in runs], ignore_index=True) for runs in (soft, noisy)]
    assert pooled["pvalue"] == pytest.approx(
        logrank(*tables, alternative="a_earlier")["pvalue"])
    assert pooled["n_a"] == 120 and pooled["pvalue"] < 1e-6
