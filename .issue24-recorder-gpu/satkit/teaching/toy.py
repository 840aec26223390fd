"""Exact toy computations of softmax saturation and of Noisy Softmax's noise (Eq. 5).

The toy is one sample of class ``y = 0`` in front of a bias-free last layer with C classes,
built so that the quantities of Eq. 5 can be set by hand:

* the target weight is ``W_0 = e_0`` (norm 1) and every other class weight ``W_j = e_j`` is
  orthogonal to the feature, so every non-target logit is 0 and the logit margin is ``f_y``;
* the feature is ``X = s (cos theta e_0 + sin theta e_C)``, so ``||W_y|| ||X|| = s`` and the
  angle between ``W_y`` and ``X`` is ``theta``; the clean target logit is ``s cos theta``.

Only the product ``||W_y|| ||X||`` enters the logits and the noise, so ``s`` stands for it.
Logits, noise and ``p_y`` come from :func:`satkit.functional.noisy_logits` and
:func:`satkit.functional.target_probability`, the code the ``NoisySoftmax`` head runs, and the
softmax gradient comes from autograd: nothing here re-derives the maths the library implements.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from satkit.functional import noise_magnitude, noisy_logits, target_probability

__all__ = ["MEAN_ABS_XI", "fitting_path", "noise_by_angle", "noisy_response",
           "saturation_by_margin", "sigmoid_saturation", "toy_layer"]

#: E|xi| for xi ~ N(0, 1): the mean noise is alpha * E|xi| * ||W|| ||X|| (1 - cos theta).
MEAN_ABS_XI = math.sqrt(2 / math.pi)


def toy_layer(scale, angle_deg, *, num_classes: int = 10) -> tuple[Tensor, Tensor, Tensor]:
    """Features, weights and targets of N toy samples (see the module docstring).

    Args:
        scale: ``s = ||W_y|| ||X||`` per sample, a number or an array (broadcast with angle).
        angle_deg: theta, the angle between ``W_y`` and ``X``, in degrees.
        num_classes: C >= 2.

    Returns:
        ``(features (N, C + 1), weight (C, C + 1), target (N,))`` in float64; target is all 0.

    Example:
        >>> x, w, y = toy_layer(2.0, 60.0, num_classes=3)
        >>> torch.nn.functional.linear(x, w)
        tensor([[1.0000, 0.0000, 0.0000]], dtype=torch.float64)
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    s, theta = np.broadcast_arrays(np.asarray(scale, dtype=np.float64),
                                   np.radians(np.asarray(angle_deg, dtype=np.float64)))
    s, theta = torch.as_tensor(s.ravel()), torch.as_tensor(theta.ravel())
    features = torch.zeros(s.shape[0], num_classes + 1, dtype=torch.float64)
    features[:, 0] = s * torch.cos(theta)
    features[:, num_classes] = s * torch.sin(theta)
    weight = torch.eye(num_classes, num_classes + 1, dtype=torch.float64)
    return features, weight, torch.zeros(s.shape[0], dtype=torch.int64)


def saturation_by_margin(margins, *, num_classes: int = 10) -> pd.DataFrame:
    """Plain softmax: ``p_y`` and the target-logit gradient as the logit margin grows.

    The target logit is the margin, every other logit is 0. The gradient is autograd's
    ``dL/df_y`` of the cross-entropy, which equals ``p_y - 1``
    (docs/concept.md, "Softmax saturation").

    Returns:
        Columns ``margin, p_target, grad_target`` (``dL/df_y``, <= 0) and ``grad_other``
        (``dL/df_j`` of one non-target class, = p_j).
    """
    m = torch.as_tensor(np.asarray(margins, dtype=np.float64))
    logits = torch.zeros(m.shape[0], num_classes, dtype=torch.float64)
    logits[:, 0] = m
    logits.requires_grad_(True)
    target = torch.zeros(m.shape[0], dtype=torch.int64)
    F.cross_entropy(logits, target, reduction="sum").backward()
    grad = logits.grad
    return pd.DataFrame({"margin": m.numpy(),
                         "p_target": target_probability(logits.detach(), target).numpy(),
                         "grad_target": grad[:, 0].numpy(), "grad_other": grad[:, 1].numpy()})


def sigmoid_saturation(z) -> pd.DataFrame:
    """The sigmoid and its derivative next to the two-class softmax ``p_y``.

    With two classes, ``p_y = sigmoid(f_y - f_other)``: softmax saturation is sigmoid
    saturation of the margin, the regime Gulcehre et al. (2016) inject noise into.

    Returns:
        Columns ``z, sigmoid, dsigmoid`` (autograd's derivative), ``p_target_2class`` (the
        two-class softmax ``p_y`` at margin z, equal to ``sigmoid``) and ``grad_target_2class``
        (``|dL/df_y| = 1 - p_y``).
    """
    zt = torch.as_tensor(np.asarray(z, dtype=np.float64)).requires_grad_(True)
    sig = torch.sigmoid(zt)
    sig.sum().backward()
    two = saturation_by_margin(zt.detach().numpy(), num_classes=2)
    return pd.DataFrame({"z": zt.detach().numpy(), "sigmoid": sig.detach().numpy(),
                         "dsigmoid": zt.grad.numpy(), "p_target_2class": two["p_target"],
                         "grad_target_2class": -two["grad_target"]})


