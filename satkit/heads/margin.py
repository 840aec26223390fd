"""Normalised margin heads: CosFace / AM-Softmax and ArcFace.

Both heads normalise the features X and the class weights W_j, so every logit is a scaled
cosine ``s cos theta_j``, and during training they lower only the target logit by a margin:

* CosFace (Wang et al., CVPR 2018) = AM-Softmax (Wang et al., IEEE SPL 2018), additive cosine
  margin: ``f_y = s (cos theta_y - m)``.
* ArcFace (Deng et al., CVPR 2019), additive angular margin: ``f_y = s cos(theta_y + m)``
  (ArcFace Eq. 3).

Like Noisy Softmax they postpone saturation by lowering f_y during training, but the margin is
fixed: once cos theta_y exceeds the other cosines by about the margin, p_y saturates again.
The *clean* logits, which the saturation recorder turns into the clean p_y, are the head's
eval-mode logits ``s cos theta_j``: margin-free but scaled by s (not the plain linear logits).

The maths is in pure functions (:func:`cosine_logits`, :func:`cosface_logits`,
:func:`arcface_logits`); the heads own the weights and call them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from satkit.functional import check_target
from satkit.heads.base import ClassifierHead
from satkit.methods import ARCFACE_MARGIN, COSFACE_MARGIN, SCALE, Setting
from satkit.validation import check_bool

__all__ = ["ArcFace", "CosFace", "arcface_logits", "cosface_logits", "cosine_logits"]

def cosine_logits(features: Tensor, weight: Tensor) -> Tensor:
    """cos theta_j between each feature row and each class-weight row.

    A zero feature (or weight) row gives cosines of 0, not NaN (``F.normalize`` clamps the norm).

    Args:
        features: X, (N, D).
        weight: W, (C, D).

    Returns:
        cos theta, (N, C), in [-1, 1] up to rounding.

    Example:
        >>> cosine_logits(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
        tensor([[1., 0.]])
    """
    return F.linear(F.normalize(features, dim=1), F.normalize(weight, dim=1))


def _check_inputs(features: Tensor, weight: Tensor, target: Tensor) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2:
        shape = getattr(features, "shape", features)
        raise ValueError(f"features must be a 2-D tensor (N, D), got {shape}")
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(f"weight must be a 2-D tensor (C, D) with D={features.shape[1]}, "
                         f"got {getattr(weight, 'shape', weight)}")
    check_target(target, features.shape[0], weight.shape[0],
                 check_values=features.device.type == "cpu")


def cosface_logits(
    features: Tensor, weight: Tensor, target: Tensor, *, s: float, m: float
) -> tuple[Tensor, Tensor]:
    """CosFace / AM-Softmax training logits: ``s cos theta_j``, target ``s (cos theta_y - m)``.

    Wang et al., "CosFace", CVPR 2018; Wang et al., "Additive Margin Softmax for Face
    Verification", IEEE SPL 2018. ``m = 0`` gives the scaled cosine logits ``s cos theta`` exactly.

    Args:
        features: X, (N, D).
        weight: W, (C, D).
        target: y, (N,) int64.
        s: the scale, > 0.
        m: the additive cosine margin, in [0, 1].

    Returns:
        ``(logits, noise)``: logits (N, C) and the amount the target logit lies below the clean
        ``s cos theta_y``, (N,), here the constant ``s m``.

    Raises:
        ValueError/TypeError: bad shapes, target dtype or values, s or m out of range.

    Example:
        >>> x, w, y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 3])
        >>> logits, noise = cosface_logits(x, w, y, s=30.0, m=0.35)
        >>> torch.allclose(noise, torch.full((4,), 10.5))
        True
    """
    s, m = SCALE.check(s, "s"), COSFACE_MARGIN.check(m, "m")
    _check_inputs(features, weight, target)
    logits = s * cosine_logits(features, weight)
    noise = logits.new_full((features.shape[0],), s * m)
    return logits.scatter_add(1, target[:, None], -noise[:, None]), noise


def arcface_logits(
    features: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    s: float,
    m: float,
    easy_margin: bool = False,
) -> tuple[Tensor, Tensor]:
    """ArcFace training logits: ``s cos theta_j``, target ``s cos(theta_y + m)``.

    Deng et al., "ArcFace", CVPR 2019, Eq. 3, with the numerically safe form of the authors'
    implementation (insightface):

    * ``cos(theta + m) = cos theta cos m - sin theta sin m`` with cos theta clamped to [-1, 1]
      and ``sin theta = sqrt(max(1 - cos^2 theta, eps))`` (eps = the dtype's machine epsilon),
      so the gradient stays finite at theta = 0; the error this adds is at most sqrt(eps)
      (3.5e-4 in float32).
    * When ``theta + m > pi`` (``cos theta < th = cos(pi - m)``), cos(theta + m) would *rise*
      again as theta grows, rewarding a worse fit. There the target logit falls back to the
      CosFace-like ``s (cos theta - mm)`` with ``mm = sin(pi - m) m = m sin m`` (the first-order
      size of the angular margin at that point), so f_y keeps decreasing in theta (with a
      small downward step at the switch).
    * ``easy_margin=True`` instead applies the margin only where ``cos theta > 0`` (theta below a
      right angle) and leaves the target logit at ``s cos theta`` elsewhere. The target logit
      then jumps *up* by ``s sin m`` as theta crosses pi/2 (it is not monotone), so badly
      fitted samples get no margin at all.

    ``m = 0`` gives ``s cos theta`` (up to the clamp at +-1).

    Args:
        features: X, (N, D).
        weight: W, (C, D).
        target: y, (N,) int64.
        s: the scale, > 0.
        m: the additive angular margin in radians, in [0, pi/2].
        easy_margin: the margin only for cos theta_y > 0 (see above).

    Returns:
        ``(logits, noise)``: logits (N, C) and ``s cos theta_y`` minus the training target
        logit, (N,), >= 0 (0 where ``easy_margin`` switched the margin off).

    Raises:
        ValueError/TypeError: bad shapes, target dtype or values, s or m out of range.

    Example:
        >>> x, w, y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 3])
        >>> logits, noise = arcface_logits(x, w, y, s=30.0, m=0.5)
        >>> bool((noise >= 0).all()) and logits.shape == (4, 5)
        True
    """
    s, m = SCALE.check(s, "s"), ARCFACE_MARGIN.check(m, "m")
    _check_inputs(features, weight, target)
    cos = cosine_logits(features, weight)
    index = target[:, None]
    cos_y = cos.gather(1, index).squeeze(1)
    # Only the target column needs the angle: (N,) work, not (N, C).
    c = cos_y.clamp(-1.0, 1.0)
    sin = (1.0 - c * c).clamp_min(torch.finfo(c.dtype).eps).sqrt()
    phi = c * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        phi = torch.where(c > 0, phi, c)
    else:
        th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
        phi = torch.where(c > th, phi, c - mm)
    target_logit = s * phi
    noise = s * cos_y - target_logit
    return (s * cos).scatter(1, index, target_logit[:, None]), noise


class _MarginHead(ClassifierHead):
    """Shared maths of the margin heads: clean logits ``s cos theta``, a margin in training."""

    margin: Setting  #: the margin's default and range (:mod:`satkit.methods`)

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        s: float,
        m: float,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, device=device, dtype=dtype)
        self.s = SCALE.check(s, "s")
        self.m = self.margin.check(m, "m")

    def clean_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The clean, margin-free logits ``s cos theta_j``."""
        return self.s * cosine_logits(x, weight)

    def training_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None,
                         target: Tensor) -> tuple[Tensor, Tensor]:
        return self._margin_logits(x, weight, target)

    def _margin_logits(self, features: Tensor, weight: Tensor,
                       target: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class CosFace(_MarginHead):
    """CosFace / AM-Softmax head: normalised weights and features, additive cosine margin.

    Training logits (with a target): ``s cos theta_j``, target ``s (cos theta_y - m)``
    (Wang et al., CVPR 2018; Wang et al., IEEE SPL 2018; see :func:`cosface_logits`). In eval
    mode or without a target: the clean logits ``s cos theta_j``. ``last_noise`` (N,) is
    ``s cos theta_y`` minus the training target logit, here ``s m`` (zeros in eval mode).

    Args:
        in_features: D.
        num_classes: C >= 2.
        s: the scale, > 0 (default 30, the AM-Softmax paper's choice).
        m: the cosine margin in [0, 1] (default 0.35, CosFace's and AM-Softmax's best).

    Shape:
        features (N, D), target (N,) int64 -> logits (N, C), float32.

    Raises:
        ValueError: bad settings, or bad inputs at forward.

    Example:
        >>> head = CosFace(8, 3)
        >>> h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> torch.nn.functional.cross_entropy(head(h, y), y).backward()
        >>> head.last_noise
        tensor([10.5000, 10.5000, 10.5000, 10.5000])
    """

    margin = COSFACE_MARGIN

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        s: float = SCALE.default,
        m: float = COSFACE_MARGIN.default,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, s=s, m=m, device=device, dtype=dtype)

    def _margin_logits(self, features: Tensor, weight: Tensor,
                       target: Tensor) -> tuple[Tensor, Tensor]:
        return cosface_logits(features, weight, target, s=self.s, m=self.m)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"s={self.s}, m={self.m}")


