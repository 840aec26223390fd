"""Sequence logits (N, T, C): per-token statistics with ignore_index, per-sequence record."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from recorder_models import hand_token_columns
from torch import nn

from satkit.hooks import SaturationRecorder

V, D = 7, 5


def lm_batch(seed=0, n=3, t=4):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, t, D, generator=g, requires_grad=True)
    y = torch.randint(0, V, (n, t), generator=g)
    y[0, 2:] = -100  # padding of the first sequence
    y[2, 0] = -100
    return h, y


@pytest.mark.parametrize("announce", [False, True])
def test_token_columns_match_a_hand_computation(announce):
    torch.manual_seed(0)
    head = nn.Linear(D, V)
    h, y = lm_batch()
    tau = 0.3
    with SaturationRecorder(head, thresholds=(tau,), num_samples=5) as rec:
        if announce:
            rec.set_target(y)
        logits = head(h)
        assert logits.shape == (3, 4, V)
        F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).backward()
        rec.step(None if announce else y, index=torch.tensor([0, 2, 4]))
        row = rec.metrics().iloc[0]
        samples = rec.samples()
    want, p = hand_token_columns(head, h, y, tau)
    for col, value in want.items():
        assert row[col] == pytest.approx(value, rel=1e-5, abs=1e-7), col
    # per sequence: mean p_y over its tokens (2, 4 and 3 tokens)
    sizes = [2, 4, 3]
    means = [p[:2].mean(), p[2:6].mean(), p[6:].mean()]
    assert samples["last_p_target"][[0, 2, 4]].tolist() == pytest.approx(means, rel=1e-5)
    assert samples["last_seen_step"].isna().tolist() == [False, True, False, True, False]
    assert sum(sizes) == want["batch_size"]


def test_a_sequence_is_saturated_when_enough_of_its_tokens_are():
    head = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0], [0.0, 0.0]]))
    # sequence 0: 3 of 4 tokens confidently right; sequence 1: 1 of 4
    h = torch.tensor([[[1.0, 0.0]] * 3 + [[0.0, 0.0]], [[1.0, 0.0]] + [[0.0, 0.0]] * 3])
    y = torch.zeros(2, 4, dtype=torch.int64)
    for level, expected in ((0.5, [0, pd.NA]), (0.25, [0, 0]), (0.8, [pd.NA, pd.NA])):
        with SaturationRecorder(head, thresholds=(0.99,), num_samples=2,
                                sequence_level=level) as rec:
            F.cross_entropy(head(h.requires_grad_()).reshape(-1, 3), y.reshape(-1)).backward()
            rec.step(y, index=torch.arange(2))
            assert rec.samples()["first_saturated_step"].tolist() == expected


def test_announced_target_keeps_nothing_of_vocabulary_size():
    vocab = 9000  # large enough to be reduced at once (satkit.hooks.capture.DEFER_LIMIT)
    head = nn.Linear(D, vocab)
    h, y = lm_batch()
    rec = SaturationRecorder(head)
    rec.set_target(y)
    logits = head(h)
    cap = rec._captures[0]
    assert not cap.deferred and cap._pending is None  # reduced in the forward hook
    F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)).backward()
    assert cap._grad is None and "grad_norm" in cap.values
    assert all(v.dim() == 1 for v in cap.values.values())
    rec.step()
    rec.close()


def test_accumulated_micro_batches_equal_one_batch():
    tables = []
    for parts in (1, 3):
        torch.manual_seed(0)
        head = nn.Linear(D, V)
        h, y = lm_batch(n=6)
        with SaturationRecorder(head, num_samples=6) as rec:
            total = (y != -100).sum()
            for idx in torch.arange(6).chunk(parts):
                logits = head(h[idx])
                F.cross_entropy(logits.reshape(-1, V), y[idx].reshape(-1),
                                reduction="sum").div(total).backward()
            rec.step(y, index=torch.arange(6))
            tables.append((rec.metrics(), rec.samples()))
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0], rtol=1e-5)
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1], rtol=1e-5)


def test_tied_embedding_output_layer():
    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, D)
            self.lm_head = nn.Linear(D, V, bias=False)
            self.lm_head.weight = self.embed.weight  # tied

        def forward(self, tokens):
            return self.lm_head(torch.tanh(self.embed(tokens)))

    torch.manual_seed(0)
    lm = TinyLM()
    tokens = torch.randint(0, V, (2, 6))
    with SaturationRecorder(lm.lm_head) as rec:
        logits = lm(tokens[:, :-1])
        F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1)).backward()
        rec.step(tokens[:, 1:])
        row = rec.metrics().iloc[0]
    assert row["batch_size"] == 10 and not row["nonfinite"]
    assert row["grad_weight_norm"] == pytest.approx(float(lm.embed.weight.grad.norm()))


def test_out_of_range_target_names_the_argument_and_empty_batches_record_nothing():
    head = nn.Linear(D, V)
    with SaturationRecorder(head) as rec:
        F.cross_entropy(head(torch.randn(4, D)), torch.zeros(4, dtype=torch.long)).backward()
        with pytest.raises(ValueError, match=r"target values must lie in \[0, 7\)"):
            rec.step(torch.tensor([0, 1, 7, 2]))
        out = head(torch.randn(0, D, requires_grad=True))
        F.cross_entropy(out, torch.zeros(0, dtype=torch.long)).backward()
        rec.step(torch.zeros(0, dtype=torch.long))
        row = rec.metrics().iloc[-1]
    assert row["batch_size"] == 0 and not row["nonfinite"] and math.isnan(row["p_target_mean"])


def test_a_wrongly_shaped_target_is_refused():
    head = nn.Linear(D, V)
    h, y = lm_batch()
    with SaturationRecorder(head) as rec:
        F.cross_entropy(head(h).reshape(-1, V), y.reshape(-1)).backward()
        with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
            rec.step(y.reshape(-1))


def test_an_announced_grad_scale_makes_the_gradient_columns_per_position():
    # A Hugging Face causal LM divides its summed loss by a count of its own (here 1.5 x the
    # tokens): with that count announced, |dL_i/df_y| is 1 - p_y again.
    torch.manual_seed(0)
    head = nn.Linear(D, V)
    h, y = lm_batch()
    tokens = int((y != -100).sum())
    rows = {}
    for scale in (None, 1.5 * tokens):
        with SaturationRecorder(head) as rec:
            rec.set_target(y, grad_scale=scale)
            logits = head(h)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction="sum")
            (loss / (1.5 * tokens)).backward()
            rec.step()
            rows[scale] = rec.metrics().iloc[0]
        head.zero_grad()
        h.grad = None
    p = rows[None]["p_target_mean"]
    assert rows[1.5 * tokens]["grad_target_mean"] == pytest.approx(1 - p, rel=1e-5)
    assert rows[None]["grad_target_mean"] == pytest.approx((1 - p) / 1.5, rel=1e-5)
    with pytest.raises(ValueError, match="grad_scale"):
        SaturationRecorder(head).set_target(y, grad_scale=0)
