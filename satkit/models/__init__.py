"""Models: a feature extractor plus a classifier head, and the named presets.

The ``*-paper`` presets are documented stand-ins for the paper's unreleased VGG-like nets
(PAPER.md section 6); every preset normalises each layer with BatchNorm (PAPER.md section 7).
"""

from satkit.models.classifier import Classifier, head_accepts_target
from satkit.models.presets import PRESETS, Preset, build_model, default_preset

__all__ = ["PRESETS", "Classifier", "Preset", "build_model", "default_preset",
           "head_accepts_target"]
