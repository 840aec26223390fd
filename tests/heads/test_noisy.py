"""NoisySoftmax head: drop-in last layer, train/eval switch, draws, bad input."""

import pytest
import torch
import torch.nn.functional as F

from satkit import NoisySoftmax
from satkit.functional import noisy_logits


def _batch(n=16, d=8, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


def test_eval_mode_and_alpha2_zero_equal_plain_linear_bit_for_bit():
    h, y = _batch()
    torch.manual_seed(0)
    head = NoisySoftmax(8, 5, alpha2=0.5)
    plain = F.linear(h, head.weight)
    head.eval()
    assert torch.equal(head(h, y), plain)
    head.train()
    assert not torch.equal(head(h, y), plain)
    assert torch.equal(head(h), plain)  # no target: no noise
    base = NoisySoftmax(8, 5, alpha2=0)
    assert torch.equal(base(h, y), F.linear(h, base.weight))
    assert torch.equal(base.last_noise, torch.zeros(16))


def test_drop_in_loss_equals_functional_with_same_draws():
    h, y = _batch()
    head = NoisySoftmax(8, 5, alpha2=0.1, generator=torch.Generator().manual_seed(3))
    loss = F.cross_entropy(head(h, y), y)
    xi = torch.randn(16, generator=torch.Generator().manual_seed(3))
    ref, eps = noisy_logits(h, head.weight, y, alpha2=0.1, xi=xi)
    assert torch.allclose(loss, F.cross_entropy(ref, y))
    assert torch.allclose(head.last_noise, eps)
    assert not head.last_noise.requires_grad
    assert torch.equal(head.last_target, y)


def test_per_batch_draw_shares_one_xi():
    h, y = _batch(n=64)
    head = NoisySoftmax(8, 5, alpha2=1.0, noise="free", xi_per="batch")
    head(h, y)
    assert head.last_noise.unique().numel() == 1
    head = NoisySoftmax(8, 5, alpha2=1.0, noise="free", xi_per="sample")
    head(h, y)
    assert head.last_noise.unique().numel() == 64


def test_seeding_is_reproducible():
    h, y = _batch()
    out = []
    for _ in range(2):
        torch.manual_seed(42)
        head = NoisySoftmax(8, 5, alpha2=0.1)
        out.append(head(h, y))
    assert torch.equal(out[0], out[1])


def test_gradients_flow_to_weight_and_features():
    h, y = _batch()
    h.requires_grad_(True)
    head = NoisySoftmax(8, 5, alpha2=0.1, bias=True)
    F.cross_entropy(head(h, y), y).backward()
    assert h.grad is not None and head.weight.grad is not None and head.bias.grad is not None


def test_autocast_gives_float32_logits():
    h, y = _batch()
    head = NoisySoftmax(8, 5, alpha2=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(h.bfloat16(), y)
    assert logits.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha2": -1.0}, "alpha2"),
        ({"noise": "uniform"}, "noise must be one of"),
        ({"xi_per": "epoch"}, "xi_per"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_features": 0}, "in_features"),
    ],
)
def test_bad_settings(kwargs, match):
    args = {"in_features": 8, "num_classes": 5, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        NoisySoftmax(args.pop("in_features"), args.pop("num_classes"), **args)


@pytest.mark.parametrize("training", [True, False])
def test_bad_forward_inputs(training):
    head = NoisySoftmax(8, 5).train(training)
    h, y = _batch()
    with pytest.raises(ValueError, match="in_features"):
        head(torch.randn(16, 7), y)
    with pytest.raises(ValueError, match="target values"):
        head(h, torch.full((16,), 5))
    with pytest.raises(TypeError, match="int64"):
        head(h, y.int())
    with pytest.raises(ValueError, match="shape"):
        head(h, y[:3])
    with pytest.raises(ValueError, match="NaN or Inf"):
        head(torch.full((16, 8), float("inf")), y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_from_inputs_and_no_sync_after_first_step():
    h, y = (t.cuda() for t in _batch())
    head = NoisySoftmax(8, 5, alpha2=0.1).cuda()
    F.cross_entropy(head(h, y), y).backward()  # first forward checks values once
    torch.cuda.set_sync_debug_mode("error")
    try:
        F.cross_entropy(head(h, y), y).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert head.last_noise.device.type == "cuda"


def test_torch_compile_smoke():
    pytest.importorskip("torch._dynamo")
    h, y = _batch()
    head = NoisySoftmax(8, 5, alpha2=0.1)
    compiled = torch.compile(head, backend="eager")
    loss = F.cross_entropy(compiled(h, y), y)
    loss.backward()
    assert head.last_noise.shape == (16,)


def test_clean_logits_undoes_the_noise_and_equals_eval_output():
    h, y = _batch()
    head = NoisySoftmax(8, 5, alpha2=0.5)
    noisy = head(h, y)
    clean = head.clean_logits(noisy, y)
    assert torch.allclose(clean, head.eval()(h), rtol=1e-6, atol=1e-6)
    assert torch.equal(head.clean_logits(head(h, y), y), head(h))  # eval: zero noise, exact
