"""Classifier heads: the last layer of a network, producing the logits."""

from satkit.heads.margin import ArcFace, CosFace
from satkit.heads.noisy import NoisySoftmax

__all__ = ["ArcFace", "CosFace", "NoisySoftmax"]