class ArcFace(_MarginHead):
    """ArcFace head: normalised weights and features, additive angular margin.

    Training logits (with a target): ``s cos theta_j``, target ``s cos(theta_y + m)``
    (Deng et al., CVPR 2019), with the numerically safe handling and the ``theta + m > pi``
    fallback described in :func:`arcface_logits`. In eval mode or without a target: the clean
    logits ``s cos theta_j``. ``last_noise`` (N,) is ``s cos theta_y`` minus the training target
    logit (>= 0; zeros in eval mode).

    Args:
        in_features: D.
        num_classes: C >= 2.
        s: the scale, > 0 (default 30; the paper uses 64 for face recognition with many
            classes, which saturates a 10-class problem almost at once).
        m: the angular margin in radians, in [0, pi/2] (default 0.5, the paper's).
        easy_margin: apply the margin only where cos theta_y > 0 (see :func:`arcface_logits`).

    Shape:
        features (N, D), target (N,) int64 -> logits (N, C), float32.

    Raises:
        ValueError: bad settings, or bad inputs at forward.

    Example:
        >>> head = ArcFace(8, 3)
        >>> h, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> torch.nn.functional.cross_entropy(head(h, y), y).backward()
        >>> bool((head.last_noise > 0).all())
        True
    """

    margin = ARCFACE_MARGIN

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        s: float = SCALE.default,
        m: float = ARCFACE_MARGIN.default,
        easy_margin: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, num_classes, s=s, m=m, device=device, dtype=dtype)
        self.easy_margin = check_bool("easy_margin", easy_margin)

    def _margin_logits(self, features: Tensor, weight: Tensor,
                       target: Tensor) -> tuple[Tensor, Tensor]:
        return arcface_logits(features, weight, target, s=self.s, m=self.m,
                              easy_margin=self.easy_margin)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"s={self.s}, m={self.m}, easy_margin={self.easy_margin}")
