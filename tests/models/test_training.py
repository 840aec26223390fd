"""The presets learn: a few seconds of SGD on the embedded digits reach a low test error."""

import pytest
import torch
import torch.nn.functional as F

from satkit import NoisySoftmax
from satkit.data import DeviceLoader, load_dataset
from satkit.models import build_model


def _test_error(preset, alpha2, epochs, image_size=None):
    torch.manual_seed(0)
    data = load_dataset("digits")
    train_x, test_x = data.train_x, data.test_x
    if image_size is not None:  # the digits at MNIST's size
        train_x, test_x = (F.interpolate(x, size=image_size, mode="bilinear") for x in
                           (train_x, test_x))
    model = build_model(preset, num_classes=10, in_channels=1, image_size=train_x.shape[-1],
                        head=lambda d, c: NoisySoftmax(d, c, alpha2=alpha2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DeviceLoader(train_x, data.train_y, batch_size=64, seed=0)
    for _ in range(epochs):
        model.train()
        for x, y, _ in loader:
            opt.zero_grad()
            F.cross_entropy(model(x, y), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(test_x).argmax(1) != data.test_y).float().mean().item()


@pytest.mark.parametrize("alpha2", [0.0, 0.1])
def test_digits_cnn_trains_to_under_ten_percent_error_in_seconds(alpha2):
    error = _test_error("digits-cnn", alpha2, epochs=3)
    assert error < 0.10, f"test error {error:.1%} after 3 epochs"


def test_small_cnn_learns_digits_at_mnist_size():
    error = _test_error("small-cnn", 0.1, epochs=3, image_size=28)
    assert error < 0.10, f"test error {error:.1%} after 3 epochs"
