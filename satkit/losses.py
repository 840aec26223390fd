"""Softmax regularisers that act on the loss or the labels, as pure functions and thin Modules.

Each function takes ``(logits, target)`` like ``F.cross_entropy`` and a ``reduction`` of
``'none' | 'mean' | 'sum'``. Losses are computed in float32 (float64 stays float64, for
``gradcheck``), through ``log_softmax`` for stability, so they are float32 under autocast too.

* :func:`label_smoothing_cross_entropy` (Szegedy et al., CVPR 2016, Sec. 7).
* :func:`confidence_penalty_loss` (Pereyra et al., ICLR workshop 2017).
* :func:`disturb_label` / :func:`disturb_label_cross_entropy` (Xie et al., CVPR 2016).
* :func:`focal_loss` (Lin et al., ICCV 2017, Eq. 4/5).

Target *values* are checked only for CPU tensors (reading them on an accelerator is a host sync).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satkit.functional import check_target
from satkit.methods import BETA, DISTURB_ALPHA, EPSILON, GAMMA
from satkit.validation import check_int, check_real

__all__ = [
    "ConfidencePenaltyLoss",
    "DisturbLabelLoss",
    "FocalLoss",
    "LabelSmoothingCrossEntropy",
    "confidence_penalty_loss",
    "disturb_label",
    "disturb_label_cross_entropy",
    "focal_loss",
    "label_smoothing_cross_entropy",
]

Reduction = Literal["none", "mean", "sum"]


def _check_reduction(reduction: object) -> str:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return str(reduction)


def _log_probs(logits: Tensor, target: Tensor) -> Tensor:
    """Validate and return ``log_softmax(logits)`` in float32 (float64 kept), shape (N, C)."""
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError("logits must be a 2-D floating-point tensor (N, C), "
                         f"got {getattr(logits, 'shape', logits)}")
    check_target(target, logits.shape[0], logits.shape[1],
                 check_values=logits.device.type == "cpu")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return F.log_softmax(logits.to(dtype), dim=1)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


def label_smoothing_cross_entropy(
    logits: Tensor, target: Tensor, *, epsilon: float = EPSILON.default,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy against the smoothed label ``(1 - eps) onehot(y) + eps / C``.

    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016, Sec. 7:
    ``L = (1 - eps) (-log p_y) + eps mean_j (-log p_j)``. Its minimum over the logits is at
    ``p_y = 1 - eps + eps / C`` (and ``p_j = eps / C`` otherwise), so p_y can never saturate
    towards 1: the target gradient ``p_y - (1 - eps + eps/C)`` vanishes there instead.
    ``epsilon = 0`` is ``F.cross_entropy``. Same value as ``F.cross_entropy(label_smoothing=eps)``.

    Args:
        logits: (N, C).
        target: (N,) int64 class indices.
        epsilon: the smoothing, in [0, 1).
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        The loss, (N,) for 'none', else a scalar.

    Shape:
        logits (N, C), target (N,) int64 -> (N,) or (); float32 (float64 for float64 logits).

    Raises:
        ValueError/TypeError: epsilon out of range, bad reduction, shapes or targets.

    Example:
        >>> label_smoothing_cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3]), epsilon=0.1)
        tensor(1.3863)
    """
    epsilon, reduction = EPSILON.check(epsilon), _check_reduction(reduction)
    logp = _log_probs(logits, target)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    return _reduce((1.0 - epsilon) * nll - epsilon * logp.mean(dim=1), reduction)


def confidence_penalty_loss(
    logits: Tensor, target: Tensor, *, beta: float = BETA.default, reduction: Reduction = "mean"
) -> Tensor:
    """Cross-entropy minus beta times the entropy of the predicted distribution.

    Pereyra et al., "Regularizing Neural Networks by Penalizing Confident Output
    Distributions", ICLR workshop 2017: ``L = -log p_y - beta H(p)``,
    ``H(p) = -sum_j p_j log p_j``. Low-entropy (confident, saturated) outputs are penalised.
    ``beta = 0`` is ``F.cross_entropy``.

    Args:
        logits: (N, C).
        target: (N,) int64 class indices.
        beta: the penalty strength, >= 0.
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        The loss, (N,) for 'none', else a scalar.

    Shape:
        logits (N, C), target (N,) int64 -> (N,) or (); float32 (float64 for float64 logits).

    Raises:
        ValueError/TypeError: beta < 0, bad reduction, shapes or targets.

    Example:
        >>> confidence_penalty_loss(torch.zeros(1, 4), torch.tensor([0]), beta=1.0)
        tensor(0.)
    """
    beta, reduction = BETA.check(beta), _check_reduction(reduction)
    logp = _log_probs(logits, target)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    entropy = -(logp.exp() * logp).sum(dim=1)
    return _reduce(nll - beta * entropy, reduction)


