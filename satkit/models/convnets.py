"""Feature extractors: 3x3 conv + BatchNorm + ReLU stages, as in PAPER.md section 6.

Every layer is normalised: PAPER.md section 7 measured that without BatchNorm Noisy Softmax
collapses (the cheapest way to shrink the noise is to shrink the feature norms), while with
it softmax and Noisy Softmax both train. Convolutions and the FC layer are bias-free because
the BatchNorm that follows each of them has its own shift.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["conv_bn_relu", "digits_cnn_features", "vgg_like_features"]


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 same-padding convolution, BatchNorm and ReLU.

    Shape:
        (N, in_channels, H, W) -> (N, out_channels, H, W).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _fc_bn_relu(in_features: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, out_features, bias=False),
        nn.BatchNorm1d(out_features),
        nn.ReLU(inplace=True),
    )


def vgg_like_features(
    in_channels: int,
    image_size: int,
    *,
    stem: int,
    stages: Sequence[tuple[int, int]],
    feature_dim: int,
) -> nn.Sequential:
    """A stem conv, then stages of ``n`` convs of width ``w`` each followed by 2x2 max-pooling,
    then a flattening FC layer with BatchNorm and ReLU.

    Args:
        in_channels: input channels.
        image_size: input height = width; each stage halves it (rounding down).
        stem: width of the first convolution.
        stages: ``(width, number of convs)`` per stage.
        feature_dim: D, the output feature dimension (the head's ``in_features``).

    Returns:
        The feature extractor.

    Shape:
        (N, in_channels, image_size, image_size) -> (N, feature_dim).

    Raises:
        ValueError: the image is too small for the number of pooling stages.
    """
    layers: list[nn.Module] = [conv_bn_relu(in_channels, stem)]
    width, size = stem, image_size
    for out_width, n_convs in stages:
        for _ in range(n_convs):
            layers.append(conv_bn_relu(width, out_width))
            width = out_width
        layers.append(nn.MaxPool2d(2))
        size //= 2
    if size < 1:
        raise ValueError(f"image_size={image_size} is too small for {len(stages)} 2x2 poolings")
    layers.append(_fc_bn_relu(width * size * size, feature_dim))
    return nn.Sequential(*layers)


def digits_cnn_features(
    in_channels: int, image_size: int, *, feature_dim: int = 128
) -> nn.Sequential:
    """A small, fast CNN for 8x8 digits: conv32, conv64, pool, conv64, FC, all with BatchNorm.

    Shape:
        (N, in_channels, image_size, image_size) -> (N, feature_dim).

    Raises:
        ValueError: ``image_size`` < 2 (one 2x2 pooling).
    """
    size = image_size // 2
    if size < 1:
        raise ValueError(f"image_size={image_size} is too small for one 2x2 pooling")
    return nn.Sequential(
        conv_bn_relu(in_channels, 32),
        conv_bn_relu(32, 64),
        nn.MaxPool2d(2),
        conv_bn_relu(64, 64),
        _fc_bn_relu(64 * size * size, feature_dim),
    )
