"""Feature extractors: 3x3 conv + BatchNorm + ReLU stages, then one FC layer.

The stages follow the L-Softmax setup (Liu et al. 2016) that Noisy Softmax (arXiv 1708.03769)
compares against: 3x3 convolutions with BatchNorm + ReLU and 2x2 max-pooling between stages.
Every layer is normalised: without BatchNorm, Noisy Softmax was measured to collapse on MNIST
(early on cos theta ~ 0, so the noise is ~ alpha |xi| ||W|| ||X||, and the cheapest way to
lower it is to shrink the feature and weight norms: the features die), while with BatchNorm
after each layer softmax and Noisy Softmax both train. Convolutions and the FC layer are
bias-free because the BatchNorm that follows each of them has its own shift.

Every extractor takes any input size down to its minimum: before the FC layer,
:class:`GridFlatten` average-pools the last feature map to a fixed ``grid x grid`` (an
identity at the size the preset was designed for), so the FC width, and the parameter count,
do not depend on the image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from satkit.validation import check_int

__all__ = ["GridFlatten", "conv_bn_relu", "digits_cnn_features", "fc_bn_relu",
           "vgg_like_features"]


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


class GridFlatten(nn.Module):
    """Average-pool a feature map to ``grid x grid`` (unless it already is), then flatten.

    At the size a preset was designed for the map already is ``grid x grid`` and nothing is
    pooled, so the network is exactly the fixed-size one. Otherwise ``F.adaptive_avg_pool2d``
    gives each grid cell the mean of the input cells it overlaps: a larger map is
    average-pooled, a smaller one spread over the grid.

    Args:
        grid: the spatial size fed to the FC layer (>= 1).

    Shape:
        (N, C, H, W) -> (N, C * grid * grid).

    Example:
        >>> import torch
        >>> GridFlatten(2)(torch.randn(3, 5, 7, 7)).shape
        torch.Size([3, 20])
    """

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = check_int("grid", grid, minimum=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.grid, self.grid):  # shape ints only: no host sync
            x = F.adaptive_avg_pool2d(x, self.grid)
        return x.flatten(1)

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


def fc_bn_relu(channels: int, grid: int, out_features: int) -> nn.Sequential:
    """:class:`GridFlatten`, then a bias-free FC layer, BatchNorm and ReLU.

    Shape:
        (N, channels, H, W) -> (N, out_features).
    """
    return nn.Sequential(
        GridFlatten(grid),
        nn.Linear(channels * grid * grid, out_features, bias=False),
        nn.BatchNorm1d(out_features),
        nn.ReLU(inplace=True),
    )


def vgg_like_features(
    in_channels: int,
    *,
    stem: int | None,
    stages: Sequence[tuple[int, int]],
    grid: int,
    feature_dim: int,
) -> nn.Sequential:
    """An optional stem conv, then stages of ``n`` convs of width ``w`` each followed by 2x2
    max-pooling, then an FC layer with BatchNorm and ReLU.

    Args:
        in_channels: input channels.
        stem: width of a first convolution before the stages; None for no stem.
        stages: ``(width, number of convs)`` per stage; each stage halves the size (rounding
            down), so an input needs ``image_size >= 2 ** len(stages)``.
        grid: the last map is pooled to ``grid x grid`` before the FC layer
            (:class:`GridFlatten`); ``image_size // 2 ** len(stages)`` at the design size.
        feature_dim: D, the output feature dimension (the head's ``in_features``).

    Returns:
        The feature extractor.

    Shape:
        (N, in_channels, H, W) with H, W >= 2 ** len(stages) -> (N, feature_dim).

    Example:
        >>> import torch
        >>> net = vgg_like_features(1, stem=None, stages=[(4, 1), (8, 1)], grid=2, feature_dim=6)
        >>> net(torch.randn(2, 1, 8, 8)).shape, net(torch.randn(2, 1, 28, 28)).shape
        (torch.Size([2, 6]), torch.Size([2, 6]))
    """
    width = in_channels
    layers: list[nn.Module] = []
    if stem is not None:
        layers.append(conv_bn_relu(width, stem))
        width = stem
    for out_width, n_convs in stages:
        for _ in range(n_convs):
            layers.append(conv_bn_relu(width, out_width))
            width = out_width
        layers.append(nn.MaxPool2d(2))
    layers.append(fc_bn_relu(width, grid, feature_dim))
    return nn.Sequential(*layers)


def digits_cnn_features(in_channels: int, *, grid: int = 4, feature_dim: int = 128
                        ) -> nn.Sequential:
    """A small, fast CNN for 8x8 digits: conv32, conv64, pool, conv64, FC, all with BatchNorm.

    Args:
        in_channels: input channels.
        grid: the map is pooled to ``grid x grid`` before the FC layer (4 for 8x8 digits).
        feature_dim: D.

    Shape:
        (N, in_channels, H, W) with H, W >= 2 (one 2x2 pooling) -> (N, feature_dim).
    """
    return nn.Sequential(
        conv_bn_relu(in_channels, 32),
        conv_bn_relu(32, 64),
        nn.MaxPool2d(2),
        conv_bn_relu(64, 64),
        fc_bn_relu(64, grid, feature_dim),
    )