def disturb_label(
    target: Tensor, *, alpha: float, num_classes: int, generator: torch.Generator | None = None
) -> Tensor:
    """DisturbLabel's label noise: each label, with probability alpha, redrawn uniformly.

    Xie et al., "DisturbLabel: Regularizing CNN on the Loss Layer", CVPR 2016 (the paper's exact
    sampling): each sample independently, with probability ``alpha``, gets a
    label drawn uniformly from *all* C classes, which may be the true one. So the label stays
    right with probability ``1 - alpha (C - 1) / C`` and each wrong class has ``alpha / C``;
    the expected fraction actually changed is ``alpha (C - 1) / C``, not alpha.

    Args:
        target: (N,) int64 class indices.
        alpha: the disturbing rate, in [0, 1] (the paper uses 0.1 for CIFAR).
        num_classes: C >= 2.
        generator: optional ``torch.Generator`` on the target's device, for exact draws.

    Returns:
        The disturbed labels, (N,) int64, on the target's device (no host sync).

    Raises:
        ValueError/TypeError: alpha out of range, bad num_classes or targets.

    Example:
        >>> y = torch.arange(10) % 3
        >>> torch.equal(disturb_label(y, alpha=0.0, num_classes=3), y)
        True
    """
    alpha = DISTURB_ALPHA.check(alpha, "alpha")
    check_int("num_classes", num_classes, minimum=2)
    if not isinstance(target, Tensor) or target.dim() != 1:
        shape = getattr(target, "shape", target)
        raise ValueError(f"target must be a 1-D tensor (N,), got {shape}")
    check_target(target, target.shape[0], num_classes, check_values=target.device.type == "cpu")
    if alpha == 0.0:
        return target
    n = target.shape[0]
    disturbed = torch.rand(n, generator=generator, device=target.device) < alpha
    random = torch.randint(num_classes, (n,), generator=generator, device=target.device)
    return torch.where(disturbed, random, target)


