"""``load_dataset``: a named data set as normalised tensors on the training device.

The whole data set fits in device memory (CIFAR's 60,000 float32 images are 740 MB), so it is
held there and batches are drawn by index (:class:`satkit.data.DeviceLoader`), airbench-style.
Images are normalised per channel with the *training* split's mean and standard deviation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from satkit.data.cifar import CIFAR10, CIFAR100, load_cifar_arrays
from satkit.data.digits import load_digits_arrays
from satkit.data.download import DataError, default_data_dir
from satkit.data.formats import RawArrays
from satkit.data.mnist import load_mnist_arrays

__all__ = ["DATASETS", "DataSplit", "channel_stats", "load_dataset"]

#: Names accepted by :func:`load_dataset`; "digits" is embedded, the others download on first use.
DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "cifar100")
_NUM_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}


@dataclass(frozen=True)
class DataSplit:
    """A data set's train and test split as device-resident tensors.

    Attributes:
        train_x, test_x: float32 images, normalised per channel with the train split's stats.
        train_y, test_y: int64 labels in ``[0, num_classes)``.
        num_classes, name, in_channels, image_size: what a model needs to be built.
        mean, std: the per-channel statistics used, in raw pixel units (0..255, or 0..16 for
            digits); ``x * std + mean`` recovers the pixels.

    Shape:
        train_x (N, C, H, W) with H = W = image_size, train_y (N,); test_x (M, C, H, W),
        test_y (M,).
    """

    train_x: Tensor = field(repr=False)
    train_y: Tensor = field(repr=False)
    test_x: Tensor = field(repr=False)
    test_y: Tensor = field(repr=False)
    num_classes: int
    name: str
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.train_x.device


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) standard deviation of uint8 images.

    Computed from a 256-bin histogram per channel, so no float copy of the data is made.

    Args:
        images: uint8 (N, C, H, W).

    Returns:
        ``(mean, std)``, tuples of C floats; a constant channel gets std 1 (no division by 0).
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        mean = float(hist @ values / hist.sum())
        var = float(hist @ (values - mean) ** 2 / hist.sum())
        means.append(mean)
        stds.append(var ** 0.5 if var > 0 else 1.0)
    return tuple(means), tuple(stds)


def _to_device(images: np.ndarray, mean: Tensor, std: Tensor, device: torch.device) -> Tensor:
    # Move the uint8 bytes (4x smaller than float32), then convert and normalise on the device.
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return (x.float() - mean) / std


def _raw(
    name: str, data_dir: str | os.PathLike[str] | None, seed: int, download: bool
) -> RawArrays:
    if name == "digits":
        return load_digits_arrays(seed=seed)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"the data directory {data_dir} is a file, not a directory")
    if name == "mnist":
        return load_mnist_arrays(data_dir, download=download)
    spec = CIFAR10 if name == "cifar10" else CIFAR100
    return load_cifar_arrays(spec, data_dir, download=download)


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    download: bool = True,
) -> DataSplit:
    """Load a data set by name, normalised, with all its tensors on ``device``.

    Args:
        name: one of :data:`DATASETS`.
        data_dir: where the downloadable data sets live; default ``$SATKIT_DATA``, else
            ``~/.cache/satkit``. Unused for "digits" (shipped inside the package).
        device: where to put the tensors.
        seed: seed of the stratified 80/20 train/test split of "digits" (1,437 / 360 images);
            the other data sets have fixed standard splits and ignore it. Keep it fixed across
            training seeds so that runs share a test set.
        download: allow downloading missing files.

    Returns:
        A :class:`DataSplit`.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ones).
        DataError: a file is missing and cannot be downloaded, fails its checksum, or is
            corrupt or truncated (see :func:`satkit.data.fetch_file`).

    Example:
        >>> split = load_dataset("digits")
        >>> split.train_x.shape, split.test_x.shape, split.num_classes
        (torch.Size([1437, 1, 8, 8]), torch.Size([360, 1, 8, 8]), 10)
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    device = torch.device(device)
    raw = _raw(name, data_dir, seed, download)
    _, channels, height, width = raw.train_x.shape
    if height != width:
        raise ValueError(f"{name}: expected square images, got {height}x{width}")
    mean, std = channel_stats(raw.train_x)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    return DataSplit(
        train_x=_to_device(raw.train_x, mean_t, std_t, device),
        train_y=torch.from_numpy(raw.train_y.astype(np.int64)).to(device),
        test_x=_to_device(raw.test_x, mean_t, std_t, device),
        test_y=torch.from_numpy(raw.test_y.astype(np.int64)).to(device),
        num_classes=_NUM_CLASSES[name],
        name=name,
        in_channels=int(channels),
        image_size=int(height),
        mean=mean,
        std=std,
    )
