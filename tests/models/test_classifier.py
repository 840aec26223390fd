"""Classifier: any feature extractor with any head; the target reaches heads that take one."""

import torch
from torch import nn

from satkit import NoisySoftmax
from satkit.models import Classifier, head_accepts_target


def test_classifier_accepts_any_features_and_head():
    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = None

        def forward(self, features, target=None):
            self.seen = target
            return features[:, :2]

    head = Recording()
    model = Classifier(nn.Flatten(), head)
    y = torch.tensor([0, 1])
    assert model(torch.randn(2, 1, 2, 2), y).shape == (2, 2) and head.seen is y


def test_head_accepts_target():
    assert head_accepts_target(NoisySoftmax(4, 3))
    assert not head_accepts_target(nn.Linear(4, 3))
