"""Classifier heads: the last layer of a network, producing the logits."""

from satkit.heads.noisy import NoisySoftmax

__all__ = ["NoisySoftmax"]
