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
from satkit.hooks.visits import VISIT_VALUES
from satkit.schema import SAMPLE_COLUMNS


def reference(observations, num_samples, level=0.5):
    """Plain-loop record in float64. ``observations``: (step, index, p_clean, p_noisy,
    share_clean, share_noisy[, margin, correct]) in step (then batch) order; a view is
    saturated when share >= level, a visit right when correct >= level (margin 0 and correct
    0 when not given)."""
    rec = {"last_seen_step": [None] * num_samples, "first_learned_step": [None] * num_samples,
           "forgetting_events": [0] * num_samples}
    seen = [[] for _ in range(num_samples)]  # (p_clean, p_noisy, margin, correct) per visit
    right_before = [False] * num_samples
    for suffix in ("", "_noisy"):
        rec[f"first_saturated_step{suffix}"] = [None] * num_samples
        rec[f"settled_step{suffix}"] = [None] * num_samples
        rec[f"desaturations{suffix}"] = [0] * num_samples
        rec[f"last_p_target{suffix}"] = [math.nan] * num_samples
    for step, i, pc, pn, sc, sn, *dynamics in observations:
        margin, correct = dynamics or (0.0, 0.0)
        if not 0 <= i < num_samples or math.isnan(pc):
            continue
        rec["last_seen_step"][i] = step
        seen[i].append((pc, pn, margin, correct))
        right = correct >= level
        if right_before[i] and not right:
            rec["forgetting_events"][i] += 1
        if right and rec["first_learned_step"][i] is None:
            rec["first_learned_step"][i] = step
        right_before[i] = right
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
    visits = [np.array(v, dtype=np.float64).reshape(-1, 4) for v in seen]

    def per(fn, col):
        return [fn(v[:, col]) if len(v) else math.nan for v in visits]

    rec.update(visits=[len(v) for v in visits], confidence=per(np.mean, 0),
               variability=per(np.std, 0), confidence_noisy=per(np.mean, 1),
               variability_noisy=per(np.std, 1), aum=per(np.mean, 2),
               correctness=per(np.mean, 3))
    frame = {"index": np.arange(num_samples, dtype=np.int64)}
    for column, (dtype, _) in SAMPLE_COLUMNS.items():
        if column != "index":
            frame[column] = pd.array(rec[column], dtype=dtype)
    return pd.DataFrame(frame)


def _update(tracker, steps, rows):
    """rows: per step, a list of (index, p_clean, p_noisy, share_clean, share_noisy[, margin,
    correct]) (margin and correct 0 when not given)."""
    width = max(len(r) for r in rows)
    index = torch.full((len(rows), width), -1, dtype=torch.int64)
    per = torch.full((len(rows), len(VISIT_VALUES), width), math.nan)
    for r, row in enumerate(rows):
        for b, (i, *vals) in enumerate(row):
            index[r, b] = i
            per[r, :, b] = torch.tensor([*vals, 0.0, 0.0][:len(VISIT_VALUES)]) \
                if len(vals) == 4 else torch.tensor(vals)
    tracker.update(index, per, steps)


def test_tracker_matches_plain_replay_on_random_sequences():
    g = np.random.default_rng(0)
    tr = SampleTracker(10, threshold=0.5)
    obs, steps, rows = [], [], []
    for step in range(60):
        index = g.permutation(10)[:4]
        index[0] = index[1] if step % 7 == 0 else index[0]  # a duplicate in some batches
        p = g.random((4, 2))
        margin = g.normal(0.3, 1.0, 4)
        row = [(int(i), pc, pn, float(pc >= 0.5), float(pn >= 0.5), m, float(m > 0))
               for i, (pc, pn), m in zip(index, p, margin, strict=True)]
        obs += [(step, *r) for r in row]
        steps.append(step)
        rows.append(row)
        if len(rows) == 5 or step == 59:  # several steps per update, as at a flush
            _update(tr, steps, rows)
            steps, rows = [], []
    expected = reference(obs, 10)
    pd.testing.assert_frame_equal(tr.frame(), expected, rtol=1e-6)
    assert expected["desaturations"].sum() > 5 and expected["first_saturated_step"].notna().all()
    assert expected["forgetting_events"].sum() > 5 and (expected["variability"] > 0).all()
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
    assert BYTES_PER_SAMPLE == 97
    small = SampleTracker(1000, threshold=0.99)
    assert small.nbytes == BYTES_PER_SAMPLE * 1001
    big = SampleTracker(10_000_000, threshold=0.99)  # an ImageNet-21k-sized data set
    assert big.nbytes <= 970_000_097  # the stated budget: 97 bytes per sample
    index = torch.randint(0, 10_000_000, (3, 256))
    per = torch.rand(3, len(VISIT_VALUES), 256)
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
                f_y = clean.gather(1, yb[:, None])[:, 0]
                margin = f_y - clean.scatter(1, yb[:, None], -math.inf).amax(dim=1)
            obs += [(step, int(i), float(a), float(b), float(a >= tau), float(b >= tau),
                     float(m), float(m > 0))
                    for i, a, b, m in zip(idx, pc, pn, margin, strict=True)]
            train_step(net, xb, yb, rec, index=idx, lr=2.0)
        got = rec.samples()
    expected = reference(obs, 16)
    pd.testing.assert_frame_equal(got, expected, rtol=1e-5, atol=1e-6)
    assert expected["desaturations"].sum() > 0 and expected["first_saturated_step"].notna().any()
    assert expected["forgetting_events"].sum() > 0 and expected["aum"].min() < 0
    # the noise postpones saturation under the training logits
    first, noisy = expected["first_saturated_step"], expected["first_saturated_step_noisy"]
    assert (noisy.fillna(99) >= first.fillna(99)).all() and not noisy.equals(first)
