"""The opt-in entropy column: one declaration in satkit.columns, checked here against an
independent float64 computation on every path a step can take, and absent by default."""

import math

import pytest
import torch
import torch.nn.functional as F

from satkit import NoisySoftmax
from satkit.columns import column_names
from satkit.hooks import SaturationRecorder


def _entropy(logits: torch.Tensor) -> float:
    """Mean entropy (nats) of softmax(logits) over the positions, float64, by definition."""
    p = torch.softmax(logits.detach().double().reshape(-1, logits.shape[-1]), dim=1)
    return float(-(p * p.log()).nan_to_num(0.0).sum(dim=1).mean())


def _noisy_step(opt_in=("entropy",), n=32, classes=5):
    torch.manual_seed(0)
    head = NoisySoftmax(6, classes, alpha2=1.0)
    x, y = torch.randn(n, 6), torch.randint(0, classes, (n,))
    with SaturationRecorder(head, opt_in=opt_in) as rec:
        logits = head(x, y)
        F.cross_entropy(logits, y).backward()
        rec.step()
        return rec.metrics(), logits


def test_entropy_is_absent_by_default_and_opt_in_names_are_checked():
    metrics, _ = _noisy_step(opt_in=())
    assert "entropy_mean" not in metrics.columns
    assert "entropy_mean" not in column_names((0.9,))
    with pytest.raises(ValueError, match="opt_in: unknown quantities"):
        SaturationRecorder(torch.nn.Linear(3, 2), opt_in=["entrpy"])
    with pytest.raises(TypeError, match="opt_in must be a sequence of quantity names"):
        SaturationRecorder(torch.nn.Linear(3, 2), opt_in="entropy")


def test_entropy_of_the_training_softmax_matches_float64():
    """A small step (reduced at the flush): the training (noisy) logits' entropy, not the
    clean ones'."""
    metrics, logits = _noisy_step()
    assert list(metrics.columns) == column_names((0.9, 0.99), ["entropy"])
    assert metrics["entropy_mean"].iloc[0] == pytest.approx(_entropy(logits), rel=1e-5)


@pytest.mark.parametrize("give_loss", [False, True])
def test_entropy_of_a_large_step_and_of_the_losss_log_softmax(give_loss):
    """Large (tokens x vocabulary, reduced in the hooks): from the recorder's own log-softmax,
    or read from the loss's (set_loss)."""
    torch.manual_seed(1)
    n, t, d, vocab = 4, 32, 8, 400  # 51,200 > DEFER_LIMIT
    head = torch.nn.Linear(d, vocab)
    x, y = torch.randn(n, t, d), torch.randint(0, vocab, (n, t))
    with SaturationRecorder(head, opt_in=["entropy"]) as rec:
        rec.set_target(y, loss_follows=give_loss)
        logits = head(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        if give_loss:
            rec.set_loss(loss)
        loss.backward()
        rec.step()
        row = rec.metrics().iloc[0]
        assert rec.reused_log_softmax == int(give_loss)
    assert row["entropy_mean"] == pytest.approx(_entropy(logits), rel=1e-5)


def test_entropy_known_answers_in_both_directions():
    """Equal logits: the largest entropy, log C; one logit far above the rest: ~0; a -inf
    logit (a masked class) is a class of probability 0 and adds nothing."""
    c = 7
    head = torch.nn.Linear(3, c, bias=True)
    x, y = torch.randn(8, 3), torch.randint(0, c, (8,))
    found = {}
    for case in ("uniform", "peaked", "masked"):
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            if case == "peaked":
                head.bias[0] = 60.0
            if case == "masked":
                head.bias[0] = -math.inf
        with SaturationRecorder(head, opt_in=("entropy",)) as rec:
            F.cross_entropy(head(x), y).backward()
            rec.step(y)
            found[case] = rec.metrics()["entropy_mean"].iloc[0]
        head.zero_grad()
    assert found["uniform"] == pytest.approx(math.log(c), rel=1e-6)
    assert 0 <= found["peaked"] < 1e-20
    assert found["masked"] == pytest.approx(math.log(c - 1), rel=1e-6)
