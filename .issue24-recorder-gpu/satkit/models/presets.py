"""Named model presets: ``build_model("mnist-paper", num_classes=10, in_channels=1)``.

Each ``*-paper`` preset is a **documented stand-in**, not the paper's network: Noisy Softmax
(Chen, Deng, Du, CVPR 2017, arXiv 1708.03769) trains "VGG-like" nets whose layer tables were
never released. They take the closest public configuration, the L-Softmax (Liu et al. 2016)
setup the paper compares against: 3x3 conv stages with BatchNorm + ReLU (MNIST: 64-64x3,
pool, 128x3, pool, 256x3, pool; CIFAR: four convs per stage), a fully connected feature
layer, then the (Noisy) softmax head. Widths and the feature dimension (256) are this
project's choice; results will not match the paper's tables digit for digit.

``small-cnn`` is the laptop preset: two conv stages and an FC layer (conv32, pool, conv64,
pool, FC256), sized so that one MNIST epoch (60,000 images, batch 128, saturation recorder
on) takes about a minute of CPU time, well inside three minutes on two CPU cores
(``benchmarks/bench_epoch.py``); the ``*-paper`` presets are ~15 times the work, for GPUs.

Every preset builds for any channel count and any image size down to its minimum (2 to the
number of poolings), so each one runs on each data set: digits 8x8x1, MNIST 28x28x1,
CIFAR-10/100 32x32x3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from torch import Tensor, nn

from satkit.heads import NoisySoftmax
from satkit.methods import DEFAULT_ALPHA2
from satkit.models.classifier import Classifier
from satkit.models.convnets import digits_cnn_features, vgg_like_features
from satkit.validation import check_int

__all__ = ["PRESETS", "HeadFactory", "Preset", "build_model", "default_preset"]

#: ``factory(in_features, num_classes) -> head``, e.g. ``nn.Linear``.
HeadFactory = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class Preset:
    """A named feature extractor.

    Attributes:
        name: the preset's name.
        dataset: the data set it is the default for (None: the default for none).
        image_size: the input height = width it was designed for; there the last feature map
            is exactly the FC layer's grid (any other size is pooled to it).
        feature_dim: D, the width of the features given to the head.
        pools: its number of 2x2 max-poolings.
        features: ``features(in_channels) -> nn.Module`` mapping (N, in_channels, H, W) to
            (N, D) for any H, W >= :attr:`min_image_size`.
        description: one line for ``--help`` and docs.
    """

    name: str
    dataset: str | None
    image_size: int
    feature_dim: int
    pools: int
    features: Callable[[int], nn.Module]
    description: str

    @property
    def min_image_size(self) -> int:
        """The smallest input height = width: each pooling halves it, and 1 must remain."""
        return 2 ** self.pools


def _vgg(name: str, dataset: str | None, image_size: int, stem: int | None,
         stages: Sequence[tuple[int, int]], feature_dim: int, description: str) -> Preset:
    grid = image_size // 2 ** len(stages)
    features = partial(vgg_like_features, stem=stem, stages=tuple(stages), grid=grid,
                       feature_dim=feature_dim)
    return Preset(name, dataset, image_size, feature_dim, len(stages), features, description)


_CIFAR_STAGES = ((64, 4), (128, 4), (256, 4))

#: All presets by name.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("digits-cnn", "digits", 8, 128, 1, partial(digits_cnn_features, grid=4),
           "small fast CNN for 8x8 digits: conv32, conv64, pool, conv64, FC128; BatchNorm"),
    _vgg("mnist-paper", "mnist", 28, 64, ((64, 3), (128, 3), (256, 3)), 256,
         "stand-in for the paper's MNIST net (L-Softmax setup): 64-64x3, pool, 128x3, pool, "
         "256x3, pool, FC256; BatchNorm + ReLU"),
    _vgg("cifar10-paper", "cifar10", 32, 64, _CIFAR_STAGES, 256,
         "stand-in for the paper's CIFAR-10 net (L-Softmax setup): 64-64x4, pool, 128x4, "
         "pool, 256x4, pool, FC256; BatchNorm + ReLU"),
    _vgg("cifar100-paper", "cifar100", 32, 64, _CIFAR_STAGES, 256,
         "stand-in for the paper's CIFAR-100 net: as cifar10-paper, with a 100-class head"),
    _vgg("small-cnn", None, 28, None, ((32, 1), (64, 1)), 256,
         "laptop CNN for any data set (an MNIST epoch in about a minute on 2 CPU cores): "
         "conv32, pool, conv64, pool, FC256; BatchNorm + ReLU"),
)}


def default_preset(dataset: str) -> str:
    """Return the name of the default preset for ``dataset`` (e.g. "digits" -> "digits-cnn").

    Raises:
        ValueError: no preset is the default for ``dataset`` (the message lists the known ones).

    Example:
        >>> default_preset("mnist")
        'mnist-paper'
    """
    for preset in PRESETS.values():
        if preset.dataset is not None and preset.dataset == dataset:
            return preset.name
    known = ", ".join(p.dataset for p in PRESETS.values() if p.dataset is not None)
    raise ValueError(f"no default model for dataset {dataset!r}; known datasets: {known}")


def _check_image_size(spec: Preset, image_size: object) -> None:
    check_int("image_size", image_size, minimum=1, optional=True)
    if image_size is not None and image_size < spec.min_image_size:  # type: ignore[operator]
        raise ValueError(
            f"model preset {spec.name!r} needs image_size >= {spec.min_image_size} (it has "
            f"{spec.pools} 2x2 poolings), got image_size={image_size}")


def _head_size(head: nn.Module, names: tuple[str, str], weight_dim: int) -> int | None:
    """The head's declared in (or out) size: an attribute, else its 2-D weight's shape."""
    for name in names:
        value = getattr(head, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    weight = getattr(head, "weight", None)
    if isinstance(weight, Tensor) and weight.dim() == 2:
        return int(weight.shape[weight_dim])
    return None


def _make_head(head: nn.Module | HeadFactory | None, spec: Preset, num_classes: int
               ) -> nn.Module:
    dim = spec.feature_dim
    if head is None:
        return NoisySoftmax(dim, num_classes, alpha2=DEFAULT_ALPHA2)
    if not isinstance(head, nn.Module):
        if not callable(head):
            raise TypeError("head must be an nn.Module, a factory (in_features, num_classes) "
                            f"-> nn.Module, or None; got {type(head).__name__}")
        head = head(dim, num_classes)
        if not isinstance(head, nn.Module):
            raise TypeError(f"the head factory returned a {type(head).__name__}, "
                            "expected an nn.Module")
    got_in = _head_size(head, ("in_features",), 1)
    if got_in is not None and got_in != dim:
        raise ValueError(
            f"head {type(head).__name__} takes in_features={got_in}, but model preset "
            f"{spec.name!r} gives features of dimension {dim} (PRESETS[{spec.name!r}]"
            f".feature_dim); build it with in_features={dim}, or pass a factory")
    got_out = _head_size(head, ("num_classes", "out_features"), 0)
    if got_out is not None and got_out != num_classes:
        raise ValueError(f"head {type(head).__name__} gives {got_out} logits, but "
                         f"num_classes={num_classes}")
    return head


def build_model(
    preset: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int | None = None,
    head: nn.Module | HeadFactory | None = None,
) -> Classifier:
    """Build a preset's feature extractor for the data's channels, with a classifier head.

    Args:
        preset: a key of :data:`PRESETS`.
        num_classes: C >= 2.
        in_channels: input channels (1 for digits and MNIST, 3 for CIFAR).
        image_size: the data's height = width, checked against the preset's minimum
            (``PRESETS[preset].min_image_size``); the model itself takes any size down to that
            minimum, so None skips the check.
        head: a module mapping (N, D) features to (N, C) logits, with
            D = ``PRESETS[preset].feature_dim``; or a factory ``head(in_features, num_classes)``
            such as ``nn.Linear`` or :func:`satkit.heads.make_head_and_loss`'s head; None for
            ``satkit.NoisySoftmax(D, C)`` at :data:`satkit.methods.DEFAULT_ALPHA2` (0.1).

    Returns:
        A :class:`Classifier`; ``model.head`` is the head, ``model.features`` the extractor.

    Raises:
        ValueError: unknown preset (the message lists the valid ones), bad ``num_classes``,
            ``in_channels`` or ``image_size``, an image smaller than the preset's minimum (the
            message names the preset and the minimum), or a head whose ``in_features`` is not
            D or whose class count is not C.
        TypeError: ``head`` is neither a module, a factory nor None, or its factory returned
            something other than a module.

    Shape:
        (N, in_channels, H, W) with H, W >= ``min_image_size`` -> logits (N, num_classes).

    Example:
        >>> import torch
        >>> model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
        >>> model(torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])).shape
        torch.Size([4, 10])
        >>> build_model("digits-cnn", num_classes=100, in_channels=3, image_size=32,
        ...             head=nn.Linear).head
        Linear(in_features=128, out_features=100, bias=True)
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; valid: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    check_int("num_classes (a softmax classifier needs two)", num_classes, minimum=2)
    check_int("in_channels", in_channels, minimum=1)
    _check_image_size(spec, image_size)
    return Classifier(spec.features(in_channels), _make_head(head, spec, num_classes))
