"""The per-sample training dynamics (visits, confidence, variability, correctness, forgetting,
first learned step, AUM) against float64 hand computations and a float64 numpy oracle."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satkit.hooks import SaturationRecorder
from satkit.hooks.samples import SampleTracker
from satkit.hooks.visits import VISIT_VALUES, visit_values

NAN = math.nan


def _push(tracker, steps, rows):
    """rows: per step, (index, p_clean, p_noisy, margin) tuples; shares and correctness
    follow from them (tau 0.9, right when margin > 0)."""
    width = max(len(r) for r in rows)
    index = torch.full((len(rows), width), -1, dtype=torch.int64)
    per = torch.full((len(rows), len(VISIT_VALUES), width), NAN, dtype=torch.float32)
    for r, row in enumerate(rows):
        for b, (i, pc, pn, m) in enumerate(row):
            index[r, b] = i
            per[r, :, b] = torch.tensor([pc, pn, float(pc >= 0.9), float(pn >= 0.9), m,
                                         float(m > 0)])
    tracker.update(index, per, steps)


def test_known_streams_never_seen_seen_once_forgotten_twice():
    tr = SampleTracker(4, threshold=0.9)
    # sample 0: never seen (only padding and a NaN observation name it)
    # sample 1: seen once, at step 3, right with margin 1.5
    # sample 2: right, wrong, right, wrong (tie: margin 0), right: forgotten twice
    # sample 3: always wrong
    _push(tr, [0, 1], [[(2, 0.5, 0.25, 0.5), (3, 0.125, 0.125, -2.0), (-1, 0.9, 0.9, 1.0)],
                       [(2, 0.25, 0.125, -1.0), (0, NAN, NAN, NAN)]])
    _push(tr, [2], [[(2, 0.75, 0.5, 2.0), (3, 0.25, 0.25, -1.0)]])
    _push(tr, [3, 4], [[(1, 0.95, 0.5, 1.5), (2, 0.5, 0.5, 0.0)],
                       [(2, 1.0, 0.75, 4.0), (3, 0.5, 0.5, -0.5)]])
    f = tr.frame().set_index("index")
    assert f["visits"].tolist() == [0, 1, 5, 3]
    assert f["forgetting_events"].tolist() == [0, 0, 2, 0]
    assert f["first_learned_step"].tolist() == [pd.NA, 3, 0, pd.NA]
    p2 = np.array([0.5, 0.25, 0.75, 0.5, 1.0])  # by hand: mean 0.6, population var 0.065
    assert f.loc[2, "confidence"] == pytest.approx(0.6, abs=1e-12)
    assert f.loc[2, "variability"] == pytest.approx(math.sqrt(0.065), abs=1e-12)
    assert f.loc[2, "variability"] == pytest.approx(p2.std(), abs=1e-12)
    assert f.loc[2, "confidence_noisy"] == pytest.approx(np.mean([.25, .125, .5, .5, .75]))
    assert f.loc[2, "variability_noisy"] == pytest.approx(np.std([.25, .125, .5, .5, .75]))
    assert f.loc[2, "correctness"] == pytest.approx(3 / 5, abs=1e-12)  # the tie is wrong
    assert f.loc[2, "aum"] == pytest.approx((0.5 - 1 + 2 + 0 + 4) / 5, abs=1e-12)
    # seen once: its value, no spread
    assert (f.loc[1, "confidence"], f.loc[1, "variability"]) == (pytest.approx(0.95), 0.0)
    assert (f.loc[1, "correctness"], f.loc[1, "aum"]) == (1.0, 1.5)
    # never seen: NaN, not 0
    assert f.loc[0, ["confidence", "variability", "correctness", "aum",
                     "confidence_noisy", "variability_noisy"]].isna().all()
    assert (f.loc[3, "correctness"], f.loc[3, "aum"]) == (0.0, pytest.approx(-3.5 / 3))


def test_variance_stays_exact_on_a_long_stream_where_naive_sums_cancel():
    """5,000 visits of p_y ~ 0.9999 with a spread of 1e-5, in flushes of random size: the
    standard deviation matches float64 numpy; the naive float32 formula E[p^2] - E[p]^2
    would be useless here (the oracle case is hard in both directions)."""
    g = np.random.default_rng(0)
    visits = 5000
    p = np.clip(0.9999 + 1e-5 * g.standard_normal(visits), 0, 1).astype(np.float32)
    q = g.random(visits).astype(np.float32)  # a second sample with a wide spread
    margin = (3 + g.standard_normal(visits)).astype(np.float32)
    tr = SampleTracker(2, threshold=0.5)
    step = 0
    while step < visits:
        rows = int(g.integers(1, 120))
        r = range(step, min(step + rows, visits))
        index = torch.tensor([[0, 1] for _ in r])
        per = torch.full((len(r), len(VISIT_VALUES), 2), NAN)
        for k, s in enumerate(r):
            per[k, :, 0] = torch.tensor([p[s], p[s], 1.0, 1.0, margin[s], 1.0])
            per[k, :, 1] = torch.tensor([q[s], q[s], float(q[s] >= .5), float(q[s] >= .5),
                                         -margin[s], 0.0])
        tr.update(index, per, list(r))
        step += len(r)
    f = tr.frame()
    p64, q64, m64 = p.astype(np.float64), q.astype(np.float64), margin.astype(np.float64)
    assert f["visits"].tolist() == [visits, visits]
    assert f["variability"].tolist() == pytest.approx([p64.std(), q64.std()], rel=1e-9)
    assert f["confidence"].tolist() == pytest.approx([p64.mean(), q64.mean()], rel=1e-12)
    assert f["aum"].tolist() == pytest.approx([m64.mean(), -m64.mean()], rel=1e-12)
    naive = np.float32(np.mean(p * p, dtype=np.float32) - np.mean(p, dtype=np.float32) ** 2)
    assert abs(math.sqrt(max(naive, 0)) - p64.std()) > 0.5 * p64.std()
    assert 5e-6 < p64.std() < 2e-5  # what the case is


def test_one_update_or_many_give_the_same_record():
    g = np.random.default_rng(3)
    index = torch.from_numpy(g.integers(0, 6, (40, 5)))
    per = torch.from_numpy(g.random((40, len(VISIT_VALUES), 5)).astype(np.float32))
    whole, parts = SampleTracker(6, threshold=0.5), SampleTracker(6, threshold=0.5)
    whole.update(index, per, list(range(40)))
    for start in range(0, 40, 7):
        parts.update(index[start:start + 7], per[start:start + 7],
                     list(range(start, min(start + 7, 40))))
    pd.testing.assert_frame_equal(whole.frame(), parts.frame(), rtol=1e-12)


def test_state_dict_round_trip_continues_the_record():
    g = np.random.default_rng(5)
    index = torch.from_numpy(g.integers(0, 4, (20, 3)))
    per = torch.from_numpy(g.random((20, len(VISIT_VALUES), 3)).astype(np.float32))
    full = SampleTracker(4, threshold=0.5)
    full.update(index, per, list(range(20)))
    first = SampleTracker(4, threshold=0.5)
    first.update(index[:9], per[:9], list(range(9)))
    second = SampleTracker(4, threshold=0.5)
    second.load_state_dict(first.state_dict())
    second.update(index[9:], per[9:], list(range(9, 20)))
    pd.testing.assert_frame_equal(second.frame(), full.frame(), rtol=1e-12)
    old = {**first.state_dict(), "format": 2}
    with pytest.raises(ValueError, match="older satkit"):
        second.load_state_dict(old)


def test_visit_values_of_sequences_are_means_over_their_tokens():
    # one step, two sequences of 3 tokens; the second has one ignored token
    values = torch.tensor([[[0.9, 0.2, 0.95, 0.5, 0.99, 0.1],
                            [0.8, 0.2, 0.90, 0.5, 0.10, 0.1],
                            [2.0, -1.0, 0.0, 1.0, 3.0, -2.0]]])
    mask = torch.tensor([[True, True, True, True, False, True]])
    got = visit_values(values, mask, [[(2, 3)]], tau=0.9)
    want = [[(0.9 + 0.2 + 0.95) / 3, (0.5 + 0.1) / 2],  # mean clean p_y
            [(0.8 + 0.2 + 0.9) / 3, (0.5 + 0.1) / 2],
            [2 / 3, 0.0],  # share with clean p_y >= 0.9
            [1 / 3, 0.0],
            [(2 - 1 + 0) / 3, (1 - 2) / 2],  # mean margin
            [1 / 3, 1 / 2]]  # token accuracy: margin 0 is a tie, wrong
    assert got[0].tolist() == [pytest.approx(w) for w in want]


def test_recorder_sequences_record_token_means_and_the_tie_convention():
    head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 0.0]]))
    # sequence 0: 3 of 4 tokens right with margin 10, one tie (all logits 0);
    # sequence 1: 1 of 4 right, three ties
    h = torch.tensor([[[1.0, 0.0]] * 3 + [[0.0, 0.0]], [[1.0, 0.0]] + [[0.0, 0.0]] * 3])
    y = torch.zeros(2, 4, dtype=torch.int64)
    with SaturationRecorder(head, thresholds=(0.99,), num_samples=2) as rec:
        F.cross_entropy(head(h.requires_grad_()).reshape(-1, 3), y.reshape(-1)).backward()
        rec.step(y, index=torch.arange(2))
        f = rec.samples()
    assert f["correctness"].tolist() == [0.75, 0.25]
    assert f["aum"].tolist() == pytest.approx([7.5, 2.5], rel=1e-6)
    assert f["first_learned_step"].tolist() == [0, pd.NA]  # right when >= half of its tokens
    assert f["visits"].tolist() == [1, 1]
