"""Typed run configuration: the single source of defaults for the trainer and the CLI.

The CLI (:mod:`satkit.cli`) builds its flags from these fields, and ``--config FILE.toml``
loads the same fields; every run writes its resolved config next to its outputs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from satkit.functional import NOISE_FAMILIES

__all__ = ["DATASETS", "LOSS_NAMES", "ConfigError", "TrainConfig", "config_from_dict"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "cifar100")
#: The CLI's ``--loss`` choices (``satkit.heads.LOSSES`` describes each).
LOSS_NAMES: tuple[str, ...] = ("softmax", "noisy", "label-smoothing", "confidence-penalty",
                               "disturb-label", "focal", "temperature", "cosface", "arcface")


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    ``alpha2`` is the paper's alpha^2; ``alpha2=0`` is the plain-softmax baseline (the same
    ``NoisySoftmax`` head with the noise off). ``loss`` picks the method: Noisy Softmax
    (default) or one of the regularisers it is compared with; each reads only its own
    settings (``epsilon``, ``beta``, ``disturb_alpha``, ``gamma``, ``temperature``,
    ``scale``/``margin``). The learning rate is divided by ``lr_gamma``'s
    inverse at each fraction of the total epochs in ``lr_milestones`` (the paper's "lr 0.1
    divided by 10 at fixed steps", PAPER.md section 6).
    """

    dataset: Literal["digits", "mnist", "cifar10", "cifar100"] = "digits"
    model: str | None = None
    """Model preset (see ``satkit.models.PRESETS``); default: the data set's own."""
    loss: Literal["softmax", "noisy", "label-smoothing", "confidence-penalty", "disturb-label",
                  "focal", "temperature", "cosface", "arcface"] = "noisy"
    """The method: Noisy Softmax or a softmax regulariser to compare it with."""
    alpha2: float = 0.1
    """Noisy Softmax's alpha^2, the noise variance (0 = plain softmax)."""
    noise: Literal["annealed", "amplitude", "free", "negative"] = "annealed"
    xi_per: Literal["sample", "batch"] = "sample"
    epsilon: float = 0.1
    """label-smoothing: the smoothing epsilon."""
    beta: float = 0.1
    """confidence-penalty: weight of the entropy bonus."""
    disturb_alpha: float = 0.1
    """disturb-label: probability of redrawing a label."""
    gamma: float = 2.0
    """focal: the focusing exponent."""
    temperature: float = 2.0
    """temperature: training logits are divided by it."""
    scale: float = 30.0
    """cosface/arcface: the scale s."""
    margin: float | None = None
    """cosface/arcface: the margin m (default 0.35 for cosface, 0.5 rad for arcface)."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    augment: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    """bf16 autocast on CUDA (the loss stays float32); ignored on CPU."""
    compile: bool = False
    seed: int = 0
    split_seed: int = 0
    """Seed of the digits train/test split, kept apart from ``seed`` so seeds share a test set."""
    data_dir: str | None = None
    out: str | None = None
    """Run directory; default ``runs/<dataset>_alpha2=<alpha2>_seed=<seed>``."""
    resume: bool = False
    thresholds: tuple[float, ...] = (0.9, 0.99)
    every: int = 1
    flush_every: int = 100
    histogram_every: int = 100
    quiet: bool = False
    figures: bool = True
    """Save figures/dashboard.png at the end of the run."""

    def __post_init__(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("loss", self.loss, LOSS_NAMES)
        _check_choice("noise", self.noise, NOISE_FAMILIES)
        _check_choice("xi_per", self.xi_per, ("sample", "batch"))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        for name in ("epochs", "batch_size", "every", "flush_every", "histogram_every"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_int("split_seed", self.split_seed, minimum=0)
        _check_real("alpha2", self.alpha2, lo=0.0)
        _check_real("epsilon", self.epsilon, lo=0.0, hi=1.0, hi_open=True)
        _check_real("beta", self.beta, lo=0.0)
        _check_real("disturb_alpha", self.disturb_alpha, lo=0.0, hi=1.0)
        _check_real("gamma", self.gamma, lo=0.0)
        _check_real("temperature", self.temperature, lo=0.0, lo_open=True)
        _check_real("scale", self.scale, lo=0.0, lo_open=True)
        if self.margin is not None:
            _check_real("margin", self.margin, lo=0.0, hi=math.pi / 2)
        _check_real("lr", self.lr, lo=0.0, lo_open=True)
        _check_real("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True)
        _check_real("weight_decay", self.weight_decay, lo=0.0)
        _check_real("lr_gamma", self.lr_gamma, lo=0.0, hi=1.0, lo_open=True)
        for name in ("lr_milestones", "thresholds"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ConfigError(f"{name} must be a tuple of numbers, got {values!r}")
            for v in values:
                _check_real(name, v, lo=0.0, hi=1.0, lo_open=True, hi_open=name == "thresholds")
            if list(values) != sorted(set(values)):
                raise ConfigError(f"{name} must be strictly increasing, got {values!r}")
        if not self.thresholds:
            raise ConfigError("thresholds must hold at least one value in (0, 1)")
        for name in ("model", "data_dir", "out"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty string or None, got {value!r}")
        for name in ("augment", "amp", "compile", "resume", "quiet", "figures"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def method(self) -> str:
        """The method's name in reports: ``loss``, but "softmax" for Noisy Softmax at alpha2=0."""
        return "softmax" if self.loss == "noisy" and self.alpha2 == 0 else self.loss

    @property
    def effective_alpha2(self) -> float:
        """alpha2 as applied: 0 unless the method is Noisy Softmax."""
        return self.alpha2 if self.loss == "noisy" else 0.0

    def head_options(self) -> dict[str, Any]:
        """Keyword arguments of ``satkit.heads.make_head_and_loss`` for this config."""
        return {"alpha2": self.alpha2, "noise": self.noise, "xi_per": self.xi_per,
                "epsilon": self.epsilon, "beta": self.beta, "disturb_alpha": self.disturb_alpha,
                "gamma": self.gamma, "temperature": self.temperature, "s": self.scale,
                "m": self.margin}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready flat dict of the fields (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return config_from_dict({**self.to_dict(), **changes}, base=None)


def config_from_dict(values: dict[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from a dict (a parsed TOML file, or JSON).

    Lists become tuples; ints are accepted for float fields. Unknown keys raise.

    Raises:
        ConfigError: an unknown key or an invalid value, naming it.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; "
                          f"known keys: {', '.join(sorted(known))}")
    merged = {**(dataclasses.asdict(base) if base else {}), **values}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in merged:
            continue
        v = merged[f.name]
        if isinstance(v, list):
            merged[f.name] = tuple(v)
        elif f.type == "float" and isinstance(v, int) and not isinstance(v, bool):
            merged[f.name] = float(v)
    try:
        return TrainConfig(**merged)
    except TypeError as exc:  # e.g. a wrong type caught by the dataclass itself
        raise ConfigError(str(exc)) from exc


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_real(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        interval = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ConfigError(f"{name} must be a finite number in {interval}, got {value!r}")

