"""The validation split: a stratified share of the training set held out (``--val-fraction``).

The split is taken first, from the training set as loaded; everything else a run does to its
training samples (the per-sample record, any change to the training labels) applies to the
samples trained on only, and the validation samples keep their labels as loaded. It is
reproducible from ``split_seed`` (the seed of the digits train/test split too, drawn from a
stream of its own), so every training seed of a comparison holds out the same samples.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from satkit.data.datasets import DataSplit
from satkit.data.digits import stratified_split
from satkit.data.loader import derive_seed

__all__ = ["VALIDATION_STREAM", "split_validation", "validation_indices"]

#: Mixed with ``split_seed`` (:func:`satkit.data.loader.derive_seed`) to seed the validation
#: split, so that it draws independently of the digits train/test split.
VALIDATION_STREAM = 0x76616C


def validation_indices(labels: np.ndarray, fraction: float,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which training samples are trained on and which are held out for validation.

    ``ceil(fraction * N)`` samples are held out, each class contributing its share (the
    sizes of :func:`satkit.data.digits.stratified_split`); which ones depends only on
    ``seed``.

    Args:
        labels: (N,) class labels of the training set as loaded.
        fraction: in (0, 1).
        seed: the run's ``split_seed``.

    Returns:
        ``(train_index, val_index)``: sorted int64 positions in the training set that
        partition it; the samples trained on keep their order.

    Raises:
        ValueError: ``fraction`` not in (0, 1), or a split that would leave a class with no
            training sample; the message names ``val_fraction``.

    Example:
        >>> train, val = validation_indices(np.repeat(np.arange(3), 10), 0.1, seed=0)
        >>> len(train), len(val), np.bincount(np.repeat(np.arange(3), 10)[val]).tolist()
        (27, 3, [1, 1, 1])
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1) to hold out a split; got {fraction}")
    train, val = stratified_split(labels, fraction, derive_seed(seed, VALIDATION_STREAM))
    classes, counts = np.unique(labels, return_counts=True)
    left = np.bincount(np.searchsorted(classes, labels[train]), minlength=len(classes))
    if np.any(left == 0):
        empty = classes[left == 0]
        raise ValueError(f"val_fraction {fraction} holds out every training sample of class(es) "
                         f"{', '.join(map(str, empty.tolist()))} ({counts.min()} samples in the "
                         f"smallest class); use a smaller val_fraction")
    return train, val


def split_validation(data: DataSplit, fraction: float,
                     seed: int) -> tuple[DataSplit, tuple[Tensor, Tensor] | None]:
    """Hold a stratified validation split out of ``data``'s training set.

    Args:
        data: the loaded data set (its normalisation statistics stay those of the whole
            training set as loaded).
        fraction: share of the training set held out; 0 holds out nothing.
        seed: the run's ``split_seed``.

    Returns:
        ``(data, validation)``: ``data`` with ``train_x``/``train_y`` the samples trained on,
        and ``(val_x, val_y)`` on the same device (None when ``fraction`` is 0).

    Raises:
        ValueError: as :func:`validation_indices`.
    """
    if fraction == 0:
        return data, None
    train, val = validation_indices(data.train_y.cpu().numpy(), fraction, seed)
    keep = torch.from_numpy(train).to(data.device)
    held = torch.from_numpy(val).to(data.device)
    trained_on = dataclasses.replace(data, train_x=data.train_x.index_select(0, keep),
                                     train_y=data.train_y.index_select(0, keep))
    return trained_on, (data.train_x.index_select(0, held), data.train_y.index_select(0, held))
