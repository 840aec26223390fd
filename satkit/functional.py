"""The Noisy Softmax maths as pure functions (Chen, Deng, Du, CVPR 2017, arXiv 1708.03769).

Eq. 5 of the paper replaces, during training only, the target logit of a bias-free last layer

    f_y^noise = f_y - alpha * ||W_y|| ||X|| (1 - cos theta_y) * |xi|,    xi ~ N(0, 1)

and the loss is the ordinary softmax cross-entropy of the logit vector with f_y replaced. The
noise is written here as ``alpha |xi| (||W_y|| ||X|| - W_y . X)``, which equals the paper's form
but never divides by a norm, so it stays finite (and differentiable) for zero features.

``alpha2`` is the paper's alpha^2 (the variance of the noise multiplier), so values read like
the paper's tables (1, 0.5, 0.1, 0.05).

Validation that needs the *values* of a tensor (targets in range, finite features) reads them,
which on an accelerator would force a host sync on every step. It therefore runs only for CPU
tensors, or when ``check_values=True`` is passed (the ``NoisySoftmax`` head does that once, on
its first training forward). Shapes and dtypes are always checked: that costs nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from satkit.methods import NOISE_FAMILIES, NoiseFamily
from satkit.validation import check_choice, check_real, is_real

__all__ = ["NOISE_FAMILIES", "NoiseFamily", "clean_logits", "noisy_logits", "noise_magnitude",
           "target_probability"]

def check_alpha2(alpha2: object) -> float:
    """Return ``alpha2`` as a float, or raise if it is not a finite number >= 0."""
    if not is_real(alpha2) and not isinstance(alpha2, float):  # nan/inf: a ValueError below
        raise TypeError(f"alpha2 must be a real number >= 0 (the paper's alpha^2), got {alpha2!r}")
    return check_real("alpha2 (the paper's alpha^2)", alpha2, lo=0.0)


def check_noise(noise: object) -> str:
    """Return ``noise`` if it names a noise family of the paper's ablation, else raise."""
    return check_choice("noise", noise, NOISE_FAMILIES)


def check_target(target: object, n: int, num_classes: int, *, check_values: bool) -> Tensor:
    """Check that ``target`` is an int64 tensor of shape (n,) with values in [0, num_classes)."""
    if not isinstance(target, Tensor):
        raise TypeError("target must be a torch.Tensor of class indices, got "
                        f"{type(target).__name__}")
    if target.dtype != torch.int64:
        raise TypeError(f"target must have dtype torch.int64 (class indices), got {target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"target must have shape ({n},) to match features, got "
                         f"{tuple(target.shape)}")
    if check_values and n > 0:
        lo, hi = int(target.min()), int(target.max())  # sync point (CPU or explicit check only)
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"target values must lie in [0, {num_classes}) (num_classes={num_classes}), "
                f"got values in [{lo}, {hi}]"
            )
    return target


def _check_inputs(
    features: Tensor, weight: Tensor, bias: Tensor | None, *, check_values: bool
) -> None:
    for name, t in (("features", features), ("weight", weight)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D ({'N, D' if name == 'features' else 'C, D'}), "
                             f"got shape {tuple(t.shape)}")
    if features.shape[1] != weight.shape[1]:
        raise ValueError(f"features has D={features.shape[1]} but weight has D={weight.shape[1]}; "
                         "features (N, D) and weight (C, D) must agree on D")
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (weight.shape[0],)):
        shape = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias must be a tensor of shape ({weight.shape[0]},), got {shape}")
    if check_values and not bool(torch.isfinite(features).all()):  # sync point (CPU/explicit)
        raise ValueError("features contain NaN or Inf; the noisy logits would be meaningless")


def noise_magnitude(
    features: Tensor,
    weight_target: Tensor,
    abs_xi: Tensor,
    *,
    alpha: float,
    noise: str = "annealed",
) -> Tensor:
    """The amount subtracted from each target logit, for one noise family.

    Args:
        features: X, shape (N, D).
        weight_target: the target rows W_y, shape (N, D).
        abs_xi: |xi|, shape (N,) or a scalar tensor.
        alpha: sqrt(alpha2), the noise scale.
        noise: "annealed" (Eq. 5), "amplitude", "free" or "negative" (the paper's ablation;
            docs/concept.md, "The ablation families").

    Returns:
        The noise, shape (N,); differentiable in ``features`` and ``weight_target``.
    """
    n = features.shape[0]
    scale = alpha * abs_xi.expand(n)
    if noise == "free":
        return scale
    norms = (torch.linalg.vector_norm(weight_target, dim=1)
             * torch.linalg.vector_norm(features, dim=1))
    if noise == "amplitude":
        return scale * norms
    # ||W|| ||X|| (1 - cos theta) == ||W|| ||X|| - W . X, with no division by a norm.
    annealed = scale * (norms - (weight_target * features).sum(dim=1))
    return -annealed if noise == "negative" else annealed


