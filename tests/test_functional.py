"""satkit.functional against an independent float64 computation of Eq. 5 and its gradient
(docs/concept.md, "The gradient")."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satkit.functional import NOISE_FAMILIES, noisy_logits, target_probability


def _data(n=6, c=5, d=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(c, d, generator=g, dtype=dtype)
    y = torch.randint(0, c, (n,), generator=g)
    xi = torch.randn(n, generator=g, dtype=dtype)
    return x, w, y, xi


def _reference(x, w, y, xi, alpha2, noise):
    """Eq. 5 and the ablations (docs/concept.md, "The ablation families"), written with numpy
    loops and explicit cos."""
    x, w, xi = (t.detach().numpy().astype(np.float64) for t in (x, w, xi))
    logits = x @ w.T
    out = logits.copy()
    eps = np.zeros(len(y))
    a = math.sqrt(alpha2)
    for i, yi in enumerate(y.tolist()):
        nw, nx = np.linalg.norm(w[yi]), np.linalg.norm(x[i])
        cos = w[yi] @ x[i] / (nw * nx)
        e = {
            "annealed": a * nw * nx * (1 - cos) * abs(xi[i]),
            "amplitude": a * nw * nx * abs(xi[i]),
            "free": a * abs(xi[i]),
            "negative": -a * nw * nx * (1 - cos) * abs(xi[i]),
        }[noise]
        eps[i] = e
        out[i, yi] = logits[i, yi] - e
    return out, eps


@pytest.mark.parametrize("noise", NOISE_FAMILIES)
@pytest.mark.parametrize("alpha2", [0.05, 0.1, 1.0])
def test_noisy_logits_match_float64_reference(noise, alpha2):
    x, w, y, xi = _data()
    logits, eps = noisy_logits(x, w, y, alpha2=alpha2, xi=xi, noise=noise)
    ref, ref_eps = _reference(x, w, y, xi, alpha2, noise)
    np.testing.assert_allclose(logits.numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eps.numpy(), ref_eps, rtol=1e-12, atol=1e-12)
    # Non-target logits are untouched, bit for bit.
    mask = torch.ones_like(logits, dtype=torch.bool).scatter(1, y[:, None], False)
    assert torch.equal(logits[mask], (x @ w.T)[mask])


def test_scalar_xi_is_one_draw_for_the_batch():
    x, w, y, _ = _data()
    _, eps_scalar = noisy_logits(x, w, y, alpha2=0.5, xi=-1.5, noise="free")
    assert torch.allclose(eps_scalar, torch.full((6,), math.sqrt(0.5) * 1.5, dtype=x.dtype))


def test_bias_is_added_but_takes_no_part_in_the_noise():
    x, w, y, xi = _data()
    b = torch.randn(5, dtype=x.dtype)
    with_b, eps_b = noisy_logits(x, w, y, alpha2=0.1, xi=xi, bias=b)
    without, eps = noisy_logits(x, w, y, alpha2=0.1, xi=xi)
    assert torch.allclose(with_b, without + b)
    assert torch.equal(eps_b, eps)


@pytest.mark.parametrize("noise", NOISE_FAMILIES)
def test_gradcheck_float64(noise):
    x, w, y, xi = _data(n=4, c=3, d=3)
    x.requires_grad_(True)
    w.requires_grad_(True)

    def f(x_, w_):
        logits, _ = noisy_logits(x_, w_, y, alpha2=0.3, xi=xi, noise=noise)
        return F.cross_entropy(logits, y)

    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def test_gradient_equals_closed_form_of_paper_section_3():
    """d f_y^noise/dW_y = (1+a)X - a ||X||/||W_y|| W_y and d/dX = (1+a)W_y - a ||W_y||/||X|| X."""
    x, w, y, xi = _data(n=5, c=4, d=3, seed=3)
    x.requires_grad_(True)
    w.requires_grad_(True)
    alpha2 = 0.4
    logits, _ = noisy_logits(x, w, y, alpha2=alpha2, xi=xi)
    loss = F.cross_entropy(logits, y, reduction="sum")
    gx, gw = torch.autograd.grad(loss, (x, w))

    xd, wd = x.detach().numpy(), w.detach().numpy()
    p = torch.softmax(logits.detach(), 1).numpy()
    dl_df = p.copy()
    dl_df[np.arange(5), y.numpy()] -= 1.0  # P_j - 1{j=y}, P the softmax of the noisy logits
    ex = np.zeros_like(xd)
    ew = np.zeros_like(wd)
    for i, yi in enumerate(y.tolist()):
        a = math.sqrt(alpha2) * abs(xi[i].item())
        nx, nw = np.linalg.norm(xd[i]), np.linalg.norm(wd[yi])
        for j in range(4):
            if j == yi:
                ex[i] += dl_df[i, j] * ((1 + a) * wd[yi] - a * nw / nx * xd[i])
                ew[yi] += dl_df[i, j] * ((1 + a) * xd[i] - a * nx / nw * wd[yi])
            else:
                ex[i] += dl_df[i, j] * wd[j]
                ew[j] += dl_df[i, j] * xd[i]
    np.testing.assert_allclose(gx.numpy(), ex, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw.numpy(), ew, rtol=1e-10, atol=1e-12)


def test_alpha2_zero_is_plain_linear_cross_entropy_bit_for_bit():
    x, w, y, xi = _data(dtype=torch.float32)
    logits, eps = noisy_logits(x, w, y, alpha2=0, xi=xi)
    assert torch.equal(logits, F.linear(x, w))
    assert torch.equal(eps, torch.zeros(6))
    assert torch.equal(F.cross_entropy(logits, y), F.cross_entropy(x @ w.T, y))


def test_cos_one_gives_plain_softmax():
    w = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    x = w[y] * torch.tensor([[2.0], [0.5], [3.0]], dtype=torch.float64)  # X parallel to W_y
    logits, eps = noisy_logits(x, w, y, alpha2=1.0, xi=torch.ones(3, dtype=torch.float64))
    assert torch.allclose(eps, torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(logits, x @ w.T, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_loss_at_least_clean_loss_and_target_gradient_larger(seed):
    x, w, y, xi = _data(n=32, c=10, d=8, seed=seed)
    logits, eps = noisy_logits(x, w, y, alpha2=1.0, xi=xi)
    clean = x @ w.T
    assert (eps >= 0).all()
    per_noisy = F.cross_entropy(logits, y, reduction="none")
    per_clean = F.cross_entropy(clean, y, reduction="none")
    assert (per_noisy >= per_clean - 1e-12).all()
    # |dL/df_y| = 1 - P_y^noisy >= 1 - p_y
    assert (1 - target_probability(logits, y) >= 1 - target_probability(clean, y) - 1e-12).all()


def test_generator_draws_are_reproducible_and_per_sample():
    x, w, y, _ = _data(n=50)
    a, ea = noisy_logits(x, w, y, alpha2=0.1, generator=torch.Generator().manual_seed(7),
                         noise="free")
    b, eb = noisy_logits(x, w, y, alpha2=0.1, generator=torch.Generator().manual_seed(7),
                         noise="free")
    assert torch.equal(a, b)
    assert eb.unique().numel() == 50  # one draw per sample


def test_target_probability():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    p = target_probability(logits, torch.tensor([1, 0]))
    assert torch.allclose(p, torch.tensor([0.5, 0.75]))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"target": torch.tensor([0, 1, 9])}, ValueError, "target values"),
        ({"target": torch.tensor([0, -1, 1])}, ValueError, "target values"),
        ({"target": torch.tensor([0.0, 1.0, 1.0])}, TypeError, "target must have dtype"),
        ({"target": torch.tensor([0, 1])}, ValueError, "target must have shape"),
        ({"weight": torch.randn(3, 5)}, ValueError, "must agree on D"),
        ({"features": torch.randn(3, 4, 1)}, ValueError, "features must be 2-D"),
        ({"features": torch.tensor([[0.0, float("nan"), 0, 0]] * 3)}, ValueError, "NaN or Inf"),
        ({"alpha2": -0.1}, ValueError, "alpha2"),
        ({"alpha2": float("inf")}, ValueError, "alpha2"),
        ({"alpha2": "0.1"}, TypeError, "alpha2"),
        ({"noise": "gaussian"}, ValueError, "noise must be one of"),
        ({"xi": torch.ones(2)}, ValueError, "xi must be"),
        ({"bias": torch.ones(2)}, ValueError, "bias must be"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = {"features": torch.randn(3, 4), "weight": torch.randn(3, 4),
            "target": torch.tensor([0, 1, 2]), "alpha2": 0.1}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        noisy_logits(args.pop("features"), args.pop("weight"), args.pop("target"), **args)
