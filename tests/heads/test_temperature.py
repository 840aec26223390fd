"""TemperatureSoftmax against a float64 reference, gradcheck, T = 1 and the head contract."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satkit.heads import TemperatureSoftmax
from satkit.heads.temperature import temperature_logits


def _batch(n=6, d=4, c=5, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    return x, torch.randint(0, c, (n,), generator=g)


def ref_logits(x, w, b, t):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out = np.empty((x.shape[0], w.shape[0]))
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            out[i, j] = (x[i] @ w[j] + (0.0 if b is None else float(b[j]))) / t
    return out


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("t", [0.5, 2.0, 3.0])
def test_training_logits_match_reference(t, bias):
    head = TemperatureSoftmax(4, 5, temperature=t, bias=bias)
    x, y = _batch()
    b = None if head.bias is None else head.bias.detach()
    assert np.allclose(head(x, y).detach().numpy(), ref_logits(x, head.weight.detach(), b, t),
                       rtol=1e-6, atol=1e-6)


def test_gradcheck_float64():
    x, y = _batch(dtype=torch.float64)
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: temperature_logits(x, w, temperature=3.0), (x, w))
    assert torch.autograd.gradcheck(
        lambda x, w: F.cross_entropy(temperature_logits(x, w, temperature=0.7), y), (x, w))


def test_temperature_one_is_the_plain_linear_head_bit_for_bit():
    head = TemperatureSoftmax(4, 5, temperature=1.0)
    x, y = _batch()
    assert torch.equal(head(x, y), F.linear(x, head.weight))
    assert torch.equal(head.last_noise, torch.zeros(6))


def test_eval_no_target_clean_logits_and_last_noise():
    head = TemperatureSoftmax(4, 5, temperature=3.0)
    x, y = _batch()
    plain = F.linear(x, head.weight)
    train = head(x, y)
    f_y = plain.gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(head.last_noise, f_y * (1 - 1 / 3.0), atol=1e-6)
    assert not head.last_noise.requires_grad and torch.equal(head.last_target, y)
    assert bool((head.last_noise < 0).any()) and bool((head.last_noise > 0).any())  # signed
    clean = head.clean_logits(train, y)
    assert torch.equal(head(x), plain)  # training without target: clean
    assert torch.equal(head.clean_logits(plain, y), plain)
    head.eval()
    assert torch.equal(head(x, y), plain)
    assert torch.allclose(clean, plain, rtol=1e-6, atol=1e-6)
    assert torch.equal(head.last_noise, torch.zeros(6))


def test_power_of_two_temperature_round_trips_exactly():
    head = TemperatureSoftmax(4, 5, temperature=4.0)
    x, y = _batch()
    assert torch.equal(head.clean_logits(head(x, y), y), head.eval()(x))


def test_gradients_and_autocast():
    head = TemperatureSoftmax(4, 5, bias=True)
    x, y = _batch()
    F.cross_entropy(head(x, y), y).backward()
    assert head.weight.grad is not None and head.bias.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(x.bfloat16(), y).dtype == torch.float32


@pytest.mark.parametrize("t", [0.0, -1.0, float("inf"), float("nan"), True, "2"])
def test_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature"):
        TemperatureSoftmax(4, 5, temperature=t)
    with pytest.raises(ValueError, match="temperature"):
        temperature_logits(torch.randn(2, 4), torch.randn(5, 4), temperature=t)


def test_bad_inputs():
    head = TemperatureSoftmax(4, 5)
    x, y = _batch()
    with pytest.raises(ValueError, match="in_features"):
        head(torch.randn(6, 3), y)
    with pytest.raises(ValueError, match="target values"):
        head(x, torch.full((6,), 7))
    with pytest.raises(ValueError, match="NaN or Inf"):
        head(torch.full((6, 4), float("inf")), y)
    with pytest.raises(ValueError, match="num_classes"):
        TemperatureSoftmax(4, 1)
