"""saturation_summary: the figures the trainer writes into summary.json, JSON-ready."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import load_run, median_time_to_saturation, saturation_summary

KEYS = ["onset_step", "onset_step_noisy", "median_sample_onset", "median_sample_onset_noisy",
        "grad_target_late"]


def test_known_values_of_a_synthetic_run(make_run, expected_onset):
    path = make_run(alpha2=0.1, steps=300)
    out = saturation_summary(path)  # a run directory, as the trainer passes it
    assert list(out) == KEYS
    assert out["onset_step"] == expected_onset(0.1, "clean")
    assert out["onset_step_noisy"] == expected_onset(0.1, "noisy")
    run = load_run(path)
    for key, view in (("median_sample_onset", "clean"), ("median_sample_onset_noisy", "noisy")):
        assert out[key] == median_time_to_saturation(run, saturation=view)["median"]
        assert isinstance(out[key], int)
    # the last quarter of steps 0..299 is 224.25..299 -> steps 225..299
    late = run.metrics.loc[run.metrics["step"] >= 225, "grad_target_mean"]
    assert out["grad_target_late"] == pytest.approx(late.mean())
    assert isinstance(out["onset_step"], int) and isinstance(out["grad_target_late"], float)
    json.dumps(out, allow_nan=False)  # JSON-ready: no NaN, only ints, floats and None


def test_none_for_what_the_tables_cannot_give(make_run, metrics_factory):
    old = saturation_summary(make_run(alpha2=0.1, steps=300, legacy=True, name="old"))
    assert old["onset_step_noisy"] is None and old["median_sample_onset_noisy"] is None
    assert old["onset_step"] is not None and old["median_sample_onset"] is not None
    empty = make_run(alpha2=0.1, steps=50, metrics=metrics_factory(1, 0.1).iloc[:0],
                     num_samples=0, name="empty")
    assert saturation_summary(empty) == dict.fromkeys(KEYS)


def test_none_when_never_reached(make_run, metrics_factory):
    never = pd.DataFrame({"index": np.arange(10),
                          "first_saturated_step": pd.array([3, 4] + [pd.NA] * 8, dtype="Int64"),
                          "first_saturated_step_noisy": pd.array([pd.NA] * 10, dtype="Int64"),
                          "last_seen_step": 49})
    metrics = metrics_factory(50, 0.0).assign(p_target_median=0.5, p_target_noisy_median=0.5)
    out = saturation_summary(make_run(steps=50, metrics=metrics, samples=never), tau=0.9)
    assert out["onset_step"] is None and out["onset_step_noisy"] is None
    assert out["median_sample_onset"] is None  # 2 of 10 saturated: fewer than half
    assert out["median_sample_onset_noisy"] is None
    assert math.isfinite(out["grad_target_late"])


def test_tau_moves_the_onset(make_run, expected_onset):
    out = saturation_summary(make_run(alpha2=0.0, steps=300), tau=0.9)
    assert out["onset_step"] == out["onset_step_noisy"] == expected_onset(0.0, tau=0.9)
