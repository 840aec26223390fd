"""Label noise with a known answer: exact counts, the two kinds, reproducibility, errors, and
the training run that records it."""

import json

import numpy as np
import pandas as pd
import pytest

from satkit.data import apply_label_noise, corrupt_labels, load_dataset


def test_symmetric_noise_flips_exactly_the_asked_count_and_never_to_the_true_class():
    labels = np.repeat(np.arange(10), 100)
    noisy = corrupt_labels(labels, 0.3, num_classes=10, seed=4)
    assert noisy.corrupted.sum() == 300 and noisy.fraction == 0.3
    assert (noisy.labels != noisy.true_labels).sum() == 300  # every flip really changed it
    assert (noisy.true_labels == labels).all() and noisy.labels is not labels
    # the new classes are spread over the other nine (uniform: each about 300 / 9)
    flipped_to = np.bincount((noisy.labels - labels)[noisy.corrupted] % 10, minlength=10)
    assert flipped_to[0] == 0 and flipped_to[1:].min() > 15
    # rounding to a whole number of samples
    assert corrupt_labels(labels[:7], 0.5, num_classes=10).corrupted.sum() == 4  # round(3.5)


def test_pair_noise_flips_each_class_to_the_next():
    labels = np.repeat(np.arange(5), 20)
    noisy = corrupt_labels(labels, 0.2, num_classes=5, kind="pairs", seed=1)
    assert noisy.corrupted.sum() == 20
    assert ((labels + 1) % 5 == noisy.labels)[noisy.corrupted].all()
    assert (labels == noisy.labels)[~noisy.corrupted].all()


def test_same_seed_same_labels_other_seed_other_labels():
    labels = np.arange(200) % 10
    a = corrupt_labels(labels, 0.25, num_classes=10, seed=7)
    b = corrupt_labels(labels, 0.25, num_classes=10, seed=7)
    c = corrupt_labels(labels, 0.25, num_classes=10, seed=8)
    assert (a.labels == b.labels).all() and (a.corrupted == b.corrupted).all()
    assert not (a.corrupted == c.corrupted).all()
    # a fixed answer, so a change of generator or algorithm cannot pass unnoticed
    first = np.flatnonzero(a.corrupted)[:5]
    assert first.tolist() == [0, 7, 8, 20, 21] and a.labels[first].tolist() == [8, 4, 2, 6, 7]
    assert corrupt_labels(labels, 0.0, num_classes=10).corrupted.sum() == 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fraction": 1.0}, "fraction"), ({"fraction": -0.1}, "fraction"),
    ({"kind": "asymmetric"}, "kind"), ({"num_classes": 1}, "num_classes"),
    ({"seed": -1}, "seed"), ({"num_classes": 3}, r"labels must lie in \[0, 3\)")])
def test_bad_arguments_are_named(kwargs, match):
    args = {"fraction": 0.1, "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        corrupt_labels(np.arange(10), args.pop("fraction"), **args)


def test_only_the_training_labels_change():
    split = load_dataset("digits")
    noisy_split, noisy = apply_label_noise(split, 0.2, seed=3)
    assert (noisy_split.test_y == split.test_y).all()
    changed = (noisy_split.train_y != split.train_y).numpy()
    assert (changed == noisy.corrupted).all() and changed.sum() == round(0.2 * 1437)
    same, none = apply_label_noise(split, 0.0)
    assert same is split and not none.corrupted.any()


def test_a_run_records_the_labels_and_the_fraction_corrupted(tmp_path):
    from satkit.training import TrainConfig, train
    from satkit.training.config import ConfigError

    config = TrainConfig(dataset="digits", epochs=1, batch_size=128, lr=0.05, quiet=True,
                         device="cpu", figures=False, label_noise=0.1,
                         label_noise_kind="pairs", label_noise_seed=5, out=str(tmp_path / "r"))
    result = train(config)
    samples = pd.read_parquet(result.run_dir / "samples.parquet")
    expected = corrupt_labels(load_dataset("digits").train_y.numpy(), 0.1, num_classes=10,
                              kind="pairs", seed=5)
    assert (samples["label"] == expected.labels).all()
    assert (samples["true_label"] == expected.true_labels).all()
    assert (samples["label_corrupted"] == expected.corrupted).all()
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["label_noise"] == pytest.approx(144 / 1437)
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert (saved["label_noise"], saved["label_noise_kind"], saved["label_noise_seed"]) == (
        0.1, "pairs", 5)
    with pytest.raises(ConfigError, match="label_noise"):
        train(config.replace(resume=True, out=str(result.run_dir), label_noise_seed=6))
    with pytest.raises(ConfigError, match="label_noise"):
        TrainConfig(label_noise=1.5)


def test_the_validation_split_is_taken_first_and_keeps_its_true_labels():
    import torch

    from satkit.data import split_validation
    from satkit.training import TrainConfig
    from satkit.training.compose import build_parts, check_config
    from satkit.training.distributed import DistContext

    config = check_config(TrainConfig(device="cpu", val_fraction=0.1, label_noise=0.2,
                                      label_noise_seed=4))
    parts = build_parts(config, DistContext())
    clean, (val_x, val_y) = split_validation(load_dataset("digits"), 0.1, config.split_seed)
    n = clean.train_y.shape[0]
    assert parts.data.train_y.shape[0] == n == len(parts.labels.labels) < 1437
    assert parts.labels.corrupted.sum() == round(0.2 * n)  # of the samples trained on
    assert torch.equal(parts.validation[1], val_y)  # the held-out labels are the true ones
    assert (parts.labels.true_labels == clean.train_y.numpy()).all()
