"""GridFlatten against plain pooling; the extractors at their design size."""

import pytest
import torch
import torch.nn.functional as F

from satkit.models.convnets import GridFlatten, digits_cnn_features, vgg_like_features


def test_grid_flatten_is_the_identity_at_the_grid_size():
    x = torch.randn(2, 3, 7, 7)
    assert torch.equal(GridFlatten(7)(x), x.flatten(1))


def test_grid_flatten_average_pools_larger_maps_and_spreads_smaller_ones():
    x = torch.randn(2, 3, 14, 14)
    assert torch.allclose(GridFlatten(7)(x), F.avg_pool2d(x, 2).flatten(1))
    one = torch.randn(2, 3, 1, 1)
    assert torch.equal(GridFlatten(3)(one), one.expand(2, 3, 3, 3).flatten(1))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(GridFlatten(7)(channels_last), GridFlatten(7)(x))


def test_grid_flatten_rejects_a_bad_grid():
    with pytest.raises(ValueError, match="grid must be an integer >= 1, got 0"):
        GridFlatten(0)


def test_vgg_like_features_match_the_flattened_network_at_the_design_size():
    torch.manual_seed(0)
    net = vgg_like_features(1, stem=8, stages=[(8, 1), (16, 2)], grid=2, feature_dim=5).eval()
    x = torch.randn(4, 1, 8, 8)
    conv_part, fc = net[:-1], net[-1]
    flat = conv_part(x).flatten(1)
    assert flat.shape == (4, 16 * 2 * 2)
    assert torch.equal(net(x), fc[1:](flat))


def test_digits_cnn_features_shapes():
    net = digits_cnn_features(3, grid=4, feature_dim=16)
    assert net(torch.randn(2, 3, 8, 8)).shape == net(torch.randn(2, 3, 32, 32)).shape == (2, 16)
