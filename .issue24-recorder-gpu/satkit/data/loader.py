"""``DeviceLoader``: mini-batches drawn by index from tensors already on the training device.

airbench-style: the data set lives on the device, an epoch is one permutation of indices, and a
batch is an ``index_select`` (plus an optional batched augmentation), so no per-batch host
work, worker process or host-device copy is needed. It quacks like a ``DataLoader``
(``len``, iteration, ``set_epoch`` like ``DistributedSampler``) and yields
``(x, y, index)`` so a recorder can attribute per-sample statistics to dataset indices.

Determinism: the order of epoch ``e`` depends only on ``(seed, e)``, and the augmentation draws
of batch ``b`` only on ``(seed, e, b, rank)``, so a run resumed mid-epoch with
``iter_from(b)`` sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from satkit.validation import check_int

__all__ = ["Augment", "DeviceLoader", "derive_seed"]

#: A batched augmentation: ``augment(x, generator) -> x'`` on ``x``'s device.
Augment = Callable[[Tensor, "torch.Generator | None"], Tensor]


def derive_seed(*keys: int) -> int:
    """Mix non-negative integers into one well-spread 63-bit seed (numpy ``SeedSequence``)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class DeviceLoader:
    """Iterate over ``(x[idx], y[idx], idx)`` batches of device-resident tensors.

    Each rank of a ``world_size`` group takes a disjoint, equal-sized shard of the epoch's
    permutation (padded by wrapping around when ``len(x)`` is not divisible, like
    ``DistributedSampler``). Iterating starts the loader's current epoch and then advances it
    by one, so repeated iteration reshuffles like a ``DataLoader``; ``set_epoch(e)`` sets the
    epoch of the next iteration explicitly.

    Args:
        x: inputs, first dimension N.
        y: targets (N,), on the same device as ``x``.
        batch_size: samples per batch (per rank).
        shuffle: a fresh permutation per epoch; if False the order is ``0..N-1``.
        drop_last: drop the last batch of an epoch if it is smaller than ``batch_size``.
        seed: seed of the permutations and augmentation draws (>= 0).
        augment: optional batched augmentation applied to each ``x`` batch, called as
            ``augment(x_batch, generator)`` with a generator on ``x``'s device.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of data-parallel processes.

    Shape:
        yields x_batch (B, ...) like ``x``, y_batch (B,), index_batch (B,) int64, all on
        ``x.device``; B = ``batch_size`` except perhaps for the last batch.

    Raises:
        ValueError: mismatched or empty tensors, a bad batch size, seed, rank or world size.

    Example:
        >>> loader = DeviceLoader(torch.randn(10, 3), torch.arange(10), batch_size=4, seed=0)
        >>> len(loader), [tuple(b[0].shape) for b in loader]
        (3, [(4, 3), (4, 3), (2, 3)])
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"x and y must hold the same, non-zero number of samples; got "
                             f"{x.shape[0]} and {y.shape[0]}")
        if x.device != y.device:
            raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
        for name, value, low in (("batch_size", batch_size, 1), ("world_size", world_size, 1),
                                 ("seed", seed, 0), ("rank", rank, 0)):
            check_int(name, value, minimum=low)
        if rank >= world_size:
            raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
        if augment is not None and not callable(augment):
            raise ValueError(f"augment must be callable or None, got {augment!r}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.augment = seed, augment
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._aug_generator: torch.Generator | None = None

    @property
    def device(self) -> torch.device:
        """The device batches are on (that of ``x``)."""
        return self.x.device

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (before ``drop_last``)."""
        return -(-self.x.shape[0] // self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order depends only on seed and epoch)."""
        check_int("epoch", epoch, minimum=0)
        self.epoch = epoch

    def indices(self, epoch: int) -> Tensor:
        """This rank's sample indices for ``epoch``, in order, int64 on the loader's device.

        The permutation is drawn on the CPU (so it is the same on every device) and copied to
        the device once per epoch.
        """
        n = self.x.shape[0]
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:  # pad by wrapping around so every rank gets the same number of samples
            order = torch.cat([order, order[: total - n]])
        return order[self.rank : total : self.world_size].to(self.device)

    def iter_from(self, start_batch: int = 0) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Iterate over the current epoch from batch ``start_batch`` on, then advance the epoch.

        Args:
            start_batch: batches of this epoch to skip (already consumed before a resume).

        Raises:
            ValueError: ``start_batch`` not in ``[0, len(self)]``.
        """
        check_int("start_batch", start_batch, minimum=0, maximum=len(self))
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch, start_batch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        return self.iter_from(0)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        order = self.indices(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]  # a view: no sync
            xb = self.x.index_select(0, idx)
            if self.augment is not None:
                xb = self.augment(xb, self._generator(epoch, b))
            yield xb, self.y.index_select(0, idx), idx

    def _generator(self, epoch: int, batch: int) -> torch.Generator:
        # Re-seeded per batch (host-side, no sync) so a resumed epoch reproduces its draws.
        if self._aug_generator is None:
            self._aug_generator = torch.Generator(device=self.device)
        return self._aug_generator.manual_seed(derive_seed(self.seed, epoch, batch, self.rank, 1))
