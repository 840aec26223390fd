"""The recorder's clean p_target is each head's eval-mode probability (issue 7 heads)."""

import pytest
import torch

from satkit.heads import make_head_and_loss
from satkit.hooks import SaturationRecorder


@pytest.mark.parametrize("name", ["noisy", "temperature", "cosface", "arcface"])
def test_clean_p_target_is_the_eval_mode_probability(name):
    torch.manual_seed(0)
    head, loss_fn = make_head_and_loss(name, 6, 4, alpha2=1.0, temperature=3.0)
    x = torch.randn(32, 6, requires_grad=True)
    y = torch.randint(0, 4, (32,))
    with SaturationRecorder(head) as rec:
        logits = head(x, y)
        loss_fn(logits, y).backward()
        rec.step(y)
        metrics = rec.metrics()
    head.eval()
    with torch.no_grad():
        clean = head(x)
        p_clean = torch.softmax(clean.double(), 1)[torch.arange(32), y]
        p_train = torch.softmax(logits.detach().double(), 1)[torch.arange(32), y]
    row = metrics.iloc[0]
    assert row["p_target_mean"] == pytest.approx(p_clean.mean().item(), rel=1e-5)
    assert row["p_target_noisy_mean"] == pytest.approx(p_train.mean().item(), rel=1e-5)
    assert not torch.allclose(p_clean, p_train)  # the training-time change is real
