"""The per-sample "individual saturation" record against a plain-Python replay."""

import numpy as np
import pandas as pd
import torch
from recorder_models import make_data, make_net, train_step

from satkit import target_probability
from satkit.hooks import SaturationRecorder
from satkit.hooks.samples import SampleTracker


def reference(observations, num_samples, tau):
    """Plain-loop record: observations are (step, index, p) in step order."""
    first = [None] * num_samples
    desat = [0] * num_samples
    last_p = [float("nan")] * num_samples
    seen = [None] * num_samples
    sat = [False] * num_samples
    for step, i, p in observations:
        now = p >= tau
        if sat[i] and not now:
            desat[i] += 1
        if now and first[i] is None:
            first[i] = step
        sat[i], last_p[i], seen[i] = now, p, step
    return pd.DataFrame({
        "index": np.arange(num_samples, dtype=np.int64),
        "first_saturated_step": pd.array(first, dtype="Int64"),
        "desaturations": np.array(desat, dtype=np.int64),
        "last_p_target": np.array(last_p, dtype=np.float64),
        "last_seen_step": pd.array(seen, dtype="Int64"),
    })


def test_tracker_matches_plain_replay_on_random_sequences():
    g = torch.Generator().manual_seed(0)
    tr = SampleTracker(10, threshold=0.5)
    obs = []
    for step in range(40):
        index = torch.randperm(10, generator=g)[:4]
        p = torch.rand(4, generator=g)
        tr.update(index, p, step)
        obs += [(step, int(i), float(q)) for i, q in zip(index, p, strict=True)]
    expected = reference(obs, 10, 0.5)
    pd.testing.assert_frame_equal(tr.frame(), expected, rtol=1e-6)
    assert expected["desaturations"].sum() > 5 and expected["first_saturated_step"].notna().all()


def test_tracker_ignores_padding_and_nonfinite_and_counts_duplicates():
    tr = SampleTracker(3, threshold=0.9)
    tr.update(torch.tensor([0, 1, -1, 2]), torch.tensor([0.95, 0.95, 0.99, float("nan")]), 0)
    tr.update(torch.tensor([0, 0, 1]), torch.tensor([0.1, 0.2, 0.95]), 1)
    f = tr.frame()
    assert f["first_saturated_step"].tolist() == [0, 0, pd.NA]
    assert f["desaturations"].tolist() == [2, 0, 0]  # sample 0 listed twice below tau
    assert f["last_seen_step"].tolist() == [1, 1, pd.NA]


def test_recorder_samples_match_replay_of_recorded_p_targets():
    # Record with flushes in between; compare with a replay of the per-step clean p_target.
    x, y = make_data(n=12, seed=1)
    net = make_net(seed=1)
    obs = []
    with SaturationRecorder(net.head, num_samples=16, thresholds=(0.3, 0.45),
                            flush_every=3) as rec:
        for step in range(10):
            idx = torch.randperm(16, generator=torch.Generator().manual_seed(step))[:12]
            xb, yb = x[idx % 12], y[idx % 12]
            with torch.no_grad():  # the clean p_target of this batch, before the update
                p = target_probability(torch.tanh(net.body(xb)) @ net.head.weight.T, yb)
            obs += [(step, int(i), float(q)) for i, q in zip(idx, p, strict=True)]
            train_step(net, xb, yb, rec, index=idx, lr=2.0)
        got = rec.samples()
    expected = reference(obs, 16, 0.45)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-5)
    assert expected["desaturations"].sum() > 0 and expected["first_saturated_step"].notna().any()
