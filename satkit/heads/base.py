"""What every classifier head shares: the contract the saturation recorder relies on, and the
plumbing that implements it once.

The contract (:class:`SaturationHead`), written down once:

* ``weight``: the class weights W, a (C, D) tensor (the recorder reads ||W_y|| and cos theta_y);
* ``forward(features, target=None)``: the *training logits* when the head is in training mode
  and gets a target (Noisy Softmax's noise, a margin, a temperature applied), the *clean*
  (eval-mode) logits otherwise;
* ``last_noise``: after each forward, detached (N,): how far the training target logit lies
  below the clean one (zeros when nothing was applied);
* ``last_target``: the target of the last forward, detached, or None;
* ``clean_logits(logits, target)``: maps the logits of the last forward to the clean ones,
  without a host sync;
* optionally, ``applies(target)``: whether a forward with this target changes the logits
  (when False the recorder takes them as clean), and ``validates_target = True``: the head
  refuses targets outside [0, C) (the recorder then does not check them again).

The recorder dispatches on this protocol, not on the class: a third-party head implementing it
is recorded as satkit's own.

Any module with a (C, D) ``weight`` whose forward maps features to logits through it (an
``nn.Linear``, an LM's output layer tied to its embedding) also works with the recorder: its
logits are taken as clean and its noise as zero. An embedding (its input is indices) and
transformers' ``Conv1D`` (its weight is stored (D, C)) are refused
(:func:`satkit.hooks.capture.check_head`).

:class:`ClassifierHead` implements the plumbing for satkit's heads: size checks, the weight
(and optional bias) Parameters with ``nn.Linear``'s initialisation, the input checks, the
float32 forward (autocast off; a half or bfloat16 head computes in float32 and returns float32
logits, so its loss is a float32 loss), ``last_noise``/``last_target`` and ``clean_logits``. A
head subclass writes only its maths: :meth:`ClassifierHead.clean_forward` and
:meth:`ClassifierHead.training_forward`.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satkit.functional import clean_logits
from satkit.heads.checks import check_forward, check_sizes

__all__ = ["ClassifierHead", "SaturationHead", "is_saturation_head"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@runtime_checkable
class SaturationHead(Protocol):
    """The head contract the saturation recorder relies on (see the module docstring)."""

    weight: Tensor
    last_noise: Tensor | None
    last_target: Tensor | None

    def clean_logits(self, logits: Tensor, target: Tensor) -> Tensor:
        """The clean (eval-mode) logits of the last forward, (N, C)."""
        ...


def is_saturation_head(obj: object) -> bool:
    """Whether ``obj`` implements :class:`SaturationHead` (has each of its members).

    ``isinstance(obj, SaturationHead)`` would say so too, but since Python 3.12 a runtime
    protocol check reads attributes statically and misses an ``nn.Module``'s parameters (kept
    in ``_parameters``, reached through ``__getattr__``): this check reads them as code does.
    """
    methods = [k for k, v in vars(SaturationHead).items()
               if callable(v) and not k.startswith("_")]
    return (all(hasattr(obj, name) for name in (*SaturationHead.__annotations__, *methods))
            and all(callable(getattr(obj, name)) for name in methods))


class ClassifierHead(nn.Module):
    """Base of satkit's heads: ``weight`` (C, D), optional ``bias`` (C,), and the contract.

    Its forward checks every target (:func:`satkit.heads.checks.check_forward`):
    ``validates_target`` is True.

    Args:
        in_features: D, the feature dimension.
        num_classes: C >= 2.
        bias: add a learnable bias.
        device, dtype: of the parameters (``nn.Linear``'s factory arguments). A float16 or
            bfloat16 head is computed in float32 (its parameters are upcast in forward).

    Raises:
        ValueError: bad sizes.
    """

    validates_target = True

    def __init__(self, in_features: int, num_classes: int, *, bias: bool = False,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        check_sizes(in_features, num_classes)
        self.in_features, self.num_classes = in_features, num_classes
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

    def applies(self, target: Tensor | None) -> bool:
        """Whether a forward with ``target`` in the current mode changes the logits (training
        mode with a target, by default)."""
        return self.training and target is not None

    def clean_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The clean logits (N, C) of float32 features; default ``F.linear``."""
        return F.linear(x, weight, bias)

    def training_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None,
                         target: Tensor) -> tuple[Tensor, Tensor]:
        """The training logits (N, C) and ``last_noise`` (N,); subclasses define it."""
        raise NotImplementedError

    def forward(self, features: Tensor, target: Tensor | None = None) -> Tensor:
        """Return the logits (N, C), float32: the training logits when :meth:`applies`, else
        the clean ones.

        Raises:
            ValueError/TypeError: features not (N, in_features), a bad target, NaN/Inf features
                (value checks on CPU, and once on an accelerator).
        """
        check_forward(features, target, in_features=self.in_features,
                      num_classes=self.num_classes, first_call=not self._values_checked)
        self._values_checked = True
        # float32 with autocast off: a tiny (D x C) product, and the loss stays float32.
        with torch.autocast(device_type=features.device.type, enabled=False):
            x = features.float() if features.dtype in _LOW_PRECISION else features
            weight = self.weight.to(x.dtype) if self.weight.dtype in _LOW_PRECISION \
                else self.weight
            bias = self.bias
            if bias is not None and bias.dtype in _LOW_PRECISION:
                bias = bias.to(x.dtype)
            if self.applies(target):
                logits, noise = self.training_forward(x, weight, bias, target)
            else:
                logits = self.clean_forward(x, weight, bias)
                noise = logits.new_zeros(x.shape[0])
        self.last_noise = noise.detach()
        self.last_target = None if target is None else target.detach()
        return logits

    def clean_logits(self, logits: Tensor, target: Tensor) -> Tensor:
        """Map the logits of the last forward to the clean ones: ``last_noise`` added back on
        the target column (:func:`satkit.functional.clean_logits`; no host sync). Shape:
        logits (N, C), target (N,) -> (N, C)."""
        return clean_logits(logits, target, self.last_noise)
