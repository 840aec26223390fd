"""Loss regularisers against float64 reference formulas, gradcheck, limits and statistics."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satkit.losses import (
    ConfidencePenaltyLoss,
    DisturbLabelLoss,
    FocalLoss,
    LabelSmoothingCrossEntropy,
    confidence_penalty_loss,
    disturb_label,
    disturb_label_cross_entropy,
    focal_loss,
    label_smoothing_cross_entropy,
)


def _batch(n=8, c=5, seed=0, dtype=torch.float64, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(n, c, generator=g, dtype=dtype)
    return x, torch.randint(0, c, (n,), generator=g)


def _ref_logp(logits):
    z = np.asarray(logits.detach(), np.float64)
    out = np.empty_like(z)
    for i, row in enumerate(z):
        top = row.max()
        out[i] = row - top - math.log(sum(math.exp(v - top) for v in row))
    return out


def ref_label_smoothing(logits, y, eps):
    logp, c = _ref_logp(logits), logits.shape[1]
    return np.array([-sum(((1 - eps) * (j == yi) + eps / c) * logp[i, j] for j in range(c))
                     for i, yi in enumerate(y.tolist())])


def ref_confidence_penalty(logits, y, beta):
    logp = _ref_logp(logits)
    return np.array([-logp[i, yi] + beta * sum(math.exp(v) * v for v in logp[i])
                     for i, yi in enumerate(y.tolist())])


def ref_focal(logits, y, gamma, alpha=None):
    logp = _ref_logp(logits)
    out = []
    for i, yi in enumerate(y.tolist()):
        weight = 1.0 if alpha is None else float(alpha[yi])
        out.append(-weight * (1 - math.exp(logp[i, yi])) ** gamma * logp[i, yi])
    return np.array(out)


def ref_ce(logits, y):
    logp = _ref_logp(logits)
    return np.array([-logp[i, yi] for i, yi in enumerate(y.tolist())])


def _seeded_disturb(seed, alpha):
    def f(logits, y, reduction="mean"):
        return disturb_label_cross_entropy(logits, y, alpha=alpha, reduction=reduction,
                                           generator=torch.Generator().manual_seed(seed))
    return f


CASES = {
    "label-smoothing": (lambda x, y, r="mean": label_smoothing_cross_entropy(
        x, y, epsilon=0.2, reduction=r), lambda x, y: ref_label_smoothing(x, y, 0.2)),
    "confidence-penalty": (lambda x, y, r="mean": confidence_penalty_loss(
        x, y, beta=0.3, reduction=r), lambda x, y: ref_confidence_penalty(x, y, 0.3)),
    "focal": (lambda x, y, r="mean": focal_loss(x, y, gamma=2.0, reduction=r),
              lambda x, y: ref_focal(x, y, 2.0)),
    "focal-fractional-alpha": (
        lambda x, y, r="mean": focal_loss(x, y, gamma=0.5, reduction=r,
                                          alpha=torch.arange(1.0, 6.0)),
        lambda x, y: ref_focal(x, y, 0.5, alpha=np.arange(1.0, 6.0))),
    "disturb-label": (lambda x, y, r="mean": _seeded_disturb(7, 0.5)(x, y, r),
                      lambda x, y: ref_ce(x, disturb_label(y, alpha=0.5, num_classes=5,
                                                           generator=torch.Generator().manual_seed(7)))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_float64_reference_in_every_reduction(name):
    fn, ref = CASES[name]
    x, y = _batch()
    expected = ref(x, y)
    assert np.allclose(fn(x, y, "none").numpy(), expected, rtol=1e-12, atol=1e-12)
    assert math.isclose(float(fn(x, y, "mean")), expected.mean(), rel_tol=1e-12)
    assert math.isclose(float(fn(x, y, "sum")), expected.sum(), rel_tol=1e-12)
    x32 = x.float()
    assert fn(x32, y).dtype == torch.float32 and fn(x32, y).shape == ()
    assert fn(x32.bfloat16(), y).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fn(x32, y).dtype == torch.float32


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_float64(name):
    fn, _ = CASES[name]
    x, y = _batch(n=4, seed=1, scale=1.5)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fn(x, y, "none"), (x,))
    assert torch.autograd.gradcheck(lambda x: fn(x, y, "mean"), (x,))


def test_limiting_cases_are_cross_entropy():
    x, y = _batch()
    ce = F.cross_entropy(x, y, reduction="none")
    assert torch.allclose(label_smoothing_cross_entropy(x, y, epsilon=0.0, reduction="none"), ce)
    assert torch.allclose(confidence_penalty_loss(x, y, beta=0.0, reduction="none"), ce)
    assert torch.allclose(focal_loss(x, y, gamma=0.0, reduction="none"), ce)
    assert torch.equal(disturb_label(y, alpha=0.0, num_classes=5), y)
    assert torch.allclose(disturb_label_cross_entropy(x, y, alpha=0.0, reduction="none"), ce)


def test_label_smoothing_equals_torch_builtin():
    x, y = _batch(dtype=torch.float32)
    ours = label_smoothing_cross_entropy(x, y, epsilon=0.15)
    assert torch.allclose(ours, F.cross_entropy(x, y, label_smoothing=0.15), atol=1e-6)


@pytest.mark.parametrize(("eps", "c"), [(0.1, 10), (0.3, 4)])
def test_label_smoothing_optimum_caps_p_target(eps, c):
    logits = torch.zeros(1, c, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1])
    opt = torch.optim.LBFGS([logits], lr=1, max_iter=200, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = label_smoothing_cross_entropy(logits, y, epsilon=eps)
        loss.backward()
        return loss

    opt.step(closure)
    p = logits.detach().softmax(dim=1)[0]
    assert float(p[1]) == pytest.approx(1 - eps + eps / c, abs=1e-6)
    assert torch.allclose(p[torch.arange(c) != 1], torch.full((c - 1,), eps / c,
                                                              dtype=torch.float64), atol=1e-6)


def test_focal_gradient_finite_when_p_target_rounds_to_one():
    x = torch.tensor([[200.0, 0.0, 0.0]], requires_grad=True)
    focal_loss(x, torch.tensor([0]), gamma=0.5).backward()
    assert torch.isfinite(x.grad).all()


def test_focal_scalar_alpha_scales_the_loss():
    x, y = _batch()
    assert torch.allclose(focal_loss(x, y, alpha=0.25), 0.25 * focal_loss(x, y))


def test_disturb_label_statistics():
    n, c, alpha = 20000, 10, 0.3
    y = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(0))
    out = disturb_label(y, alpha=alpha, num_classes=c, generator=torch.Generator().manual_seed(1))
    assert out.dtype == torch.int64 and out.shape == (n,)
    changed = (out != y).double().mean().item()
    p = alpha * (c - 1) / c  # the paper's sampling may redraw the true label
    assert abs(changed - p) < 4 * math.sqrt(p * (1 - p) / n)
    # Each wrong class equally likely: offsets (out - y) mod C for changed labels are uniform.
    offsets = torch.bincount((out - y).remainder(c), minlength=c)[1:].double()
    expected = n * alpha / c
    assert bool(((offsets - expected).abs() < 5 * math.sqrt(expected)).all())
    everything = disturb_label(y, alpha=1.0, num_classes=c,
                               generator=torch.Generator().manual_seed(2))
    kept = (everything == y).double().mean().item()
    assert abs(kept - 1 / c) < 4 * math.sqrt(0.1 * 0.9 / n)


def test_disturb_label_is_reproducible_with_a_generator():
    y = torch.arange(100) % 7
    a, b = (disturb_label(y, alpha=0.5, num_classes=7, generator=torch.Generator().manual_seed(3))
            for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, y)


def test_modules_call_the_functions():
    x, y = _batch()
    assert torch.equal(LabelSmoothingCrossEntropy(0.2)(x, y),
                       label_smoothing_cross_entropy(x, y, epsilon=0.2))
    assert torch.equal(ConfidencePenaltyLoss(0.3, reduction="sum")(x, y),
                       confidence_penalty_loss(x, y, beta=0.3, reduction="sum"))
    weights = torch.arange(1.0, 6.0)
    assert torch.equal(FocalLoss(1.5, alpha=weights)(x, y),
                       focal_loss(x, y, gamma=1.5, alpha=weights))
    module = DisturbLabelLoss(0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(module(x, y), _seeded_disturb(7, 0.5)(x, y))
    assert torch.allclose(module.eval()(x, y), F.cross_entropy(x, y))  # eval: no disturbing


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda x, y: label_smoothing_cross_entropy(x, y, epsilon=1.0), "epsilon"),
        (lambda x, y: label_smoothing_cross_entropy(x, y, epsilon=-0.1), "epsilon"),
        (lambda x, y: LabelSmoothingCrossEntropy(float("nan")), "epsilon"),
        (lambda x, y: confidence_penalty_loss(x, y, beta=-1.0), "beta"),
        (lambda x, y: ConfidencePenaltyLoss(beta=-1.0), "beta"),
        (lambda x, y: disturb_label(y, alpha=1.5, num_classes=5), "alpha"),
        (lambda x, y: disturb_label(y, alpha=0.1, num_classes=1), "num_classes"),
        (lambda x, y: DisturbLabelLoss(alpha=-0.1), "alpha"),
        (lambda x, y: focal_loss(x, y, gamma=-1.0), "gamma"),
        (lambda x, y: FocalLoss(gamma=float("inf")), "gamma"),
        (lambda x, y: focal_loss(x, y, alpha=torch.ones(3)), "alpha"),
        (lambda x, y: focal_loss(x, y, alpha=-1.0), "alpha"),
        (lambda x, y: focal_loss(x, y, reduction="avg"), "reduction"),
        (lambda x, y: confidence_penalty_loss(x, y.clamp(max=0) + 5), "target values"),
        (lambda x, y: label_smoothing_cross_entropy(x[0], y), "2-D"),
    ],
)
def test_bad_parameters_raise(call, match):
    x, y = _batch()
    with pytest.raises(ValueError, match=match):
        call(x, y)
