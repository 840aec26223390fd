"""Named model presets: ``build_model("mnist-paper", num_classes=10, in_channels=1)``.

Each ``*-paper`` preset is a **documented stand-in**, not the paper's network: Noisy Softmax
(CVPR 2017) trains "VGG-like" nets whose layer tables were never released. Following
PAPER.md section 6, they take the closest public configuration, the L-Softmax (Liu et al.
2016) setup the paper compares against: 3x3 conv stages with BatchNorm + ReLU, 2x2
max-pooling after each stage, a fully connected feature layer, then the (Noisy) softmax
head. Widths and the feature dimension (256) are this project's choice; results will not
match the paper's tables digit for digit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import nn

from satkit.heads import NoisySoftmax
from satkit.models.classifier import Classifier
from satkit.models.convnets import digits_cnn_features, vgg_like_features

__all__ = ["PRESETS", "Preset", "build_model", "default_preset"]

HeadFactory = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class Preset:
    """A named feature extractor.

    Attributes:
        name: the preset's name.
        dataset: the data set it is the default for.
        image_size: the input height = width it is built for by default.
        feature_dim: D, the width of the features given to the head.
        features: ``features(in_channels, image_size) -> nn.Module`` producing (N, D).
        description: one line for ``--help`` and docs.
    """

    name: str
    dataset: str
    image_size: int
    feature_dim: int
    features: Callable[[int, int], nn.Module]
    description: str


def _vgg(stages: tuple[tuple[int, int], ...]) -> Callable[[int, int], nn.Module]:
    return partial(_vgg_features, stages=stages)


def _vgg_features(
    in_channels: int, image_size: int, *, stages: tuple[tuple[int, int], ...]
) -> nn.Module:
    return vgg_like_features(in_channels, image_size, stem=64, stages=stages, feature_dim=256)


_CIFAR_STAGES = ((64, 4), (128, 4), (256, 4))

#: All presets by name.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("digits-cnn", "digits", 8, 128, digits_cnn_features,
           "small fast CNN for 8x8 digits: conv32, conv64, pool, conv64, FC128; BatchNorm"),
    Preset("mnist-paper", "mnist", 28, 256, _vgg(((64, 3), (128, 3), (256, 3))),
           "stand-in for the paper's MNIST net (PAPER.md s.6): 64-64x3, pool, 128x3, pool, "
           "256x3, pool, FC256; BatchNorm + ReLU"),
    Preset("cifar10-paper", "cifar10", 32, 256, _vgg(_CIFAR_STAGES),
           "stand-in for the paper's CIFAR-10 net (PAPER.md s.6): 64-64x4, pool, 128x4, pool, "
           "256x4, pool, FC256; BatchNorm + ReLU"),
    Preset("cifar100-paper", "cifar100", 32, 256, _vgg(_CIFAR_STAGES),
           "stand-in for the paper's CIFAR-100 net: as cifar10-paper, with a 100-class head"),
)}


def default_preset(dataset: str) -> str:
    """Return the name of the default preset for ``dataset`` (e.g. "digits" -> "digits-cnn").

    Raises:
        ValueError: no preset is the default for ``dataset`` (the message lists the known ones).
    """
    for preset in PRESETS.values():
        if preset.dataset == dataset:
            return preset.name
    known = ", ".join(p.dataset for p in PRESETS.values())
    raise ValueError(f"no default model for dataset {dataset!r}; known datasets: {known}")


def build_model(
    preset: str,
    *,
    num_classes: int,
    in_channels: int,
    alpha2: float = 0.1,
    noise: Literal["annealed", "amplitude", "free", "negative"] = "annealed",
    xi_per: Literal["sample", "batch"] = "sample",
    head: nn.Module | HeadFactory | None = None,
    image_size: int | None = None,
) -> Classifier:
    """Build a preset's feature extractor with a Noisy Softmax head (or the head given).

    Args:
        preset: a key of :data:`PRESETS`.
        num_classes: C.
        in_channels: input channels (1 for digits and MNIST, 3 for CIFAR).
        alpha2, noise, xi_per: settings of the default :class:`satkit.NoisySoftmax` head
            (``alpha2=0`` is the plain-softmax baseline); ignored when ``head`` is given.
        head: a head module taking (N, D) features, or a factory
            ``head(in_features, num_classes)`` such as ``nn.Linear``; None for NoisySoftmax.
        image_size: input height = width; default the preset's (8, 28 or 32).

    Returns:
        A :class:`Classifier`; ``model.head`` is the head, ``model.features`` the extractor.

    Raises:
        ValueError: unknown preset (the message lists the valid ones), or an image too small.

    Shape:
        (N, in_channels, image_size, image_size) -> logits (N, num_classes).

    Example:
        >>> import torch
        >>> model = build_model("digits-cnn", num_classes=10, in_channels=1)
        >>> model(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])).shape
        torch.Size([4, 10])
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; valid: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    features = spec.features(in_channels, spec.image_size if image_size is None else image_size)
    if head is None:
        head = NoisySoftmax(spec.feature_dim, num_classes, alpha2=alpha2, noise=noise,
                            xi_per=xi_per)
    elif not isinstance(head, nn.Module):
        head = head(spec.feature_dim, num_classes)
    return Classifier(features, head)
