"""``NoisySoftmax``: a bias-free linear classifier head with Noisy Softmax (CVPR 2017, Eq. 5).

The head owns the class weights because the noise depends on them (||W_y|| and cos theta_y);
the maths lives in :func:`satkit.functional.noisy_logits`, the module only holds settings.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from satkit.functional import check_alpha2, check_noise, noisy_logits
from satkit.heads.base import ClassifierHead
from satkit.methods import DEFAULT_ALPHA2, NoiseFamily
from satkit.validation import check_choice

__all__ = ["NoisySoftmax"]


class NoisySoftmax(ClassifierHead):
    """Last layer whose training logits carry Noisy Softmax's annealed target-logit noise.

    ``F.cross_entropy(head(h, y), y)`` is the Noisy Softmax loss. The noise is applied only in
    training mode and only when ``target`` is given; in eval mode, or with ``alpha2=0``, the
    logits are a plain bias-free linear layer's, bit for bit, so ``alpha2=0`` is the
    plain-softmax baseline through the same code.

    The logits are computed in float32 with autocast off (the head is a tiny (D x C) product),
    so under bf16/fp16 autocast the loss that follows is a float32 loss.

    After each forward the head keeps, without a host sync and detached from the graph,
    ``last_noise`` (N,) (zeros when no noise was applied) and ``last_target`` (N,) or None;
    the saturation recorder (:mod:`satkit.hooks`) reads them.

    Args:
        in_features: D, the feature dimension.
        num_classes: C.
        alpha2: the paper's alpha^2 >= 0 (variance of the noise multiplier); 0 = plain softmax.
        noise: "annealed" (Eq. 5), or the ablations "amplitude", "free", "negative".
        xi_per: "sample" (one draw per sample, the default) or "batch" (one draw per
            mini-batch, as in the author's Caffe layer).
        bias: add a learnable bias (the paper's head is bias-free).
        generator: optional ``torch.Generator`` for the draws (on the weights' device).

    Shape:
        features (N, D), target (N,) int64 -> logits (N, C), float32.

    Raises:
        ValueError/TypeError: bad settings at construction, bad inputs at forward (target
            values and finite features are checked on CPU, and once on an accelerator).

    Example:
        >>> head = NoisySoftmax(8, 3, alpha2=0.1)
        >>> h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> loss = torch.nn.functional.cross_entropy(head(h, y), y)
        >>> loss.backward()
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        alpha2: float = DEFAULT_ALPHA2,
        noise: NoiseFamily = "annealed",
        xi_per: Literal["sample", "batch"] = "sample",
        bias: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.alpha2 = check_alpha2(alpha2)
        self.noise = check_noise(noise)
        self.xi_per = check_choice("xi_per", xi_per, ("sample", "batch"))
        self.generator = generator

    @property
    def noisy(self) -> bool:
        """Whether a forward with a target in the current mode adds noise."""
        return self.training and self.alpha2 > 0

    def applies(self, target: Tensor | None) -> bool:
        return self.noisy and target is not None

    def training_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None,
                         target: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 5: the target logit lowered by the annealed noise (:func:`noisy_logits`)."""
        xi = None
        if self.xi_per == "batch":
            xi = torch.randn((), generator=self.generator, device=x.device, dtype=x.dtype)
        elif self.generator is not None:
            xi = torch.randn(x.shape[0], generator=self.generator, device=x.device,
                             dtype=x.dtype)
        return noisy_logits(x, weight, target, alpha2=self.alpha2, bias=bias, xi=xi,
                            noise=self.noise, check_values=False)  # checked in forward

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"alpha2={self.alpha2}, noise={self.noise!r}, xi_per={self.xi_per!r}, "
                f"bias={self.bias is not None}")
