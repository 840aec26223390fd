"""Shared fixtures of the recorder tests: a tiny network with a Noisy Softmax head, a batch."""

import pytest
from recorder_models import TinyNet, make_data, make_net
from torch import Tensor


@pytest.fixture
def net() -> TinyNet:
    return make_net()


@pytest.fixture
def data() -> tuple[Tensor, Tensor]:
    return make_data()
