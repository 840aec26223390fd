"""Batched crop + flip against a per-sample reference that replays the same draws."""

import pytest
import torch
import torch.nn.functional as F

from satkit.data import cifar_augment, random_crop_flip


def reference(x, seed, pad=4):
    """Per-sample loop: the same draws, in the same order, as random_crop_flip."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=g)
    mirror = torch.rand(n, 1, generator=g) < 0.5
    out = []
    for i in range(n):
        crop = F.pad(x[i], (pad,) * 4)[:, dy[i, 0] : dy[i, 0] + h, dx[i, 0] : dx[i, 0] + w]
        out.append(crop.flip(-1) if mirror[i, 0] else crop)
    return torch.stack(out)


def test_matches_the_per_sample_reference():
    x = torch.randn(64, 3, 32, 32)
    got = cifar_augment(x, torch.Generator().manual_seed(5))
    assert got.shape == x.shape and got.dtype == x.dtype and got.is_contiguous()
    assert torch.equal(got, reference(x, 5))


def test_no_padding_no_flip_is_identity_and_flip_only_flips():
    x = torch.randn(16, 2, 5, 7)
    assert torch.equal(random_crop_flip(x, pad=0, flip=False), x)
    flipped = random_crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 16


def test_offsets_cover_the_padded_range():
    x = torch.ones(500, 1, 8, 8)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), flip=False)
    zero_rows = (out[:, 0].sum(2) == 0).sum(1)  # rows shifted in from the zero padding
    assert set(zero_rows.tolist()) == set(range(5))  # |dy - 4| in 0..4


def test_channels_last_input_stays_channels_last():
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    out = cifar_augment(x, torch.Generator().manual_seed(2))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, reference(x.contiguous(), 2))


def test_rejects_non_image_batches():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        cifar_augment(torch.randn(3, 32, 32))
