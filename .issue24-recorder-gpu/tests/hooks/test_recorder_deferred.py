"""Small steps are reduced together at the flush (deferred), large ones at once: the same tables
either way."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from recorder_models import make_data, make_net, train_step
from torch import nn

from satkit.hooks import SaturationRecorder, capture


def _run_classifier(kind, index=True, toggle=False):
    x, y = make_data(n=12)
    net = make_net(kind)
    with SaturationRecorder(net.head, num_samples=12, thresholds=(0.3, 0.5),
                            flush_every=4) as rec:
        for step in range(7):
            if toggle:  # noise on some steps only: clean logits differ on those alone
                net.head.alpha2 = 0.5 if step % 2 else 0.0
            idx = torch.arange(12).roll(step)
            part = [slice(0, 5), slice(5, 12)] if step % 3 == 1 else [slice(0, 12)]
            net.zero_grad()
            for s in part:  # accumulation on some steps
                (F.cross_entropy(net(x[idx][s], y[idx][s]), y[idx][s]) * (
                    (s.stop - s.start) / 12)).backward()
            rec.step(y[idx], index=idx if index else None,
                     loss=torch.tensor(0.5) if step % 2 else None)
            with torch.no_grad():
                for p in net.parameters():
                    p -= 0.5 * p.grad
        return rec.metrics(), rec.samples()


def _run_lm(scale):
    torch.manual_seed(0)
    head = nn.Linear(5, 7)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(6, 4, 5, generator=g, requires_grad=True)
    y = torch.randint(0, 7, (6, 4), generator=g)
    y[0, 2:] = -100
    with SaturationRecorder(head, num_samples=6, flush_every=3) as rec:
        for _ in range(5):
            head.zero_grad()
            rec.set_target(y, grad_scale=scale)
            loss = F.cross_entropy(head(h).reshape(-1, 7), y.reshape(-1), reduction="sum") / 30
            loss.backward()
            rec.step(index=torch.arange(6))
            with torch.no_grad():
                head.weight -= 0.5 * head.weight.grad
        return rec.metrics(), rec.samples()


@pytest.mark.parametrize("run", [lambda: _run_classifier("fixed"),
                                 lambda: _run_classifier("noisy", toggle=True),
                                 lambda: _run_classifier("linear", index=False),
                                 lambda: _run_lm(None), lambda: _run_lm(30.0)],
                         ids=["noisy-head-accumulation", "noisy-softmax-some-steps",
                              "linear-head", "lm", "lm-grad-scale"])
def test_deferred_and_immediate_give_the_same_tables(run, monkeypatch):
    deferred = run()
    monkeypatch.setattr(capture, "DEFER_LIMIT", 0)  # every capture reduced at once
    immediate = run()
    pd.testing.assert_frame_equal(deferred[0], immediate[0], rtol=1e-5)
    pd.testing.assert_frame_equal(deferred[1], immediate[1], rtol=1e-5)


def test_a_deferred_step_uses_the_weights_of_its_own_step(data):
    # cos theta_y and ||W_y|| need W as it was at the step, not at the flush.
    x, y = data
    net = make_net("linear")
    with SaturationRecorder(net.head, flush_every=10) as rec:
        train_step(net, x, y, rec, lr=5.0)  # a large update after the step
        train_step(net, x, y, rec, lr=5.0)
        assert rec._captures == [] and rec.buffered == 2
        first, second = rec.metrics()["weight_norm_target_mean"]
    assert first != pytest.approx(second, rel=1e-3)
    w0 = make_net("linear").head.weight.detach()
    assert first == pytest.approx(float(w0[y].norm(dim=1).mean()), rel=1e-5)
