"""The validation split (--val-fraction): stratified, reproducible from split_seed, disjoint,
the samples trained on kept in order; bad fractions refused naming val_fraction."""

import numpy as np
import pytest
import torch

from satkit.data import load_dataset, split_validation, validation_indices
from satkit.training.config import ConfigError, TrainConfig


def test_sizes_per_class_and_reproducibility():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])  # unbalanced classes
    train, val = validation_indices(labels, 0.2, seed=7)
    assert len(val) == 20 and len(train) == 80
    assert np.bincount(labels[val]).tolist() == [10, 6, 3, 1]  # each class its share
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted: order kept
    again = validation_indices(labels, 0.2, seed=7)
    assert np.array_equal(again[1], val)
    other = validation_indices(labels, 0.2, seed=8)[1]
    assert not np.array_equal(other, val) and len(other) == 20  # the seed picks, not sizes


def test_the_validation_draw_is_not_the_test_split_draw():
    """With the same seed, the digits' test split and the validation split use different
    random streams: the validation split is not the first positions of each class's test
    permutation again."""
    from satkit.data.digits import stratified_split

    labels = np.repeat(np.arange(10), 100)
    _, as_test = stratified_split(labels, 0.1, 0)
    _, val = validation_indices(labels, 0.1, seed=0)
    assert not np.array_equal(as_test, val)


def test_digits_split_keeps_labels_and_images_of_the_samples_trained_on():
    data = load_dataset("digits")
    trained, (val_x, val_y) = split_validation(data, 0.1, seed=0)
    assert (len(trained.train_y), len(val_y)) == (1293, 144)
    train, val = validation_indices(data.train_y.numpy(), 0.1, seed=0)
    assert torch.equal(trained.train_x, data.train_x[train])
    assert torch.equal(val_y, data.train_y[val])  # validation labels as loaded
    assert torch.equal(trained.test_x, data.test_x) and trained.mean == data.mean
    assert split_validation(data, 0.0, seed=0) == (data, None)


def test_bad_fractions_are_refused_naming_val_fraction():
    labels = np.repeat(np.arange(3), [10, 10, 1])
    with pytest.raises(ValueError, match="val_fraction .* every training sample of class"):
        validation_indices(labels, 0.5, seed=0)  # the class of one sample would go entirely
    with pytest.raises(ValueError, match="val_fraction must be in \\(0, 1\\)"):
        validation_indices(labels, 1.0, seed=0)
    for bad in (1.0, -0.1, float("nan"), True):
        with pytest.raises(ConfigError, match="val_fraction"):
            TrainConfig(val_fraction=bad)
