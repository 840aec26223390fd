"""CosFace and ArcFace heads against float64 reference formulas, gradcheck and limiting cases."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satkit.heads import ArcFace, CosFace
from satkit.heads.margin import arcface_logits, cosface_logits, cosine_logits


def _batch(n=6, d=4, c=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(c, d, generator=g, dtype=dtype)
    return x, w, torch.randint(0, c, (n,), generator=g)


def _ref_cos(x, w):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    cos = np.empty((x.shape[0], w.shape[0]))
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            cos[i, j] = x[i] @ w[j] / (np.linalg.norm(x[i]) * np.linalg.norm(w[j]))
    return cos


def ref_cosface(x, w, y, s, m):
    logits = s * _ref_cos(x, w)
    for i, yi in enumerate(np.asarray(y)):
        logits[i, yi] -= s * m
    return logits


def ref_arcface(x, w, y, s, m, easy_margin=False):
    cos = _ref_cos(x, w)
    logits = s * cos
    for i, yi in enumerate(np.asarray(y)):
        c = min(max(cos[i, yi], -1.0), 1.0)
        theta = math.acos(c)
        if easy_margin:
            logits[i, yi] = s * math.cos(theta + m) if c > 0 else s * c
        elif theta + m < math.pi:
            logits[i, yi] = s * math.cos(theta + m)
        else:  # insightface fallback past theta + m = pi
            logits[i, yi] = s * (c - m * math.sin(m))
    return logits


def test_cosine_logits_matches_reference():
    x, w, _ = _batch()
    assert np.allclose(cosine_logits(x, w).numpy(), _ref_cos(x, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("s", "m"), [(30.0, 0.35), (4.0, 0.1), (1.0, 1.0)])
def test_cosface_matches_reference(s, m):
    x, w, y = _batch()
    logits, noise = cosface_logits(x, w, y, s=s, m=m)
    assert np.allclose(logits.numpy(), ref_cosface(x, w, y, s, m), rtol=0, atol=1e-11)
    assert torch.allclose(noise, torch.full((6,), s * m, dtype=torch.float64))


@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize(("s", "m"), [(30.0, 0.5), (4.0, 0.2), (2.0, math.pi / 2)])
def test_arcface_matches_reference(s, m, easy_margin):
    x, w, y = _batch(n=32, d=3)  # small D: all angles occur, including theta + m > pi
    logits, noise = arcface_logits(x, w, y, s=s, m=m, easy_margin=easy_margin)
    ref = ref_arcface(x, w, y, s, m, easy_margin)
    assert np.allclose(logits.numpy(), ref, rtol=0, atol=1e-9)
    clean = s * _ref_cos(x, w)[np.arange(32), y.numpy()]
    assert np.allclose(noise.numpy(), clean - ref[np.arange(32), y.numpy()], atol=1e-9)
    assert bool((noise >= -1e-12).all())


def test_arcface_fallback_branch_and_easy_margin_explicitly():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[-1.0, 0.0], [-1.0, 0.05]], dtype=torch.float64)  # theta_0 ~ pi
    y = torch.tensor([0, 0])
    s, m = 10.0, 0.5
    logits, _ = arcface_logits(x, w, y, s=s, m=m)
    cos0 = _ref_cos(x, w)[:, 0]
    assert np.allclose(logits[:, 0].numpy(), s * (cos0 - m * math.sin(m)))
    easy, noise = arcface_logits(x, w, y, s=s, m=m, easy_margin=True)
    assert np.allclose(easy[:, 0].numpy(), s * cos0) and torch.equal(noise, torch.zeros(2).double())


def test_arcface_target_logit_never_increases_with_theta_and_easy_margin_jumps_up():
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    x = torch.stack([theta.cos(), theta.sin()], dim=1)
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.zeros(2001, dtype=torch.int64)
    step = arcface_logits(x, w, y, s=1.0, m=0.5)[0][:, 0].diff()
    assert bool((step <= 1e-12).all())
    easy = arcface_logits(x, w, y, s=1.0, m=0.5, easy_margin=True)[0][:, 0].diff()
    assert float(easy.max()) == pytest.approx(math.sin(0.5), abs=0.01)  # the jump at pi/2
    assert int((easy > 0).sum()) == 1


def test_margin_zero_is_the_scaled_cosine_softmax():
    x, w, y = _batch()
    cos = cosine_logits(x, w)
    assert torch.equal(cosface_logits(x, w, y, s=7.0, m=0.0)[0], 7.0 * cos)
    assert torch.allclose(arcface_logits(x, w, y, s=7.0, m=0.0)[0], 7.0 * cos, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", ["cosface", "arcface", "arcface-easy"])
def test_gradcheck_wrt_features_and_weight(fn):
    x, w, y = _batch(n=4, d=3, c=5, seed=1)
    x.requires_grad_(True)
    w.requires_grad_(True)

    def f(x, w):
        if fn == "cosface":
            return cosface_logits(x, w, y, s=3.0, m=0.35)[0]
        return arcface_logits(x, w, y, s=3.0, m=0.5, easy_margin=fn == "arcface-easy")[0]

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradcheck(lambda x, w: F.cross_entropy(f(x, w), y), (x, w))


def test_arcface_gradient_is_finite_at_theta_zero():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    x = torch.tensor([[2.0, 0.0, 0.0]], requires_grad=True)  # exactly on W_0: theta = 0
    logits, _ = arcface_logits(x, w, torch.tensor([0]), s=30.0, m=0.5)
    F.cross_entropy(logits, torch.tensor([0])).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()
    assert math.isclose(float(logits[0, 0].detach()), 30.0 * math.cos(0.5), rel_tol=1e-3)


@pytest.mark.parametrize("cls", [CosFace, ArcFace])
def test_head_train_eval_clean_logits_and_last_noise(cls):
    torch.manual_seed(0)
    head = cls(4, 5, s=8.0)
    x, _, y = _batch(dtype=torch.float32)
    train = head(x, y)
    noise = head.last_noise
    assert noise.shape == (6,) and not noise.requires_grad and bool((noise > 0).all())
    assert torch.equal(head.last_target, y)
    ref_fn = ref_cosface if cls is CosFace else ref_arcface
    ref = ref_fn(x, head.weight.detach(), y, 8.0, head.m)
    assert np.allclose(train.detach().numpy(), ref, atol=1e-5)
    clean = head.clean_logits(train, y)
    assert torch.equal(head(x), 8.0 * cosine_logits(x, head.weight))  # no target: clean
    assert torch.equal(head.last_noise, torch.zeros(6))
    head.eval()
    eval_logits = head(x, y)
    assert torch.allclose(clean, eval_logits, rtol=0, atol=1e-5)
    assert torch.equal(head.last_noise, torch.zeros(6))
    assert torch.equal(head.clean_logits(eval_logits, y), eval_logits)


@pytest.mark.parametrize("cls", [CosFace, ArcFace])
def test_head_gradients_autocast_and_zero_features(cls):
    head = cls(4, 5)
    x, _, y = _batch(dtype=torch.float32)
    x.requires_grad_(True)
    F.cross_entropy(head(x, y), y).backward()
    assert head.weight.grad is not None and x.grad is not None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(x.bfloat16(), y).dtype == torch.float32
    assert torch.isfinite(head(torch.zeros(6, 4), y)).all()


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (CosFace, {"s": 0.0}, "s "),
        (CosFace, {"s": float("nan")}, "s must"),
        (CosFace, {"m": -0.1}, "m "),
        (CosFace, {"m": 1.5}, "m "),
        (ArcFace, {"m": 2.0}, "m "),
        (ArcFace, {"s": -1.0}, "s "),
        (ArcFace, {"easy_margin": 1}, "easy_margin"),
        (CosFace, {"num_classes": 1}, "num_classes"),
        (ArcFace, {"in_features": 0}, "in_features"),
    ],
)
def test_bad_settings(cls, kwargs, match):
    args = {"in_features": 4, "num_classes": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(args.pop("in_features"), args.pop("num_classes"), **args)


@pytest.mark.parametrize("cls", [CosFace, ArcFace])
def test_bad_forward_inputs(cls):
    head = cls(4, 5)
    x, _, y = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match="in_features"):
        head(torch.randn(6, 3), y)
    with pytest.raises(ValueError, match="target values"):
        head(x, torch.full((6,), 5))
    with pytest.raises(TypeError, match="int64"):
        head(x, y.int())
    with pytest.raises(ValueError, match="NaN or Inf"):
        head(torch.full((6, 4), float("nan")), y)
    with pytest.raises(ValueError, match="m "):
        arcface_logits(x, head.weight, y, s=1.0, m=-1.0)
