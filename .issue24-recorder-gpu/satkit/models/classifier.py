"""``Classifier``: any feature extractor composed with any classifier head.

The head is the last layer (a :class:`satkit.NoisySoftmax`, or any ``nn.Linear``-like module);
keeping it a separate attribute lets the saturation recorder hook the features and the head
without knowing the architecture.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

__all__ = ["Classifier", "head_accepts_target"]


def head_accepts_target(head: nn.Module) -> bool:
    """Whether ``head(features, target)`` is a valid call: its ``forward`` takes a ``target``.

    True when ``forward`` has a parameter named ``target`` or a second positional parameter
    (e.g. :class:`satkit.NoisySoftmax`); False for ``nn.Linear``, whose forward takes one input.
    """
    try:
        params = inspect.signature(head.forward).parameters.values()
    except (TypeError, ValueError):  # a builtin or C-implemented forward: assume input only
        return False
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return any(p.name == "target" for p in params) or len(positional) >= 2 or any(
        p.kind is p.VAR_POSITIONAL for p in positional)


class Classifier(nn.Module):
    """``head(features(x), target)``: logits from a feature extractor and a head.

    In training, the target is passed to the head when it accepts one (Noisy Softmax needs it
    to perturb the target logit); a plain ``nn.Linear`` head is called with the features only,
    so ``model(x, y)`` works with either.

    Args:
        features: maps a batch of inputs to features (N, D).
        head: maps features (N, D) to logits (N, C); may accept ``(features, target)``.

    Shape:
        x (N, ...) and target (N,) int64 or None -> logits (N, C).

    Example:
        >>> import torch
        >>> model = Classifier(nn.Flatten(), nn.Linear(12, 3))
        >>> model(torch.randn(2, 3, 2, 2)).shape
        torch.Size([2, 3])
    """

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.head_takes_target = head_accepts_target(head)

    def forward(self, x: Tensor, target: Tensor | None = None) -> Tensor:
        """Return the logits; ``target`` reaches the head only if the head accepts it."""
        h = self.features(x)
        if target is not None and self.head_takes_target:
            return self.head(h, target)
        return self.head(h)
