"""Presets and Classifier: shapes, heads with and without a target, channels_last, training."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import satkit.models.classifier
import satkit.models.presets
from satkit import NoisySoftmax
from satkit.data import DeviceLoader, load_dataset
from satkit.models import PRESETS, Classifier, build_model, default_preset

SHAPES = {"digits-cnn": (1, 8, 10), "mnist-paper": (1, 28, 10), "cifar10-paper": (3, 32, 10),
          "cifar100-paper": (3, 32, 100)}


@pytest.mark.parametrize("preset", sorted(SHAPES))
def test_preset_shapes_in_train_and_eval(preset):
    channels, size, classes = SHAPES[preset]
    torch.manual_seed(0)
    model = build_model(preset, num_classes=classes, in_channels=channels)
    assert isinstance(model.head, NoisySoftmax) and model.head.alpha2 == 0.1
    x, y = torch.randn(3, channels, size, size), torch.tensor([0, 1, 2])
    logits = model(x, y)
    assert logits.shape == (3, classes) and logits.dtype == torch.float32
    assert model.features(x).shape == (3, PRESETS[preset].feature_dim)
    F.cross_entropy(logits, y).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert model(x).shape == (3, classes)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # PAPER.md section 7


def test_default_presets_and_bad_names():
    assert [default_preset(d) for d in ("digits", "mnist", "cifar10", "cifar100")] == [
        "digits-cnn", "mnist-paper", "cifar10-paper", "cifar100-paper"]
    with pytest.raises(ValueError, match="valid: digits-cnn, mnist-paper, cifar10-paper"):
        build_model("resnet18", num_classes=10, in_channels=3)
    with pytest.raises(ValueError, match="known datasets: digits, mnist"):
        default_preset("svhn")
    with pytest.raises(ValueError, match="too small"):
        build_model("mnist-paper", num_classes=10, in_channels=1, image_size=4)
    assert "stand-in" in satkit.models.presets.__doc__ and "PAPER.md section 6" in (
        satkit.models.presets.__doc__)


def test_image_size_override_and_head_settings():
    model = build_model("mnist-paper", num_classes=10, in_channels=1, image_size=32, alpha2=0.5,
                        noise="free", xi_per="batch")
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert (model.head.alpha2, model.head.noise, model.head.xi_per) == (0.5, "free", "batch")


def test_linear_head_gets_no_target_and_noisy_head_does():
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    linear = build_model("digits-cnn", num_classes=10, in_channels=1, head=nn.Linear)
    assert isinstance(linear.head, nn.Linear) and not linear.head_takes_target
    assert linear(x, y).shape == (4, 10)  # the target is dropped, not passed to Linear
    given = nn.Linear(128, 10, bias=False)
    assert build_model("digits-cnn", num_classes=10, in_channels=1, head=given).head is given
    torch.manual_seed(0)
    model = build_model("digits-cnn", num_classes=10, in_channels=1, alpha2=1.0)
    assert model.head_takes_target
    model(x, y)
    assert torch.equal(model.head.last_target, y) and bool((model.head.last_noise > 0).any())


def test_alpha2_zero_is_plain_softmax_through_the_same_model():
    torch.manual_seed(0)
    model = build_model("digits-cnn", num_classes=10, in_channels=1,
                        head=lambda d, c: NoisySoftmax(d, c, alpha2=0))
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    features = model.features(x)
    assert torch.allclose(model(x, y), F.linear(features, model.head.weight), atol=1e-6)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("cifar10-paper", num_classes=10, in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4)


def test_classifier_accepts_any_features_and_head():
    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = None

        def forward(self, features, target=None):
            self.seen = target
            return features[:, :2]

    head = Recording()
    model = Classifier(nn.Flatten(), head)
    y = torch.tensor([0, 1])
    assert model(torch.randn(2, 1, 2, 2), y).shape == (2, 2) and head.seen is y


@pytest.mark.parametrize("alpha2", [0.0, 0.1])
def test_digits_cnn_trains_to_under_ten_percent_error_in_seconds(alpha2):
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("digits-cnn", num_classes=10, in_channels=1, alpha2=alpha2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DeviceLoader(data.train_x, data.train_y, batch_size=64, seed=0)
    start = time.perf_counter()
    for _ in range(3):
        model.train()
        for x, y, _ in loader:
            opt.zero_grad()
            F.cross_entropy(model(x, y), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        error = (model(data.test_x).argmax(1) != data.test_y).float().mean().item()
    seconds = time.perf_counter() - start
    assert error < 0.10, f"test error {error:.1%} after 3 epochs ({seconds:.1f} s)"
