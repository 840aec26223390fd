"""Temperature-scaled softmax: a linear head whose training logits are divided by T.

With T > 1 the training softmax is softer, so p_y approaches 1 only once the clean logit gap is
T times larger: saturation of the *training* probability is postponed, while the clean (eval)
logits are the plain linear ones. Unlike Noisy Softmax the change acts on every logit, not only
the target's, and does not anneal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from satkit.heads.base import ClassifierHead
from satkit.methods import TEMPERATURE

__all__ = ["TemperatureSoftmax", "temperature_logits"]


def temperature_logits(
    features: Tensor, weight: Tensor, bias: Tensor | None = None, *, temperature: float
) -> Tensor:
    """``(features @ weight.T + bias) / T``; ``T = 1`` is the plain linear layer bit for bit.

    Args:
        features: X, (N, D).
        weight: W, (C, D).
        bias: optional (C,).
        temperature: T > 0.

    Returns:
        The logits, (N, C).

    Raises:
        ValueError: T not finite or <= 0.

    Example:
        >>> temperature_logits(torch.ones(1, 2), torch.ones(3, 2), temperature=2.0)
        tensor([[1., 1., 1.]])
    """
    temperature = TEMPERATURE.check(temperature)
    logits = F.linear(features, weight, bias)
    return logits if temperature == 1.0 else logits / temperature


class TemperatureSoftmax(ClassifierHead):
    """Bias-free linear head whose training logits are the linear logits divided by T.

    Training mode with a target: ``logits = W X / T``. Eval mode or no target: the clean logits
    ``W X``. ``last_noise`` (N,) is the clean target logit minus the training one,
    ``f_y (1 - 1/T)``: unlike the other heads' it can be negative (T > 1 and f_y < 0, or T < 1
    and f_y > 0), because a temperature rescales the logit rather than lowering it.
    :meth:`clean_logits` multiplies by T (the exact inverse on every column, not only the
    target's, which adding ``last_noise`` would not be).

    Args:
        in_features: D.
        num_classes: C >= 2.
        temperature: T > 0 (default 2.0; T = 1 is plain softmax).
        bias: add a learnable bias (default off, like the paper's head).

    Shape:
        features (N, D), target (N,) int64 -> logits (N, C), float32.

    Raises:
        ValueError: bad settings, or bad inputs at forward.

    Example:
        >>> head = TemperatureSoftmax(8, 3, temperature=2.0)
        >>> h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> logits = head(h, y)
        >>> torch.allclose(head.clean_logits(logits, y), head.eval()(h))
        True
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        temperature: float = TEMPERATURE.default,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.temperature = TEMPERATURE.check(temperature)
        self._last_scale = 1.0  # what the last forward multiplied the clean logits by

    def forward(self, features: Tensor, target: Tensor | None = None) -> Tensor:
        """Return the logits (N, C); divided by T when training with a target."""
        self._last_scale = 1.0 / self.temperature if self.applies(target) else 1.0
        return super().forward(features, target)

    def training_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None,
                         target: Tensor) -> tuple[Tensor, Tensor]:
        logits = temperature_logits(x, weight, bias, temperature=self.temperature)
        f_y = logits.detach().gather(1, target[:, None]).squeeze(1)
        return logits, f_y * (self.temperature - 1.0)  # = clean f_y - f_y / T

    def clean_logits(self, logits: Tensor, target: Tensor) -> Tensor:
        """Map the logits of the last forward to the clean ones: multiply by T if it applied.

        No host sync. Equal to the eval-mode output up to rounding (exactly for a power-of-two
        T). ``target`` is unused; it is there for the common head interface.
        Shape: logits (N, C), target (N,) -> (N, C).
        """
        del target
        return logits if self._last_scale == 1.0 else logits * self.temperature

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"temperature={self.temperature}, bias={self.bias is not None}")
