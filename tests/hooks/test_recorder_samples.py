"""The per-sample "individual saturation" record against a plain-Python replay, both views."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from recorder_models import FixedXiHead, make_data, make_net, train_step

from satkit import target_probability
from satkit.hooks import SaturationRecorder
from satkit.hooks.samples import BYTES_PER_SAMPLE, SampleTracker
from satkit.schema import SAMPLE_COLUMNS


def reference(observations, num_samples, level=0.5):
    """Plain-loop record. ``observations``: (step, index, p_clean, p_noisy, share_clean,
    share_noisy) in step (then batch) order; a view is saturated when share >= level."""
    rec = {"last_seen_step": [None] * num_samples}
    for suffix in ("", "_noisy"):
        rec[f"first_saturated_step{suffix}"] = [None] * num_samples
        rec[f"settled_step{suffix}"] = [None] * num_samples
        rec[f"desaturations{suffix}"] = [0] * num_samples
        rec[f"last_p_target{suffix}"] = [math.nan] * num_samples
    for step, i, pc, pn, sc, sn in observations:
        if not 0 <= i < num_samples or math.isnan(pc):
            continue
        rec["last_seen_step"][i] = step
        for suffix, p, share in (("", pc, sc), ("_noisy", pn, sn)):
            now = share >= level
            was = rec[f"settled_step{suffix}"][i] is not None
            if was and not now:
                rec[f"desaturations{suffix}"][i] += 1
            if now and rec[f"first_saturated_step{suffix}"][i] is None:
                rec[f"first_saturated_step{suffix}"][i] = step
            if now and not was:
                rec[f"settled_step{suffix}"][i] = step  # a new saturated streak begins
            elif not now:
                rec[f"settled_step{suffix}"][i] = None
            rec[f"last_p_target{suffix}"][i] = p
    frame = {"index": np.arange(num_samples, dtype=np.int64)}
    for column, (dtype, _) in SAMPLE_COLUMNS.items():
        if column != "index":
            frame[column] = pd.array(rec[column], dtype=dtype)
    return pd.DataFrame(frame)


def _update(tracker, steps, rows):
    """rows: per step, a list of (index, p_clean, p_noisy, share_clean, share_noisy)."""
    width = max(len(r) for r in rows)
    index = torch.full((len(rows), width), -1, dtype=torch.int64)
    per = torch.full((len(rows), 4, width), math.nan)
    for r, row in enumerate(rows):
        for b, (i, *vals) in enumerate(row):
            index[r, b] = i
            per[r, :, b] = torch.tensor(vals)
    tracker.update(index, per, steps)


def test_tracker_matches_plain_replay_on_random_sequences():
    g = np.random.default_rng(0)
    tr = SampleTracker(10, threshold=0.5)
    obs, steps, rows = [], [], []
    for step in range(60):
        index = g.permutation(10)[:4]
        index[0] = index[1] if step % 7 == 0 else index[0]  # a duplicate in some batches
        p = g.random((4, 2))
        row = [(int(i), pc, pn, float(pc >= 0.5), float(pn >= 0.5))
               for i, (pc, pn) in zip(index, p, strict=True)]
        obs += [(step, *r) for r in row]
        steps.append(step)
        rows.append(row)
        if len(rows) == 5 or step == 59:  # several steps per update, as at a flush
            _update(tr, steps, rows)
            steps, rows = [], []
    expected = reference(obs, 10)
    pd.testing.assert_frame_equal(tr.frame(), expected, rtol=1e-6)
    assert expected["desaturations"].sum() > 5 and expected["first_saturated_step"].notna().all()
    assert expected["settled_step"].notna().any() and expected["settled_step"].isna().any()


def test_tracker_settled_streaks_across_updates_and_censoring():
    tr = SampleTracker(3, threshold=0.9)
    s = 1.0  # saturated share
    # sample 0: sat at 0, 1, (update) 2 -> settled 0; sample 1: sat 0, drop 1, sat 2, 3 ->
    # settled 2; sample 2: sat 0, sat 1, drop 3 -> censored (<NA>)
    _update(tr, [0, 1], [[(0, .95, .5, s, 0), (1, .95, .95, s, s), (2, .95, .95, s, s)],
                         [(0, .95, .5, s, 0), (1, .1, .1, 0, 0), (2, .95, .5, s, 0)]])
    _update(tr, [2, 3], [[(0, .99, .95, s, s), (1, .95, .1, s, 0)],
                         [(1, .96, .96, s, s), (2, .5, .5, 0, 0)]])
    f = tr.frame()
    assert f["settled_step"].tolist() == [0, 2, pd.NA]
    assert f["settled_step_noisy"].tolist() == [2, 3, pd.NA]
    assert f["first_saturated_step_noisy"].tolist() == [2, 0, 0]
    assert f["desaturations"].tolist() == [0, 1, 1]
    assert f["desaturations_noisy"].tolist() == [0, 1, 1]
    assert f["last_seen_step"].tolist() == [2, 3, 3]


def test_tracker_ignores_padding_and_nonfinite_and_takes_duplicates_in_order():
    tr = SampleTracker(3, threshold=0.9)
    nan = math.nan
    _update(tr, [0], [[(0, .95, .95, 1, 1), (1, .95, .95, 1, 1), (-1, .99, .99, 1, 1),
                       (2, nan, nan, nan, nan)]])
    _update(tr, [1], [[(0, .1, .1, 0, 0), (0, .2, .2, 0, 0), (1, .95, .95, 1, 1)]])
    f = tr.frame()
    assert f["first_saturated_step"].tolist() == [0, 0, pd.NA]
    assert f["desaturations"].tolist() == [1, 0, 0]  # sample 0 listed twice: one fall
    assert f["last_p_target"].tolist()[:2] == pytest.approx([0.2, 0.95])
    assert f["last_seen_step"].tolist() == [1, 1, pd.NA]


def test_sequence_level_decides_saturation_of_a_sequence():
    for level, first in ((0.5, 0), (0.75, pd.NA)):
        tr = SampleTracker(1, threshold=0.9, level=level)
        _update(tr, [0], [[(0, 0.8, 0.8, 0.5, 0.5)]])  # half of its tokens saturated
        assert tr.frame()["first_saturated_step"].tolist() == [first]


def test_memory_budget_per_sample_and_at_ten_million():
    assert BYTES_PER_SAMPLE == 36
    small = SampleTracker(1000, threshold=0.99)
    assert small.nbytes == BYTES_PER_SAMPLE * 1001
    big = SampleTracker(10_000_000, threshold=0.99)  # an ImageNet-21k-sized data set
    assert big.nbytes <= 360_000_036  # the stated budget: 36 bytes per sample
    index = torch.randint(0, 10_000_000, (3, 256))
    per = torch.rand(3, 4, 256)
    big.update(index, per, [0, 1, 2])
    assert int(big.state["last_seen"].max()) == 2


def test_recorder_samples_match_replay_of_recorded_p_targets():
    # Record with flushes in between; compare with a replay of the per-step p_target, both
    # views (the Noisy Softmax head's noise is a fixed function of the features).
    x, y = make_data(n=12, seed=1)
    net = make_net(seed=1)
    assert isinstance(net.head, FixedXiHead)
    obs = []
    tau = 0.45
    with SaturationRecorder(net.head, num_samples=16, thresholds=(0.3, tau),
                            flush_every=3) as rec:
        for step in range(10):
            idx = torch.randperm(16, generator=torch.Generator().manual_seed(step))[:12]
            xb, yb = x[idx % 12], y[idx % 12]
            with torch.no_grad():  # p_target of this batch in both views, before the update
                h = torch.tanh(net.body(xb))
                clean = h @ net.head.weight.T
                noisy = net.head.train()(h, yb)
                pc, pn = target_probability(clean, yb), target_probability(noisy, yb)
            obs += [(step, int(i), float(a), float(b), float(a >= tau), float(b >= tau))
                    for i, a, b in zip(idx, pc, pn, strict=True)]
            train_step(net, xb, yb, rec, index=idx, lr=2.0)
        got = rec.samples()
    expected = reference(obs, 16)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-5)
    assert expected["desaturations"].sum() > 0 and expected["first_saturated_step"].notna().any()
    # the noise postpones saturation under the training logits
    first, noisy = expected["first_saturated_step"], expected["first_saturated_step_noisy"]
    assert (noisy.fillna(99) >= first.fillna(99)).all() and not noisy.equals(first)
