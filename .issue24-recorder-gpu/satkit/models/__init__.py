"""Models: a feature extractor plus a classifier head, and the named presets.

The ``*-paper`` presets are documented stand-ins for the paper's unreleased VGG-like nets
(the L-Softmax setup of Liu et al. 2016, which Noisy Softmax, arXiv 1708.03769, compares
against); ``small-cnn`` trains an MNIST epoch in minutes on a laptop CPU. Every preset builds
for any data set's channels and image size, and normalises each layer with BatchNorm, without
which Noisy Softmax collapses (it shrinks the feature norms to shrink the noise).
"""

from satkit.models.classifier import Classifier, head_accepts_target
from satkit.models.presets import PRESETS, HeadFactory, Preset, build_model, default_preset

__all__ = ["PRESETS", "Classifier", "HeadFactory", "Preset", "build_model", "default_preset",
           "head_accepts_target"]
