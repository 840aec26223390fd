"""The recorder's clean p_target is each head's eval-mode probability (issue 7 heads)."""

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import satkit
from satkit.heads import ClassifierHead, make_head_and_loss
from satkit.heads.base import is_saturation_head
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


class ThirdPartyMarginHead(torch.nn.Module):
    """A head from outside satkit: no satkit base class, only the SaturationHead protocol.
    In training with a target it lowers the target logit by ``margin`` (an additive margin)."""

    def __init__(self, d: int, c: int, margin: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(c, d))
        self.margin = margin
        self.last_noise = None
        self.last_target = None

    def forward(self, features, target=None):
        logits = features @ self.weight.T
        noise = torch.zeros(features.shape[0])
        if self.training and target is not None:
            noise = torch.full((features.shape[0],), self.margin)
            logits = logits - self.margin * F.one_hot(target, logits.shape[1])
        self.last_noise, self.last_target = noise, target
        return logits

    def clean_logits(self, logits, target):
        return logits + self.last_noise[:, None] * F.one_hot(target, logits.shape[1])


class SatkitMarginHead(ClassifierHead):
    """The same maths as a satkit head (noise back on the target column: the base rule)."""

    def __init__(self, d: int, c: int, margin: float) -> None:
        super().__init__(d, c)
        self.margin = margin

    def training_forward(self, x, weight, bias, target):
        logits = F.linear(x, weight, bias)
        noise = torch.full((x.shape[0],), self.margin)
        return logits - self.margin * F.one_hot(target, logits.shape[1]), noise


def test_a_third_party_head_implementing_the_protocol_is_recorded_the_same_way():
    torch.manual_seed(0)
    n, d, c, m = 24, 5, 4, 1.5
    ours, theirs = SatkitMarginHead(d, c, m), ThirdPartyMarginHead(d, c, m)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    assert is_saturation_head(theirs) and not isinstance(theirs, ClassifierHead)
    x, y = torch.randn(n, d), torch.randint(0, c, (n,))
    tables = []
    for head in (ours, theirs):
        with SaturationRecorder(head, num_samples=n) as rec:
            for _ in range(3):
                F.cross_entropy(head(x, y), y).backward()  # the target reaches the head
                rec.step(index=torch.arange(n))  # no target: the head's is used
                head.zero_grad()
            tables.append((rec.metrics(), rec.samples()))
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0], rtol=1e-6)
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1], rtol=1e-6)
    clean = (x.double() @ ours.weight.detach().double().T)
    p_clean = torch.softmax(clean, 1)[torch.arange(n), y]
    p_train = torch.softmax(clean - m * F.one_hot(y, c), 1)[torch.arange(n), y]
    row = tables[1][0].iloc[0]
    assert row["p_target_mean"] == pytest.approx(p_clean.mean().item(), rel=1e-5)
    assert row["p_target_noisy_mean"] == pytest.approx(p_train.mean().item(), rel=1e-5)
    assert row["noise_mean"] == pytest.approx(m)


def test_the_clean_logits_rule_is_written_once():
    """"The noise added back on the target column" has one statement,
    satkit.functional.clean_logits; the heads and the recorder call it."""
    root = Path(satkit.__file__).parent
    found = [f"{path.relative_to(root)}: {line.strip()}" for path in root.rglob("*.py")
             for line in path.read_text().splitlines()
             if "scatter_add" in line and "noise" in line and "-noise" not in line]
    assert len(found) == 1 and found[0].startswith("functional.py"), found
