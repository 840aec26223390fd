"""The embedded default data set: scikit-learn's bundled 8x8 handwritten digits.

``digits.npz`` beside this module holds the 1,797 images (uint8, values 0..16, shape
(1797, 8, 8)) and their labels (int64, 0..9), written once from
``sklearn.datasets.load_digits()`` (scikit-learn 1.9). They are the test set of the UCI ML
"Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998; 43
writers, 32x32 bitmaps counted into 4x4 blocks), redistributed by scikit-learn under its
BSD-3-Clause licence. Shipping them makes the default run need no network and no
scikit-learn.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from satkit.data.download import DataError
from satkit.data.formats import RawArrays

__all__ = ["DIGITS_RESOURCE", "load_digits_arrays", "stratified_split"]

#: The package resource holding the data: ``importlib.resources.files("satkit.data") / this``.
DIGITS_RESOURCE = "digits.npz"


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train and test so that each class keeps its share of the test set.

    The test set has ``ceil(test_fraction * N)`` samples; each class contributes the floor of
    its quota, and the remaining places go to the classes with the largest fractional quotas
    (ties to the lower label), so sizes are fixed and independent of the seed. Which samples
    of a class go to the test set depends only on ``seed``.

    Args:
        labels: (N,) integer class labels.
        test_fraction: in (0, 1).
        seed: seed of the numpy generator that picks the test samples.

    Returns:
        ``(train_idx, test_idx)``, sorted int64 index arrays that partition ``range(N)``.

    Raises:
        ValueError: ``test_fraction`` not in (0, 1).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    n_test = int(np.ceil(test_fraction * len(labels)))
    quota = counts * (n_test / len(labels))
    take = np.floor(quota).astype(np.int64)
    order = np.lexsort((classes, -(quota - take)))  # largest remainder first, then lower label
    take[order[: n_test - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k]
                           for c, k in zip(classes, take, strict=True)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def load_digits_arrays(*, seed: int = 0, test_fraction: float = 0.2) -> RawArrays:
    """Load the embedded digits and split them, stratified, into train and test.

    With the default ``test_fraction`` the split is 1,437 / 360 images.

    Args:
        seed: chooses which images of each class are held out (the sizes do not depend on it).
        test_fraction: share of the images in the test set.

    Returns:
        :class:`RawArrays` with images uint8 (N, 1, 8, 8), values 0..16.

    Raises:
        DataError: the packaged ``digits.npz`` is missing (a broken installation).
    """
    try:
        with (resources.files("satkit.data") / DIGITS_RESOURCE).open("rb") as f, \
                np.load(f) as npz:
            images, labels = npz["images"], npz["labels"]
    except FileNotFoundError as err:
        raise DataError(f"satkit/data/{DIGITS_RESOURCE} is missing from the installed package; "
                        f"reinstall satkit") from err
    train, test = stratified_split(labels, test_fraction, seed)
    x = images[:, None]  # (N, 1, 8, 8)
    return RawArrays(x[train], labels[train], x[test], labels[test])
