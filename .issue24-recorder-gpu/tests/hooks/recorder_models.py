"""Tiny models and data for the recorder tests (CPU, float32, seconds at most).

A plain module with a unique name (not ``conftest``) so that test modules and the processes the
distributed test spawns can import it; ``conftest.py`` turns it into fixtures.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satkit import NoisySoftmax
from satkit.functional import noisy_logits

D_IN, D_FEAT, CLASSES = 5, 6, 4


class FixedXiHead(NoisySoftmax):
    """A NoisySoftmax whose xi is a fixed function of the features (not a random draw).

    So a batch split into micro-batches or across ranks gets the same noise per sample as the
    whole batch, which makes those runs comparable exactly.
    """

    def forward(self, features: Tensor, target: Tensor | None = None) -> Tensor:
        if target is None or not self.noisy:
            return super().forward(features, target)
        xi = torch.cos(7.0 * features.detach().sum(dim=1))
        logits, noise = noisy_logits(features, self.weight, target, alpha2=self.alpha2, xi=xi)
        self.last_noise, self.last_target = noise.detach(), target.detach()
        return logits


class TinyNet(nn.Module):
    """Linear -> tanh -> head; ``forward(x, y)`` passes the target to a Noisy Softmax head."""

    def __init__(self, head: nn.Module, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Linear(D_IN, D_FEAT)
        self.head = head
        torch.manual_seed(seed + 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn_like(self.head.weight))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = torch.tanh(self.body(x))
        return self.head(h, y) if isinstance(self.head, NoisySoftmax) else self.head(h)


def make_net(kind: str = "fixed", alpha2: float = 0.5, seed: int = 0) -> TinyNet:
    """``kind``: "fixed" (FixedXiHead), "noisy" (NoisySoftmax, seeded draws), "linear"."""
    if kind == "linear":
        head: nn.Module = nn.Linear(D_FEAT, CLASSES, bias=False)
    elif kind == "noisy":
        head = NoisySoftmax(D_FEAT, CLASSES, alpha2=alpha2,
                            generator=torch.Generator().manual_seed(seed + 7))
    else:
        head = FixedXiHead(D_FEAT, CLASSES, alpha2=alpha2)
    return TinyNet(head, seed)


def make_data(n: int = 12, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randn(n, D_IN, generator=g) * 2, torch.randint(0, CLASSES, (n,), generator=g)


def train_step(net: TinyNet, x: Tensor, y: Tensor, rec=None, *, index=None, lr=0.0,
               loss_kw: bool = False) -> Tensor:
    """forward -> mean CE -> backward -> rec.step -> SGD update with ``lr``."""
    net.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x, y), y)
    loss.backward()
    if rec is not None:
        rec.step(y, index=index, loss=loss.detach() if loss_kw else None)
    if lr:
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad
    return loss.detach()


def hand_token_columns(head: nn.Linear, h: Tensor, y: Tensor, tau: float = 0.5,
                       ignore_index: int = -100) -> tuple[dict[str, float], np.ndarray]:
    """The metrics row of one step of an ``nn.Linear`` head on features ``h`` (N, T, D) with
    targets ``y`` (N, T), in float64 numpy: loss = mean cross-entropy over the positions whose
    target is not ``ignore_index``; also their p_y."""
    w = head.weight.detach().double().numpy()
    b = head.bias.detach().double().numpy()
    c, d = w.shape
    x = h.detach().double().numpy().reshape(-1, d)
    t = y.numpy().reshape(-1)
    keep = t != ignore_index
    x, t = x[keep], t[keep]
    f = x @ w.T + b
    p_all = np.exp(f - f.max(1, keepdims=True))
    p_all /= p_all.sum(1, keepdims=True)
    n = len(t)
    p = p_all[np.arange(n), t]
    g = p_all.copy()
    g[np.arange(n), t] -= 1.0  # per-position dL_i/df
    gx = g @ w
    grad_w = g.T @ x / n
    others = np.where(np.eye(c, dtype=bool)[t], -np.inf, f).max(1)
    return {"batch_size": n, "loss": -np.log(p).mean(), "p_target_mean": p.mean(),
            "p_target_median": np.median(p), "p_target_noisy_mean": p.mean(),
            f"saturated_frac_{tau:g}": np.mean(p >= tau),
            "grad_target_mean": np.abs(g[np.arange(n), t]).mean(),
            "grad_logits_norm_mean": np.linalg.norm(g, axis=1).mean(),
            "grad_features_norm_mean": np.linalg.norm(gx, axis=1).mean(),
            "grad_weight_norm": np.linalg.norm(grad_w),
            "feature_norm_mean": np.linalg.norm(x, axis=1).mean(),
            "weight_norm_target_mean": np.linalg.norm(w[t], axis=1).mean(),
            "logit_target_mean": f[np.arange(n), t].mean(),
            "logit_margin_mean": (f[np.arange(n), t] - others).mean(), "noise_max": 0.0}, p