def disturb_label_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    alpha: float = DISTURB_ALPHA.default,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy against labels disturbed by :func:`disturb_label` (Xie et al., 2016).

    C is ``logits.shape[1]``. ``alpha = 0`` is ``F.cross_entropy``. Meant for training only.

    Args:
        logits: (N, C).
        target: (N,) int64 class indices (the true labels).
        alpha: the disturbing rate, in [0, 1].
        generator: optional ``torch.Generator`` on the logits' device.
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        The loss, (N,) for 'none', else a scalar.

    Shape:
        logits (N, C), target (N,) int64 -> (N,) or (); float32 (float64 for float64 logits).

    Raises:
        ValueError/TypeError: alpha out of range, bad reduction, shapes or targets.

    Example:
        >>> loss = disturb_label_cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3]))
        >>> torch.allclose(loss, torch.tensor(4.0).log())
        True
    """
    reduction = _check_reduction(reduction)
    logp = _log_probs(logits, target)
    noisy = disturb_label(target, alpha=alpha, num_classes=logits.shape[1], generator=generator)
    return _reduce(-logp.gather(1, noisy[:, None]).squeeze(1), reduction)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = GAMMA.default,
    alpha: Tensor | float | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Focal loss ``-alpha_y (1 - p_y)^gamma log p_y``.

    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, Eq. 4 (and Eq. 5 with
    ``alpha``), applied to the softmax. The factor ``(1 - p_y)^gamma`` down-weights samples
    that are already well classified, i.e. it speeds up the vanishing of their gradient.
    No alpha-balancing by default; ``gamma = 0`` (and no alpha) is ``F.cross_entropy``.
    ``1 - p_y`` is computed as ``-expm1(log p_y)``, accurate when p_y is near 1.

    Args:
        logits: (N, C).
        target: (N,) int64 class indices.
        gamma: the focusing parameter, >= 0 (the paper's best: 2).
        alpha: optional weight: a float >= 0 for every sample, or a (C,) tensor of per-class
            weights alpha_y (the multi-class form of the paper's alpha_t).
        reduction: 'none' | 'mean' | 'sum'.

    Returns:
        The loss, (N,) for 'none', else a scalar.

    Shape:
        logits (N, C), target (N,) int64 -> (N,) or (); float32 (float64 for float64 logits).

    Raises:
        ValueError/TypeError: gamma < 0, a bad alpha, bad reduction, shapes or targets.

    Example:
        >>> focal_loss(torch.zeros(1, 2), torch.tensor([0]), gamma=1.0)
        tensor(0.3466)
    """
    gamma, reduction = GAMMA.check(gamma), _check_reduction(reduction)
    logp = _log_probs(logits, target)
    logp_y = logp.gather(1, target[:, None]).squeeze(1)
    loss = -logp_y
    if gamma != 0.0:
        # The clamp keeps the gradient finite for gamma < 1 when p_y rounds to exactly 1.
        one_minus_p = (-torch.expm1(logp_y)).clamp_min(torch.finfo(logp_y.dtype).tiny)
        loss = one_minus_p.pow(gamma) * loss
    if alpha is not None:
        if isinstance(alpha, Tensor):
            if alpha.shape != (logits.shape[1],):
                raise ValueError(f"alpha must be a float or a ({logits.shape[1]},) tensor of "
                                 f"per-class weights, got shape {tuple(alpha.shape)}")
            loss = alpha.to(loss)[target] * loss
        else:
            loss = check_real("alpha", alpha, lo=0.0) * loss
    return _reduce(loss, reduction)


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy` (Szegedy et al., 2016).

    Example:
        >>> LabelSmoothingCrossEntropy(epsilon=0.1)(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor(1.3863)
    """

    def __init__(self, epsilon: float = EPSILON.default, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.epsilon, self.reduction = EPSILON.check(epsilon), _check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(input, target, epsilon=self.epsilon,
                                             reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, reduction={self.reduction!r}"


class ConfidencePenaltyLoss(nn.Module):
    """Module form of :func:`confidence_penalty_loss` (Pereyra et al., 2017).

    Example:
        >>> ConfidencePenaltyLoss(beta=1.0)(torch.zeros(1, 4), torch.tensor([0]))
        tensor(0.)
    """

    def __init__(self, beta: float = BETA.default, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.beta, self.reduction = BETA.check(beta), _check_reduction(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return confidence_penalty_loss(input, target, beta=self.beta, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, reduction={self.reduction!r}"


class DisturbLabelLoss(nn.Module):
    """Module form of :func:`disturb_label_cross_entropy` (Xie et al., 2016).

    Labels are disturbed only in training mode (the Module default); after ``.eval()`` it is
    plain cross-entropy.

    Example:
        >>> loss = DisturbLabelLoss(alpha=0.1).eval()(torch.zeros(2, 4), torch.tensor([0, 3]))
        >>> torch.allclose(loss, torch.tensor(4.0).log())
        True
    """

    def __init__(
        self,
        alpha: float = DISTURB_ALPHA.default,
        generator: torch.Generator | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.alpha = DISTURB_ALPHA.check(alpha, "alpha")
        self.reduction = _check_reduction(reduction)
        self.generator = generator

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        alpha = self.alpha if self.training else 0.0
        return disturb_label_cross_entropy(input, target, alpha=alpha, generator=self.generator,
                                           reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, reduction={self.reduction!r}"


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss` (Lin et al., 2017).

    Example:
        >>> FocalLoss(gamma=1.0)(torch.zeros(1, 2), torch.tensor([0]))
        tensor(0.3466)
    """

    def __init__(
        self,
        gamma: float = GAMMA.default,
        alpha: Tensor | float | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.gamma, self.reduction = GAMMA.check(gamma), _check_reduction(reduction)
        if isinstance(alpha, Tensor):
            self.register_buffer("alpha", alpha.detach().clone())
        else:
            self.alpha = None if alpha is None else check_real("alpha", alpha, lo=0.0)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_loss(input, target, gamma=self.gamma, alpha=self.alpha,
                          reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"
