"""Onset step and postponement against hand-built tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import RunError, load_run, onset_step, postponement, step_window


def _table(values, steps=None, column="p_target_median"):
    steps = range(0, 10 * len(values), 10) if steps is None else steps
    return pd.DataFrame({"step": list(steps), column: values})


def test_onset_without_smoothing_is_first_crossing():
    m = _table([0.5, 0.98, 0.995, 0.9, 0.999])
    assert onset_step(m) == 20
    assert onset_step(m, tau=0.9) == 10
    assert onset_step(m, tau=0.9999) is None


def test_onset_with_trailing_rolling_mean():
    # rolling means (window 2, min_periods 1): .5, .74, .9875, .9475, .9495, .999
    m = _table([0.5, 0.98, 0.995, 0.9, 0.999, 0.999])
    assert onset_step(m, tau=0.98, window=2) == 20
    assert onset_step(m, tau=0.99, window=2) == 50
    # window 3: .5, .74, .825, .9583, .9647, .966
    assert onset_step(m, tau=0.96, window=3) == 40


def test_onset_other_stat_nan_unsorted_and_empty():
    m = _table([0.1, np.nan, 0.995], column="p_target_mean")
    assert onset_step(m, stat="p_target_mean") == 20
    assert onset_step(m, stat="p_target_mean", window=2) == 20  # NaN skipped within window
    unsorted = _table([0.995, 0.2, 0.999], steps=[20, 0, 10])
    assert onset_step(unsorted) == 10
    assert onset_step(_table([])) is None


def test_onset_errors():
    with pytest.raises(RunError, match="p_target_median"):
        onset_step(pd.DataFrame({"step": [0]}))
    with pytest.raises(ValueError, match="window"):
        onset_step(_table([0.5]), window=0)


def test_onset_on_run(make_run):
    run = load_run(make_run(alpha2=0.0, steps=200))
    # synthetic p = 1 - exp(-(step+1)/20) reaches 0.99 at step ceil(20 ln 100) - 1 = 92
    assert onset_step(run) == math.ceil(20 * math.log(100)) - 1


def test_step_window_fractions_and_explicit():
    m = _table([0.0] * 11)  # steps 0..100
    assert step_window(m, 0.25) == (75, 100)
    assert step_window(m, 0.1, from_start=True) == (0, 10)
    assert step_window(m, (20, 30)) == (20, 30)
    with pytest.raises(ValueError):
        step_window(m, 1.5)
    with pytest.raises(RunError, match="empty"):
        step_window(_table([]), 0.5)


def _run(p, grad, noise):
    steps = np.arange(0, 100)
    return pd.DataFrame({"step": steps, "p_target_median": p(steps),
                         "grad_target_mean": grad(steps), "noise_mean": noise(steps)})


def test_postponement_known_ratios():
    soft = _run(lambda s: np.where(s >= 20, 0.995, 0.5), lambda s: np.where(s >= 75, 0.01, 0.5),
                lambda s: 0 * s)
    noisy = _run(lambda s: np.where(s >= 50, 0.995, 0.5), lambda s: np.where(s >= 75, 0.04, 0.5),
                 lambda s: np.where(s <= 9, 0.8, np.where(s >= 75, 0.2, 0.5)))
    p = postponement(soft, noisy)
    assert (p["onset_softmax"], p["onset_noisy"]) == (20, 50)
    assert p["onset_ratio"] == pytest.approx(2.5)
    assert p["late_window"] == (75, 99) and p["early_window"] == (0, 9)
    assert p["grad_late_softmax"] == pytest.approx(0.01)
    assert p["grad_ratio_late"] == pytest.approx(4.0)
    assert (p["noise_early"], p["noise_late"]) == (pytest.approx(0.8), pytest.approx(0.2))
    assert p["noise_annealing"] == pytest.approx(0.25)
    assert not p["noisy_censored"] and math.isnan(p["onset_ratio_lower_bound"])


def test_postponement_censored_noisy_and_explicit_window():
    soft = _run(lambda s: np.where(s >= 20, 0.995, 0.5), lambda s: 0.1 + 0 * s, lambda s: 0 * s)
    noisy = _run(lambda s: 0.5 + 0 * s, lambda s: 0.3 + 0 * s, lambda s: 0.5 + 0 * s)
    p = postponement(soft, noisy, late=(10, 19))
    assert p["onset_noisy"] is None and p["noisy_censored"]
    assert math.isnan(p["onset_ratio"])
    assert p["onset_ratio_lower_bound"] == pytest.approx(99 / 20)
    assert p["grad_ratio_late"] == pytest.approx(3.0) and p["late_window"] == (10, 19)
    assert p["noise_annealing"] == pytest.approx(1.0)


def test_postponement_uses_shorter_run_for_late_window():
    short = _run(lambda s: 0.5 + 0 * s, lambda s: 1.0 + 0 * s, lambda s: 0 * s).iloc[:41]
    long = _run(lambda s: 0.5 + 0 * s, lambda s: np.where(s <= 40, 2.0, 9.0), lambda s: 0 * s)
    p = postponement(short, long, late=0.5)
    assert p["late_window"] == (20, 40) and p["grad_ratio_late"] == pytest.approx(2.0)
    # no noise column -> NaN, not an error; no softmax onset -> NaN ratio
    p = postponement(short, long.drop(columns="noise_mean"))
    assert math.isnan(p["noise_annealing"]) and math.isnan(p["onset_ratio"])


def test_postponement_on_synthetic_runs(make_run):
    soft = load_run(make_run(alpha2=0.0, steps=300))
    noisy = load_run(make_run(alpha2=0.1, steps=300))
    p = postponement(soft, noisy)
    assert p["onset_ratio"] == pytest.approx((math.ceil(30 * math.log(100)) - 1) / 92)
    assert p["grad_ratio_late"] > 1 and p["noise_annealing"] < 1
