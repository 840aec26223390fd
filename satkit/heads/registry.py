"""The softmax regularisers satkit compares, by name: each is a (head, training loss) pair.

Every head follows one contract, so the saturation recorder works with all of them: a
``weight`` Parameter (C, D); ``forward(features, target=None)``, which returns the *clean*
(eval-mode) logits in eval mode or without a target; detached ``last_noise`` (N,) (how far the
training target logit lies below the clean one; zeros when nothing was applied) and
``last_target``; and ``clean_logits(logits, target)``, which maps the logits of the last
forward to the clean ones without a host sync.

Methods that change the loss or the labels (label smoothing, confidence penalty, DisturbLabel,
focal loss) use the plain head ``NoisySoftmax(alpha2=0)``; methods that change the logits
(Noisy Softmax, temperature, CosFace, ArcFace) use cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal

import torch
from torch import Tensor, nn

from satkit.heads.margin import ArcFace, CosFace
from satkit.heads.noisy import NoisySoftmax
from satkit.heads.temperature import TemperatureSoftmax, check_temperature
from satkit.losses import (
    ConfidencePenaltyLoss,
    DisturbLabelLoss,
    FocalLoss,
    LabelSmoothingCrossEntropy,
    check_alpha,
    check_beta,
    check_epsilon,
    check_gamma,
)

__all__ = ["LOSSES", "make_head_and_loss"]

#: The methods by name (the CLI's ``--loss`` choices), each with a one-line description.
LOSSES: Mapping[str, str] = MappingProxyType({
    "softmax": "plain softmax cross-entropy (NoisySoftmax with alpha2=0)",
    "noisy": "Noisy Softmax: annealed noise on the target logit (Chen et al., CVPR 2017)",
    "label-smoothing": "cross-entropy to (1-epsilon) onehot + epsilon/C (Szegedy et al., 2016)",
    "confidence-penalty": "cross-entropy minus beta * entropy (Pereyra et al., 2017)",
    "disturb-label": "labels redrawn uniformly with probability alpha (Xie et al., 2016)",
    "focal": "-(1 - p_y)^gamma log p_y (Lin et al., 2017)",
    "temperature": "training logits divided by a temperature T",
    "cosface": "normalised logits s cos theta, target s (cos theta_y - m) (Wang et al., 2018)",
    "arcface": "normalised logits s cos theta, target s cos(theta_y + m) (Deng et al., 2019)",
})

#: Default margins: CosFace's / AM-Softmax's 0.35 and ArcFace's 0.5 rad.
DEFAULT_MARGIN: Mapping[str, float] = MappingProxyType({"cosface": 0.35, "arcface": 0.5})


def make_head_and_loss(
    name: str,
    in_features: int,
    num_classes: int,
    *,
    alpha2: float = 0.1,
    noise: Literal["annealed", "amplitude", "free", "negative"] = "annealed",
    xi_per: Literal["sample", "batch"] = "sample",
    epsilon: float = 0.1,
    beta: float = 0.1,
    disturb_alpha: float = 0.1,
    gamma: float = 2.0,
    temperature: float = 2.0,
    s: float = 30.0,
    m: float | None = None,
    easy_margin: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[nn.Module, Callable[[Tensor, Tensor], Tensor]]:
    """Build the head and the training loss of one method of :data:`LOSSES`.

    Only the settings of the chosen method are read (and validated); the others are ignored.

    Args:
        name: a key of :data:`LOSSES`.
        in_features: D, the feature dimension.
        num_classes: C.
        alpha2: Noisy Softmax's alpha^2 (``noisy`` only; the paper's best 0.1).
        noise: Noisy Softmax's noise family (``noisy`` only).
        xi_per: Noisy Softmax's draw per "sample" or per "batch" (``noisy`` only).
        epsilon: label smoothing, in [0, 1) (default 0.1, Szegedy et al.'s).
        beta: confidence-penalty strength, >= 0 (default 0.1).
        disturb_alpha: DisturbLabel's rate, in [0, 1] (default 0.1, Xie et al.'s for CIFAR).
        gamma: focal-loss gamma, >= 0 (default 2, Lin et al.'s best).
        temperature: T > 0 of the temperature head (default 2).
        s: scale of the margin heads, > 0 (default 30).
        m: margin of the margin heads; None for the method's default (CosFace 0.35 in cosine
            units, ArcFace 0.5 rad).
        easy_margin: ArcFace's easy-margin variant.
        generator: optional ``torch.Generator`` for Noisy Softmax's draws and DisturbLabel's
            labels (it must be on the device the head and targets will live on).

    Returns:
        ``(head, loss_fn)``: the head (an ``nn.Module`` on the CPU, move it with ``.to``) and
        ``loss_fn(logits, target)`` -> float32 scalar mean loss, itself an ``nn.Module``
        (``DisturbLabelLoss`` disturbs labels only while in training mode).

    Raises:
        ValueError: an unknown name (the message lists the valid ones), or a setting of the
            chosen method out of range (the message names the argument).

    Example:
        >>> head, loss_fn = make_head_and_loss("label-smoothing", 8, 3, epsilon=0.1)
        >>> h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> loss = loss_fn(head(h, y), y)
        >>> loss.dtype, loss.shape
        (torch.float32, torch.Size([]))
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    ce = nn.CrossEntropyLoss()
    if name in ("softmax", "noisy"):
        head = NoisySoftmax(in_features, num_classes, alpha2=alpha2 if name == "noisy" else 0.0,
                            noise=noise, xi_per=xi_per, generator=generator)
        return head, ce
    if name == "temperature":
        temperature = check_temperature(temperature)
        return TemperatureSoftmax(in_features, num_classes, temperature=temperature), ce
    if name == "cosface":
        margin = DEFAULT_MARGIN[name] if m is None else m
        return CosFace(in_features, num_classes, s=s, m=margin), ce
    if name == "arcface":
        margin = DEFAULT_MARGIN[name] if m is None else m
        return ArcFace(in_features, num_classes, s=s, m=margin, easy_margin=easy_margin), ce

    loss: nn.Module
    if name == "label-smoothing":
        loss = LabelSmoothingCrossEntropy(epsilon=check_epsilon(epsilon))
    elif name == "confidence-penalty":
        loss = ConfidencePenaltyLoss(beta=check_beta(beta))
    elif name == "disturb-label":
        loss = DisturbLabelLoss(alpha=check_alpha(disturb_alpha, "disturb_alpha"),
                                generator=generator)
    else:  # focal
        loss = FocalLoss(gamma=check_gamma(gamma))
    return NoisySoftmax(in_features, num_classes, alpha2=0.0), loss
