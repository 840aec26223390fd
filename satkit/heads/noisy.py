"""``NoisySoftmax``: a bias-free linear classifier head with Noisy Softmax (CVPR 2017, Eq. 5).

The head owns the class weights because the noise depends on them (||W_y|| and cos theta_y);
the maths lives in :func:`satkit.functional.noisy_logits`, the module only holds settings.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from satkit.functional import check_alpha2, check_noise, noisy_logits
from satkit.heads.checks import check_forward, check_sizes

__all__ = ["NoisySoftmax"]


class NoisySoftmax(nn.Module):
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
        alpha2: float = 0.1,
        noise: Literal["annealed", "amplitude", "free", "negative"] = "annealed",
        xi_per: Literal["sample", "batch"] = "sample",
        bias: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_sizes(in_features, num_classes)
        if xi_per not in ("sample", "batch"):
            raise ValueError(f"xi_per must be 'sample' or 'batch', got {xi_per!r}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.alpha2 = check_alpha2(alpha2)
        self.noise = check_noise(noise)
        self.xi_per = xi_per
        self.generator = generator
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(num_classes, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(num_classes, **factory)) if bias else None
        self.reset_parameters()
        self.last_noise: Tensor | None = None
        self.last_target: Tensor | None = None
        self._values_checked = False

    def reset_parameters(self) -> None:
        """Initialise like ``nn.Linear`` (Kaiming-uniform weights, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def noisy(self) -> bool:
        """Whether a forward with a target in the current mode adds noise."""
        return self.training and self.alpha2 > 0

    def forward(self, features: Tensor, target: Tensor | None = None) -> Tensor:
        """Return the logits (N, C); noisy on the target column when training with a target."""
        check_forward(features, target, in_features=self.in_features,
                      num_classes=self.num_classes, first_call=not self._values_checked)
        with torch.autocast(device_type=features.device.type, enabled=False):
            x = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features
            if target is None or not self.noisy:
                logits = torch.nn.functional.linear(x, self.weight, self.bias)
                noise = logits.new_zeros(x.shape[0])
            else:
                xi = None
                if self.xi_per == "batch":
                    xi = torch.randn((), generator=self.generator, device=x.device, dtype=x.dtype)
                elif self.generator is not None:
                    xi = torch.randn(x.shape[0], generator=self.generator, device=x.device,
                                     dtype=x.dtype)
                logits, noise = noisy_logits(
                    x, self.weight, target, alpha2=self.alpha2, bias=self.bias, xi=xi,
                    noise=self.noise, check_values=False,  # checked above
                )
        self._values_checked = True
        self.last_noise = noise.detach()
        self.last_target = None if target is None else target.detach()
        return logits

    def clean_logits(self, logits: Tensor, target: Tensor) -> Tensor:
        """Map the logits of the last training forward to the clean (eval-mode) logits.

        Adds ``last_noise`` back on the target column (Eq. 5 undone); no host sync.
        Shape: logits (N, C), target (N,) -> (N, C).
        """
        return logits.scatter_add(1, target[:, None], self.last_noise[:, None].to(logits.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"alpha2={self.alpha2}, noise={self.noise!r}, xi_per={self.xi_per!r}, "
                f"bias={self.bias is not None}")