def noise_by_angle(angles_deg, scales, *, alpha2: float, noise: str = "annealed") -> pd.DataFrame:
    """Mean noise of Eq. 5 subtracted from ``f_y``, over angles and ``||W_y|| ||X||`` scales.

    The mean is taken over the draw: ``|xi|`` is replaced by its mean :data:`MEAN_ABS_XI`.

    Returns:
        Columns ``angle, cos, scale, noise`` (one row per angle x scale).
    """
    a, s = np.meshgrid(np.asarray(angles_deg, dtype=np.float64),
                       np.asarray(scales, dtype=np.float64))
    x, w, y = toy_layer(s, a)
    eps = noise_magnitude(x, w[y], torch.tensor(MEAN_ABS_XI, dtype=torch.float64),
                          alpha=math.sqrt(alpha2), noise=noise)
    return pd.DataFrame({"angle": a.ravel(), "cos": np.cos(np.radians(a.ravel())),
                         "scale": s.ravel(), "noise": eps.numpy()})


def _noisy_draws(x: Tensor, w: Tensor, y: Tensor, alpha2: float, draws: int,
                 seed: int) -> tuple[Tensor, Tensor]:
    """p_y and noise of every sample under ``draws`` draws of xi: two (draws, N) tensors.

    Every sample sees the same ``draws`` values of xi (common random numbers), so curves over
    samples are smooth and differences between them are not draw-to-draw noise.
    """
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn(draws, 1, generator=gen, dtype=torch.float64).expand(draws, n)
    logits, eps = noisy_logits(x.repeat(draws, 1), w, y.repeat(draws), alpha2=alpha2,
                               xi=xi.reshape(-1))
    p = target_probability(logits, y.repeat(draws))
    return p.reshape(draws, n), eps.reshape(draws, n)


def noisy_response(margins, *, alpha2: float, angle_deg: float, num_classes: int = 10,
                   draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Clean vs noisy ``p_y`` and target gradient at given clean margins, for one angle.

    At a fixed clean margin ``m = ||W_y|| ||X|| cos theta``, the scale is ``m / cos theta``,
    so a sample that reached its margin through large norms at a wide angle gets more noise
    (``m (1 - cos theta) / cos theta`` times ``alpha |xi|``) than one that is well aligned.

    Args:
        margins: clean logit margins (> 0).
        alpha2: the paper's alpha^2.
        angle_deg: theta in [0, 90) degrees.
        num_classes: C.
        draws: draws of xi averaged per margin (fixed ``seed``: the result is deterministic).

    Returns:
        Columns ``margin, p_clean, p_noisy_mean, p_noisy_q10, p_noisy_q90, grad_clean``
        (``1 - p_y``), ``grad_noisy_mean`` (``E[1 - P_y]``, what SGD sees on average) and
        ``noise_mean``.
    """
    if not 0 <= angle_deg < 90:
        raise ValueError(f"angle_deg must lie in [0, 90) for a positive margin, got {angle_deg}")
    m = np.asarray(margins, dtype=np.float64).ravel()
    x, w, y = toy_layer(m / math.cos(math.radians(angle_deg)), angle_deg,
                        num_classes=num_classes)
    p_clean = target_probability(F.linear(x, w), y)
    p, eps = _noisy_draws(x, w, y, alpha2, draws, seed)
    q = torch.quantile(p, torch.tensor([0.1, 0.9], dtype=torch.float64), dim=0)
    return pd.DataFrame({"margin": m, "p_clean": p_clean.numpy(),
                         "p_noisy_mean": p.mean(0).numpy(), "p_noisy_q10": q[0].numpy(),
                         "p_noisy_q90": q[1].numpy(), "grad_clean": (1 - p_clean).numpy(),
                         "grad_noisy_mean": (1 - p).mean(0).numpy(),
                         "noise_mean": eps.mean(0).numpy()})


def fitting_path(*, alpha2: float, steps: int = 60, start_angle: float = 85.0,
                 end_angle: float = 5.0, start_scale: float = 1.0, end_scale: float = 12.0,
                 num_classes: int = 10, draws: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A sample being fitted: theta shrinks and ``||W_y|| ||X||`` grows, linearly in ``t``.

    Shows the annealing of Eq. 5: the ``(1 - cos theta)`` factor drives the noise to 0 as the
    sample is fitted, even while the norms grow.

    Returns:
        Columns ``t`` (0..1), ``angle, scale, margin`` (clean), ``p_clean, p_noisy_mean,
        grad_clean, grad_noisy_mean, noise_mean``.
    """
    t = np.linspace(0.0, 1.0, steps)
    angle = start_angle + t * (end_angle - start_angle)
    scale = start_scale + t * (end_scale - start_scale)
    x, w, y = toy_layer(scale, angle, num_classes=num_classes)
    p_clean = target_probability(F.linear(x, w), y)
    p, eps = _noisy_draws(x, w, y, alpha2, draws, seed)
    return pd.DataFrame({"t": t, "angle": angle, "scale": scale,
                         "margin": scale * np.cos(np.radians(angle)),
                         "p_clean": p_clean.numpy(), "p_noisy_mean": p.mean(0).numpy(),
                         "grad_clean": (1 - p_clean).numpy(),
                         "grad_noisy_mean": (1 - p).mean(0).numpy(),
                         "noise_mean": eps.mean(0).numpy()})
