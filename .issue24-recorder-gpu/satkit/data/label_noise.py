"""Label noise with a known answer: corrupt a fraction of the training labels reproducibly.

Two kinds, the usual benchmarks of learning with noisy labels:

* ``"symmetric"``: each corrupted label is replaced by a class drawn uniformly from the
  *other* classes: a flipped label never lands on its true class, so every corrupted label is
  really wrong and the fraction corrupted is exactly what was asked (up to rounding to a
  whole number of samples). Some papers draw from all classes instead, which leaves about
  1/C of the "flipped" labels unchanged; satkit does not.
* ``"pairs"``: class c flips to class (c + 1) mod C, one fixed other class per class (the
  asymmetric "pair flipping" benchmark).

Exactly ``round(fraction * N)`` samples are corrupted, chosen uniformly at random without
replacement from the N training samples, with a NumPy generator seeded by ``seed`` (the same
seed gives the same labels on every machine). Only the samples trained on are corrupted:
apply it after any validation split is taken from the training set, never to the test set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from satkit.data.datasets import DataSplit

__all__ = ["LABEL_NOISE_KINDS", "NoisyLabels", "apply_label_noise", "corrupt_labels"]

LABEL_NOISE_KINDS: tuple[str, ...] = ("symmetric", "pairs")


@dataclass(frozen=True)
class NoisyLabels:
    """The labels trained on, the true ones, and which differ.

    Attributes:
        labels: int64 (N,), the labels to train on.
        true_labels: int64 (N,), the data set's own labels.
        corrupted: bool (N,), ``labels != true_labels``.
    """

    labels: np.ndarray
    true_labels: np.ndarray
    corrupted: np.ndarray

    @property
    def fraction(self) -> float:
        """The fraction of labels actually changed."""
        return float(self.corrupted.mean()) if len(self.corrupted) else 0.0


def corrupt_labels(labels: np.ndarray, fraction: float, *, num_classes: int,
                   kind: str = "symmetric", seed: int = 0) -> NoisyLabels:
    """Corrupt ``round(fraction * N)`` of ``labels`` (see the module docstring).

    Args:
        labels: integer class labels in [0, num_classes), (N,).
        fraction: the fraction to corrupt, in [0, 1).
        num_classes: C, at least 2.
        kind: ``"symmetric"`` or ``"pairs"``.
        seed: the generator's seed, in [0, 2**32 - 1].

    Returns:
        :class:`NoisyLabels` (``labels`` is a new array; the input is left as it is).

    Raises:
        ValueError: a bad argument, named.

    Example:
        >>> noisy = corrupt_labels(np.arange(10) % 5, 0.3, num_classes=5, kind="pairs")
        >>> int(noisy.corrupted.sum()), noisy.fraction
        (3, 0.3)
        >>> bool(((noisy.true_labels + 1) % 5 == noisy.labels)[noisy.corrupted].all())
        True
    """
    true = np.asarray(labels)
    if true.ndim != 1 or not np.issubdtype(true.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {true.dtype} of shape "
                         f"{true.shape}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if len(true) and (true.min() < 0 or true.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from "
                         f"{true.min()} to {true.max()}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 <= fraction < 1:
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    if kind not in LABEL_NOISE_KINDS:
        raise ValueError(f"kind must be one of {', '.join(LABEL_NOISE_KINDS)}, got {kind!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    true = true.astype(np.int64)
    rng = np.random.default_rng(seed)
    count = int(round(fraction * len(true)))
    chosen = np.sort(rng.choice(len(true), size=count, replace=False))
    noisy = true.copy()
    if kind == "pairs":
        noisy[chosen] = (true[chosen] + 1) % num_classes
    else:  # uniform over the C - 1 other classes: shift by 1..C-1
        noisy[chosen] = (true[chosen] + rng.integers(1, num_classes, size=count)) % num_classes
    return NoisyLabels(noisy, true, noisy != true)


def apply_label_noise(split: DataSplit, fraction: float, *, kind: str = "symmetric",
                      seed: int = 0) -> tuple[DataSplit, NoisyLabels]:
    """``split`` with ``fraction`` of its *training* labels corrupted (:func:`corrupt_labels`);
    the test labels are left as they are.

    Returns:
        The new :class:`~satkit.data.DataSplit` (its ``train_y`` on the same device) and the
        :class:`NoisyLabels` record of what changed (fraction 0: nothing did).
    """
    import torch

    noisy = corrupt_labels(split.train_y.cpu().numpy(), fraction, num_classes=split.num_classes,
                           kind=kind, seed=seed)
    if not noisy.corrupted.any():
        return split, noisy
    train_y = torch.from_numpy(noisy.labels).to(split.train_y.device)
    return dataclasses.replace(split, train_y=train_y), noisy