def noisy_logits(
    features: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    alpha2: float,
    bias: Tensor | None = None,
    xi: Tensor | float | None = None,
    generator: torch.Generator | None = None,
    noise: NoiseFamily = "annealed",
    check_values: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """Logits of a linear classifier with Noisy Softmax's noise on the target logit (Eq. 5).

    Only the target column is changed; every other logit is ``features @ weight.T + bias``
    exactly. With ``alpha2 == 0`` the result is ``F.linear(features, weight, bias)`` bit for bit.
    Gradients are autograd's for Eq. 5 (derived in docs/concept.md, "The gradient"), with xi
    held constant.

    Args:
        features: X, shape (N, D), floating point.
        weight: class weights W, shape (C, D).
        target: class indices y, shape (N,), int64.
        alpha2: the paper's alpha^2 >= 0, the variance of the noise multiplier.
        bias: optional (C,). The paper's head is bias-free; a bias is added to every logit
            but takes no part in the noise (cos theta is the angle between W_y and X).
        xi: explicit standard-normal draws, shape (N,) or a scalar (one draw for the batch);
            their absolute value is used. If None, N draws from ``generator``.
        generator: the random generator for the draws (on the features' device).
        noise: the noise family, "annealed" (the method), "amplitude", "free" or "negative".
        check_values: read the values of ``target`` and ``features`` to check them (a host
            sync on accelerators). Default: only for CPU tensors.

    Returns:
        ``(logits, noise)``: logits (N, C) and the per-sample noise subtracted from the target
        logit (N,) (zeros when alpha2 == 0; negative for the "negative" family).

    Raises:
        TypeError: a wrong type or dtype (e.g. target not int64).
        ValueError: mismatched shapes, targets out of range, alpha2 < 0 or not finite, an
            unknown noise family, NaN/Inf features.

    Example:
        >>> x, w, y = torch.randn(4, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 3])
        >>> logits, noise = noisy_logits(x, w, y, alpha2=0.1, xi=torch.ones(4))
        >>> bool((noise >= 0).all()) and logits.shape == (4, 5)
        True
    """
    alpha2 = check_alpha2(alpha2)
    noise = check_noise(noise)
    if check_values is None:  # value checks are host reads: not inside a compiled graph
        check_values = (isinstance(features, Tensor) and features.device.type == "cpu"
                        and not torch.compiler.is_compiling())
    _check_inputs(features, weight, bias, check_values=check_values)
    n = features.shape[0]
    check_target(target, n, weight.shape[0], check_values=check_values)
    if target.device != features.device:
        raise ValueError(f"target is on {target.device} but features on {features.device}")

    logits = F.linear(features, weight, bias)
    if alpha2 == 0.0:
        return logits, logits.new_zeros(n)

    if xi is None:
        if generator is None:  # randn_like keeps a symbolic batch size under torch.compile
            abs_xi = torch.randn_like(logits[:, 0]).abs()
        else:
            abs_xi = torch.randn(n, generator=generator, device=features.device,
                                 dtype=features.dtype).abs()
    else:
        xi_t = torch.as_tensor(xi, dtype=features.dtype, device=features.device)
        if xi_t.dim() > 1 or (xi_t.dim() == 1 and xi_t.shape[0] != n):
            raise ValueError(f"xi must be a scalar or have shape ({n},), got {tuple(xi_t.shape)}")
        abs_xi = xi_t.abs()
    eps = noise_magnitude(features, weight[target], abs_xi, alpha=math.sqrt(alpha2), noise=noise)
    index = target.unsqueeze(1)
    noisy_target = logits.gather(1, index).squeeze(1) - eps
    return logits.scatter(1, index, noisy_target.unsqueeze(1)), eps


def clean_logits(logits: Tensor, target: Tensor, noise: Tensor) -> Tensor:
    """The clean logits of training logits whose target logit was lowered by ``noise``:
    ``noise`` added back on the target column, ``f_y = f_y^noise + noise`` (Eq. 5; a margin
    the same way). The one statement of this rule: the heads (``last_noise``) and the recorder
    (batched over many steps) call it. Out of place, no host sync.

    Shape: logits (N, C), target (N,) int64 (every value a column), noise (N,) -> (N, C).

    Example:
        >>> clean_logits(torch.zeros(2, 3), torch.tensor([0, 2]), torch.tensor([1.0, 0.5]))
        tensor([[1.0000, 0.0000, 0.0000],
                [0.0000, 0.0000, 0.5000]])
    """
    return logits.scatter_add(1, target.unsqueeze(1), noise.to(logits.dtype).unsqueeze(1))


def target_probability(logits: Tensor, target: Tensor) -> Tensor:
    """Softmax probability of the target class, p_y, per sample.

    Computed in float32 (or float64 for float64 input) through log-softmax for stability.

    Args:
        logits: (N, C).
        target: (N,) int64 class indices.

    Returns:
        p_y, shape (N,).

    Example:
        >>> target_probability(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor([0.2500, 0.2500])
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = getattr(logits, "shape", logits)
        raise ValueError(f"logits must be a 2-D tensor (N, C), got {shape}")
    check_target(target, logits.shape[0], logits.shape[1], check_values=False)
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logp = F.log_softmax(logits.to(dtype), dim=1)
    return logp.gather(1, target.unsqueeze(1)).squeeze(1).exp()
