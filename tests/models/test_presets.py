"""Every preset on every data set's shape; minimum sizes; BatchNorm after each layer."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import satkit.models
import satkit.models.presets
from satkit import NoisySoftmax
from satkit.models import PRESETS, build_model, default_preset

#: (in_channels, image_size, num_classes) of the four data sets.
DATA = {"digits": (1, 8, 10), "mnist": (1, 28, 10), "cifar10": (3, 32, 10),
        "cifar100": (3, 32, 100)}


@pytest.mark.parametrize("dataset", sorted(DATA))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_and_evaluates_on_every_dataset_shape(preset, dataset):
    channels, size, classes = DATA[dataset]
    torch.manual_seed(0)
    model = build_model(preset, num_classes=classes, in_channels=channels, image_size=size)
    x, y = torch.randn(3, channels, size, size), torch.tensor([0, 1, 2])
    logits = model(x, y)
    assert logits.shape == (3, classes) and logits.dtype == torch.float32
    assert model.features(x).shape == (3, PRESETS[preset].feature_dim)
    F.cross_entropy(logits, y).backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (3, classes) and bool(torch.isfinite(model(x)).all())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_count_does_not_depend_on_the_image_size(preset):
    counts = {sum(p.numel() for p in build_model(preset, num_classes=10, in_channels=1,
                                                 image_size=size).parameters())
              for size in (8, 28, 32)}
    assert len(counts) == 1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_minimum_image_size_works_and_one_less_names_preset_and_minimum(preset):
    spec = PRESETS[preset]
    model = build_model(preset, num_classes=10, in_channels=2, image_size=spec.min_image_size)
    assert spec.pools == sum(isinstance(m, nn.MaxPool2d) for m in model.modules())
    x = torch.randn(2, 2, spec.min_image_size, spec.min_image_size)
    assert model(x, torch.tensor([0, 1])).shape == (2, 10)
    if spec.min_image_size > 1:
        too_small = spec.min_image_size - 1
        message = (f"model preset '{preset}' needs image_size >= {spec.min_image_size} "
                   f".*got image_size={too_small}")
        with pytest.raises(ValueError, match=message):
            build_model(preset, num_classes=10, in_channels=2, image_size=too_small)


def test_minimum_sizes_fit_all_four_datasets():
    assert {name: p.min_image_size for name, p in PRESETS.items()} == {
        "digits-cnn": 2, "mnist-paper": 8, "cifar10-paper": 8, "cifar100-paper": 8,
        "small-cnn": 4}
    assert max(p.min_image_size for p in PRESETS.values()) <= min(s for _, s, _ in DATA.values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_conv_and_fc_layer_is_followed_by_batchnorm(preset):
    # Without normalisation Noisy Softmax collapses: it shrinks the feature norms to shrink
    # the noise (measured on MNIST); every preset normalises every layer.
    layers = [m for m in build_model(preset, num_classes=10, in_channels=1).features.modules()
              if not isinstance(m, nn.Sequential)]
    for i, layer in enumerate(layers):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            assert layer.bias is None
            assert isinstance(layers[i + 1], (nn.BatchNorm2d, nn.BatchNorm1d)), (preset, i)


def test_small_cnn_architecture():
    spec = PRESETS["small-cnn"]
    assert (spec.dataset, spec.image_size, spec.feature_dim, spec.pools) == (None, 28, 256, 2)
    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (3, 3)), (32, 64, (3, 3))]
    fc = [m for m in model.features.modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(64 * 7 * 7, 256)]
    assert isinstance(model.head, NoisySoftmax)


def test_default_presets_and_unknown_names():
    assert [default_preset(d) for d in ("digits", "mnist", "cifar10", "cifar100")] == [
        "digits-cnn", "mnist-paper", "cifar10-paper", "cifar100-paper"]
    with pytest.raises(ValueError, match="known datasets: digits, mnist, cifar10, cifar100$"):
        default_preset("svhn")
    with pytest.raises(ValueError, match="valid: digits-cnn, mnist-paper, cifar10-paper, "
                                         "cifar100-paper, small-cnn"):
        build_model("resnet18", num_classes=10, in_channels=3)


def test_docs_cite_the_sources_and_no_file_outside_the_repository():
    doc = satkit.models.presets.__doc__
    assert "stand-in" in doc and "arXiv 1708.03769" in doc and "L-Softmax (Liu et al. 2016)" in doc
    texts = [satkit.models.__doc__, doc, satkit.models.convnets.__doc__,
             *(p.description for p in PRESETS.values())]
    assert not any("PAPER.md" in t for t in texts)
