"""Batched image augmentation on the device of its input (the paper's CIFAR "+" setting).

One gather builds every crop (and flip) of the batch at once: there is no Python loop over
samples and no host sync, and all draws come from the given generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cifar_augment", "random_crop_flip"]


def random_crop_flip(
    x: Tensor, generator: torch.Generator | None = None, *, pad: int = 4, flip: bool = True
) -> Tensor:
    """Zero-pad by ``pad`` pixels, take a random crop of the original size, randomly flip.

    Per sample: the crop offset is uniform in ``[0, 2 * pad]`` along each axis and the
    horizontal flip has probability 1/2. Zero padding is applied to the tensor as given, so on
    normalised images the border is the mean pixel.

    Args:
        x: images on any device.
        generator: source of the draws, on ``x``'s device (None: the global generator).
        pad: padding in pixels (>= 0).
        flip: also flip horizontally with probability 1/2.

    Returns:
        A new tensor like ``x``, contiguous in ``x``'s memory format (NCHW or channels_last).

    Shape:
        x (N, C, H, W) -> (N, C, H, W).

    Raises:
        ValueError: ``x`` is not 4-D or ``pad`` is negative.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_crop_flip(torch.randn(2, 3, 32, 32), g).shape
        torch.Size([2, 3, 32, 32])
    """
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=x.device)
    rows = dy + torch.arange(h, device=x.device)  # (N, H)
    cols = torch.arange(w, device=x.device).expand(n, w)
    if flip:
        mirror = torch.rand(n, 1, generator=generator, device=x.device) < 0.5
        cols = torch.where(mirror, (w - 1) - cols, cols)  # a flip reverses the column order
    cols = dx + cols  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indices around a slice: result dims (N, H, W) first, then C.
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    keep_nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if keep_nhwc else torch.contiguous_format
    return out.contiguous(memory_format=fmt)


def cifar_augment(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The paper's CIFAR "+" augmentation: 4-pixel zero-padded random 32x32 crop, random flip.

    Usable as ``DeviceLoader(augment=cifar_augment)``; see :func:`random_crop_flip`.

    Shape:
        x (N, C, H, W) -> (N, C, H, W).
    """
    return random_crop_flip(x, generator, pad=4, flip=True)
