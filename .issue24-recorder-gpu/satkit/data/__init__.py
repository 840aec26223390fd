"""Data: the embedded digits, MNIST and CIFAR loaded as device-resident tensors, and batching.

``load_dataset(name)`` returns a :class:`DataSplit` of normalised tensors on the training device;
:class:`DeviceLoader` draws batches from them by index; :func:`cifar_augment` is the paper's
batched "+" augmentation; :func:`split_validation` holds a stratified validation split out of
the training set, :func:`corrupt_labels` flips a known fraction of the training labels.
Downloads happen only when a loader is called, never on import.
"""

from satkit.data.augment import cifar_augment, random_crop_flip
from satkit.data.datasets import DATASETS, DataSplit, load_dataset
from satkit.data.download import DataError, RemoteFile, default_data_dir, fetch_file
from satkit.data.label_noise import (
    LABEL_NOISE_KINDS,
    NoisyLabels,
    apply_label_noise,
    corrupt_labels,
)
from satkit.data.loader import DeviceLoader
from satkit.data.validation import split_validation, validation_indices

__all__ = [
    "DATASETS",
    "DataError",
    "DataSplit",
    "DeviceLoader",
    "LABEL_NOISE_KINDS",
    "NoisyLabels",
    "RemoteFile",
    "apply_label_noise",
    "cifar_augment",
    "corrupt_labels",
    "default_data_dir",
    "fetch_file",
    "load_dataset",
    "random_crop_flip",
    "split_validation",
    "validation_indices",
]
