"""The softmax regularisers satkit compares, by name: each is a (head, training loss) pair.

Which head and loss each method uses, and their settings' defaults, are the catalogue's
(:data:`satkit.methods.METHODS`); every head follows the contract of
:class:`satkit.heads.base.SaturationHead`, so the saturation recorder works with all of them.

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
from satkit.heads.temperature import TemperatureSoftmax
from satkit.losses import (
    ConfidencePenaltyLoss,
    DisturbLabelLoss,
    FocalLoss,
    LabelSmoothingCrossEntropy,
)
from satkit.methods import DEFAULT_ALPHA2, METHODS, NoiseFamily

__all__ = ["DEFAULT_MARGIN", "LOSSES", "make_head_and_loss"]

#: The methods by name (the CLI's ``--loss`` choices), each with a one-line description
#: (read from the catalogue, :data:`satkit.methods.METHODS`).
LOSSES: Mapping[str, str] = MappingProxyType({m.name: m.description for m in METHODS.values()})

#: Default margins: CosFace's / AM-Softmax's 0.35 and ArcFace's 0.5 rad (from the catalogue).
DEFAULT_MARGIN: Mapping[str, float] = MappingProxyType(
    {m.name: s.default for m in METHODS.values() for s in m.settings if s.field == "margin"})

#: How each head class of the catalogue (:attr:`satkit.methods.Method.head`) is built:
#: (in_features, num_classes, settings) -> head.
_HEADS: Mapping[str, Callable[..., nn.Module]] = MappingProxyType({
    "Linear": lambda d, c, o: NoisySoftmax(d, c, alpha2=0.0),
    "NoisySoftmax": lambda d, c, o: NoisySoftmax(d, c, alpha2=o["alpha2"], noise=o["noise"],
                                                 xi_per=o["xi_per"], generator=o["generator"]),
    "TemperatureSoftmax": lambda d, c, o: TemperatureSoftmax(d, c,
                                                             temperature=o["temperature"]),
    "CosFace": lambda d, c, o: CosFace(d, c, s=o["s"], m=o["m"]),
    "ArcFace": lambda d, c, o: ArcFace(d, c, s=o["s"], m=o["m"], easy_margin=o["easy_margin"]),
})
#: How each loss class of the catalogue (:attr:`satkit.methods.Method.loss`) is built from
#: the method's settings.
_LOSSES: Mapping[str, Callable[[dict], nn.Module]] = MappingProxyType({
    "CrossEntropyLoss": lambda o: nn.CrossEntropyLoss(),
    "LabelSmoothingCrossEntropy": lambda o: LabelSmoothingCrossEntropy(epsilon=o["epsilon"]),
    "ConfidencePenaltyLoss": lambda o: ConfidencePenaltyLoss(beta=o["beta"]),
    "DisturbLabelLoss": lambda o: DisturbLabelLoss(alpha=o["disturb_alpha"],
                                                   generator=o["generator"]),
    "FocalLoss": lambda o: FocalLoss(gamma=o["gamma"]),
})


def make_head_and_loss(
    name: str,
    in_features: int,
    num_classes: int,
    *,
    alpha2: float = DEFAULT_ALPHA2,
    noise: NoiseFamily = "annealed",
    xi_per: Literal["sample", "batch"] = "sample",
    epsilon: float | None = None,
    beta: float | None = None,
    disturb_alpha: float | None = None,
    gamma: float | None = None,
    temperature: float | None = None,
    s: float | None = None,
    m: float | None = None,
    easy_margin: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[nn.Module, Callable[[Tensor, Tensor], Tensor]]:
    """Build the head and the training loss of one method of :data:`LOSSES`.

    Only the settings of the chosen method are read (and validated); the others are ignored.
    A setting left at None takes the method's default from the catalogue
    (:data:`satkit.methods.METHODS`).

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
        m: margin of the margin heads (default CosFace 0.35 in cosine units, ArcFace 0.5 rad).
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
    if name not in METHODS:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(METHODS)}")
    method = METHODS[name]
    given = {"epsilon": epsilon, "beta": beta, "disturb_alpha": disturb_alpha, "gamma": gamma,
             "temperature": temperature, "s": s, "m": m}
    options = {}
    for setting in method.settings:  # the catalogue's default and valid interval
        value = setting.default if given[setting.kwarg] is None else given[setting.kwarg]
        options[setting.kwarg] = setting.check(value, setting.kwarg)
    options.update(alpha2=alpha2, noise=noise, xi_per=xi_per, easy_margin=easy_margin,
                   generator=generator)
    return (_HEADS[method.head](in_features, num_classes, options),
            _LOSSES[method.loss](options))
