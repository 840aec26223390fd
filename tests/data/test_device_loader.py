"""DeviceLoader: epochs are permutations fixed by (seed, epoch), resumable mid-epoch, sharded."""

import pytest
import torch

from satkit.data import DeviceLoader, cifar_augment


def data(n=23):
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 4, 4).clone()
    return x, torch.arange(n) % 5


def epoch(loader, start=0):
    return [tuple(t.clone() for t in batch) for batch in loader.iter_from(start)]


def test_an_epoch_is_a_permutation_and_batches_match_their_indices():
    x, y = data()
    loader = DeviceLoader(x, y, batch_size=5, seed=0)
    batches = epoch(loader)
    assert len(loader) == len(batches) == 5
    assert [len(b[2]) for b in batches] == [5, 5, 5, 5, 3]
    idx = torch.cat([b[2] for b in batches])
    assert idx.dtype == torch.int64 and sorted(idx.tolist()) == list(range(23))
    assert idx.tolist() != list(range(23))  # shuffled
    for xb, yb, ib in batches:
        assert torch.equal(xb, x[ib]) and torch.equal(yb, y[ib])


def test_order_depends_only_on_seed_and_epoch():
    x, y = data()
    a, b = DeviceLoader(x, y, batch_size=4, seed=7), DeviceLoader(x, y, batch_size=4, seed=7)
    first, second = epoch(a), epoch(a)  # iteration advances the epoch, like a DataLoader
    assert a.epoch == 2 and not torch.equal(first[0][2], second[0][2])
    b.set_epoch(1)
    assert all(torch.equal(p[2], q[2]) for p, q in zip(epoch(b), second, strict=True))
    assert torch.equal(a.indices(0), DeviceLoader(x, y, batch_size=9, seed=7).indices(0))
    assert not torch.equal(a.indices(0), DeviceLoader(x, y, batch_size=4, seed=8).indices(0))


def test_resume_mid_epoch_reproduces_the_remaining_batches_with_augmentation():
    x = torch.randn(40, 3, 32, 32)
    y = torch.arange(40) % 10
    full = DeviceLoader(x, y, batch_size=8, seed=3, augment=cifar_augment)
    full.set_epoch(2)
    reference = epoch(full)
    resumed = DeviceLoader(x, y, batch_size=8, seed=3, augment=cifar_augment)
    resumed.set_epoch(2)
    tail = epoch(resumed, start=3)
    assert len(tail) == 2
    for got, want in zip(tail, reference[3:], strict=True):
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert not torch.equal(reference[0][0], x[reference[0][2]])  # augmentation did run
    with pytest.raises(ValueError, match="start_batch"):
        resumed.iter_from(6)


def test_ranks_take_disjoint_equal_shards_like_distributed_sampler():
    x, y = data(23)
    shards = [DeviceLoader(x, y, batch_size=4, seed=1, rank=r, world_size=3) for r in range(3)]
    idx = [torch.cat([b[2] for b in epoch(s)]) for s in shards]
    assert [len(i) for i in idx] == [8, 8, 8] and all(len(s) == 2 for s in shards)
    every = torch.cat(idx)
    assert set(every.tolist()) == set(range(23))  # all covered; one index padded by wrap-around
    permutation = DeviceLoader(x, y, batch_size=4, seed=1).indices(0)
    assert torch.equal(torch.stack(idx, 1).flatten()[:23], permutation)


def test_no_shuffle_and_drop_last():
    x, y = data(10)
    loader = DeviceLoader(x, y, batch_size=4, shuffle=False, drop_last=True)
    batches = epoch(loader)
    assert len(loader) == 2 and [b[2].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2, "rank": 2, "world_size": 2}, "rank"),
    ({"batch_size": 2, "seed": -1}, "seed"), ({"batch_size": 2, "augment": 3}, "augment"),
])
def test_bad_arguments(kwargs, match):
    x, y = data(4)
    with pytest.raises(ValueError, match=match):
        DeviceLoader(x, y, **kwargs)
    with pytest.raises(ValueError, match="same, non-zero number"):
        DeviceLoader(x, y[:3], batch_size=2)
