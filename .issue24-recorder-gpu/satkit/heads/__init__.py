"""Classifier heads: the last layer of a network, producing the logits."""

from satkit.heads.base import ClassifierHead, SaturationHead
from satkit.heads.margin import ArcFace, CosFace
from satkit.heads.noisy import NoisySoftmax
from satkit.heads.registry import LOSSES, make_head_and_loss
from satkit.heads.temperature import TemperatureSoftmax

__all__ = ["LOSSES", "ArcFace", "ClassifierHead", "CosFace", "NoisySoftmax", "SaturationHead",
           "TemperatureSoftmax", "make_head_and_loss"]
