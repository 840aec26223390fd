"""Classifier heads: the last layer of a network, producing the logits."""

from satkit.heads.margin import ArcFace, CosFace
from satkit.heads.noisy import NoisySoftmax
from satkit.heads.temperature import TemperatureSoftmax

__all__ = ["ArcFace", "CosFace", "NoisySoftmax", "TemperatureSoftmax"]
