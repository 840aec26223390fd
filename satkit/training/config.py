"""Typed run configuration: the single source of defaults for the trainer and the CLI.

The CLI (:mod:`satkit.cli`) builds its flags from these fields, and ``--config FILE.toml``
loads the same fields; every run writes its resolved config next to its outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from satkit import methods
from satkit.columns import check_opt_in
from satkit.hooks.options import RecorderOptions
from satkit.methods import DEFAULT_ALPHA2, METHOD_NAMES, METHODS, NOISE_FAMILIES, NOISY
from satkit.validation import check_bool, check_choice, check_int, check_real, check_reals

__all__ = ["DATASETS", "HISTOGRAM_SLICES", "LOSS_NAMES", "MAX_BATCH_SIZE", "MAX_EPOCHS",
           "MAX_INTERVAL", "MAX_SEED", "ConfigError", "TrainConfig", "config_from_dict",
           "histogram_cadence"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "cifar100")
#: The CLI's ``--loss`` choices: the methods of :data:`satkit.methods.METHODS`.
LOSS_NAMES: tuple[str, ...] = METHOD_NAMES
#: The largest ``seed`` / ``split_seed`` (what every random generator in the stack accepts).
MAX_SEED = 2**32 - 1
#: The most epochs a run may plan: a guard against typos (``epochs = 1e20`` in a TOML file
#: would train until stopped); 100,000 epochs of CIFAR-10 at batch 128 are 39 million steps.
MAX_EPOCHS = 100_000
#: The largest batch: the largest training set satkit trains on (MNIST's 60,000 images); a
#: larger batch would be the whole set anyway.
MAX_BATCH_SIZE = 60_000
#: The longest interval of ``every``, ``flush_every`` and ``histogram_every``: a guard against
#: typos (a million steps).
MAX_INTERVAL = 1_000_000
#: Each count field -> (its largest value, what that value is), for the messages.
_COUNTS: dict[str, tuple[int, str]] = {
    "epochs": (MAX_EPOCHS, "MAX_EPOCHS, a guard against typos: 100000 epochs of CIFAR-10 at "
                           "batch 128 are 39 million steps"),
    "batch_size": (MAX_BATCH_SIZE, "MAX_BATCH_SIZE, the largest training set satkit trains on, "
                                   "MNIST's 60000 images"),
    "every": (MAX_INTERVAL, "MAX_INTERVAL, a guard against typos: a million steps"),
    "flush_every": (MAX_INTERVAL, "MAX_INTERVAL, a guard against typos: a million rows"),
    "histogram_every": (MAX_INTERVAL, "MAX_INTERVAL, a guard against typos: a million steps"),
    "seed": (MAX_SEED, "MAX_SEED, the largest seed every random generator accepts"),
    "split_seed": (MAX_SEED, "MAX_SEED, the largest seed every random generator accepts"),
    "label_noise_seed": (MAX_SEED, "MAX_SEED, the largest seed every random generator accepts"),
}


#: Per-sample histograms a run writes when ``histogram_every`` is not set (about this many).
HISTOGRAM_SLICES = 50


def histogram_cadence(total_steps: int, slices: int = HISTOGRAM_SLICES) -> int:
    """Steps between histograms so that a run of ``total_steps`` gets about ``slices`` of them
    (every step for a run of up to ``slices`` steps).

    Example:
        >>> histogram_cadence(72), histogram_cadence(276), histogram_cadence(100_000)
        (2, 6, 2000)
    """
    check_int("total_steps", total_steps, minimum=0)
    return max(1, -(-total_steps // slices))


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the field."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    ``alpha2`` is the paper's alpha^2; ``alpha2=0`` is the plain-softmax baseline (the same
    ``NoisySoftmax`` head with the noise off). ``loss`` picks the method: Noisy Softmax
    (default) or one of the regularisers it is compared with; each reads only its own
    settings (``epsilon``, ``beta``, ``disturb_alpha``, ``gamma``, ``temperature``,
    ``scale``/``margin``). ``label_noise`` corrupts that fraction of the training labels
    (:func:`satkit.data.corrupt_labels`), for a data set with a known answer to "which labels
    are wrong". The learning rate is divided by ``lr_gamma``'s
    inverse at each fraction of the total epochs in ``lr_milestones`` (the "lr 0.1 divided by
    10 at fixed steps" of the L-Softmax setup that Noisy Softmax, arXiv 1708.03769, compares
    against).
    """

    dataset: Literal["digits", "mnist", "cifar10", "cifar100"] = "digits"
    model: str | None = None
    """Model preset (see ``satkit.models.PRESETS``); default: the data set's own."""
    loss: str = field(default=NOISY, metadata={"choices": METHOD_NAMES})
    """The method: Noisy Softmax or a softmax regulariser to compare it with."""
    alpha2: float = DEFAULT_ALPHA2
    """Noisy Softmax's alpha^2, the noise variance (0 = plain softmax)."""
    noise: str = field(default="annealed", metadata={"choices": NOISE_FAMILIES})
    xi_per: Literal["sample", "batch"] = "sample"
    # The methods' settings: defaults, ranges and --help lines are in satkit.methods.
    epsilon: float = methods.EPSILON.default
    beta: float = methods.BETA.default
    disturb_alpha: float = methods.DISTURB_ALPHA.default
    gamma: float = methods.GAMMA.default
    temperature: float = methods.TEMPERATURE.default
    scale: float = methods.SCALE.default
    margin: float | None = None
    """The method's margin m (None: the method's own)."""
    epochs: int = 10
    """Epochs to train, in [1, 100000] (MAX_EPOCHS); with --resume it may be larger than the
    checkpoint's: the run trains on, its learning-rate drops staying at the epochs first
    planned."""
    batch_size: int = 128
    """Samples per optimizer step, in [1, 60000] (MAX_BATCH_SIZE: MNIST's training set)."""
    drop_last: bool = True
    """Drop each epoch's last, short batch in training, so that every step is a full batch (the
    per-epoch shuffle leaves out other samples each epoch)."""
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    augment: bool = False
    device: str = "auto"
    """auto (CUDA when present, else the CPU) or a torch device: cpu, cuda, cuda:1, mps."""
    amp: bool = True
    """bf16 autocast on CUDA (the loss stays float32); ignored on CPU."""
    compile: bool = False
    seed: int = 0
    """Training seed, in [0, 2**32 - 1]."""
    split_seed: int = 0
    """Seed of the digits train/test and validation splits; apart from seed: seeds share them."""
    val_fraction: float = 0.0
    """Training-set share held out (stratified) to fit a temperature at the end; 0: none."""
    label_noise: float = 0.0
    """Fraction of the training labels to corrupt, in [0, 1) (0: none; test labels never)."""
    label_noise_kind: Literal["symmetric", "pairs"] = "symmetric"
    """symmetric: to a uniformly drawn other class; pairs: class c to class c + 1 mod C."""
    label_noise_seed: int = 0
    """Seed of which training labels are corrupted and to what (kept apart from seed)."""
    data_dir: str | None = None
    out: str | None = None
    """Run directory; default ``runs/<dataset>_<run name>``, e.g.
    ``runs/digits_noisy-softmax_alpha2=0.1_seed=0``."""
    resume: bool = False
    """Continue the run in --out from its checkpoint; every setting that shapes training must
    be the checkpoint's (device, quiet, figures, flush_every, histogram_every, data_dir may
    differ; epochs may grow)."""
    # the recorder's settings: defaults from satkit.hooks.RecorderOptions (histograms: per run)
    thresholds: tuple[float, ...] = RecorderOptions.thresholds
    every: int = RecorderOptions.every
    """Record every N-th step, N in [1, 1000000] (MAX_INTERVAL)."""
    flush_every: int = RecorderOptions.flush_every
    """Recorded rows between two writes to disk, in [1, 1000000] (MAX_INTERVAL)."""
    histogram_every: int | None = None
    """Steps between two p_y/noise histograms in TensorBoard, in [1, 1000000] (MAX_INTERVAL);
    default: about 50 per run, from its planned number of steps."""
    opt_in: tuple[str, ...] = RecorderOptions.opt_in
    """Costly recorder columns to add, by name: entropy (entropy_mean, the batch mean of the
    training softmax's entropy; another pass over the logits each recorded step); default: none."""
    quiet: bool = False
    figures: bool = True
    """Save figures/dashboard.png at the end of the run."""

    def __post_init__(self) -> None:
        err = {"error": ConfigError}
        check_choice("dataset", self.dataset, DATASETS, **err)
        check_choice("loss", self.loss, LOSS_NAMES, **err)
        check_choice("noise", self.noise, NOISE_FAMILIES, **err)
        check_choice("xi_per", self.xi_per, ("sample", "batch"), **err)
        _check_device(self.device)
        for name, (maximum, bound) in _COUNTS.items():
            check_int(name, getattr(self, name), minimum=0 if name.endswith("seed") else 1,
                      maximum=maximum, bound=bound, optional=name == "histogram_every", **err)
        check_real("label_noise", self.label_noise, lo=0.0, hi=1.0, hi_open=True, **err)
        check_choice("label_noise_kind", self.label_noise_kind, ("symmetric", "pairs"), **err)
        check_real("alpha2", self.alpha2, lo=0.0, **err)
        check_real("val_fraction", self.val_fraction, lo=0.0, hi=1.0, hi_open=True, **err)
        for setting in _all_settings(self.loss):
            value = getattr(self, setting.field)
            if value is not None:
                setting.check(value, **err)
        check_real("lr", self.lr, lo=0.0, lo_open=True, **err)
        check_real("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True, **err)
        check_real("weight_decay", self.weight_decay, lo=0.0, **err)
        check_real("lr_gamma", self.lr_gamma, lo=0.0, hi=1.0, lo_open=True, **err)
        for name in ("lr_milestones", "thresholds"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ConfigError(f"{name} must be a tuple of numbers, got {values!r}")
            check_reals(name, values, lo=0.0, hi=1.0, lo_open=True, hi_open=name == "thresholds",
                        increasing=True, nonempty=name == "thresholds", **err)
        if not isinstance(self.opt_in, tuple):
            raise ConfigError(f"opt_in must be a tuple of names, got {self.opt_in!r}")
        try:
            check_opt_in(self.opt_in)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        for name in ("model", "data_dir", "out"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a non-empty string or None, got {value!r}")
        for name in ("drop_last", "augment", "amp", "compile", "resume", "quiet", "figures"):
            check_bool(name, getattr(self, name), **err)

    @property
    def method(self) -> str:
        """The method as applied (:func:`satkit.methods.resolve_method`): ``loss``, but
        "softmax" for Noisy Softmax at alpha2=0."""
        return methods.resolve_method(self.loss, self.alpha2)

    @property
    def effective_alpha2(self) -> float:
        """alpha2 as applied: 0 unless the method is Noisy Softmax."""
        return methods.effective_alpha2(self.loss, self.alpha2)

    @property
    def effective_noise(self) -> str:
        """The noise family as applied: "none" unless the method is Noisy Softmax."""
        return methods.effective_noise(self.loss, self.alpha2, self.noise)

    def head_options(self) -> dict[str, Any]:
        """Keyword arguments of ``satkit.heads.make_head_and_loss`` for this config: the
        chosen method's settings only."""
        options: dict[str, Any] = {}
        if self.loss == NOISY:
            options = {"alpha2": self.alpha2, "noise": self.noise, "xi_per": self.xi_per}
        for setting in _all_settings(self.loss):
            value = getattr(self, setting.field)
            if value is not None:
                options[setting.kwarg] = value
        return options

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


def _check_device(value: object) -> None:
    """"auto" or a string ``torch.device`` parses; availability is checked when a run starts
    (:func:`satkit.training.distributed.resolve_device`)."""
    import torch  # lazy: a config can be built and validated without the training stack

    what = "'auto' or a torch device such as cpu, cuda, cuda:1, mps"
    if not isinstance(value, str) or not value:
        raise ConfigError(f"device must be {what}; got {value!r}")
    if value == "auto":
        return
    try:
        torch.device(value)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device must be {what}; got {value!r}") from exc


def _settings(loss: str) -> tuple[methods.Setting, ...]:
    entry = METHODS.get(loss)
    return () if entry is None else entry.settings


def _all_settings(loss: str) -> list[methods.Setting]:
    """Every setting field once: the chosen method's own, else the first method's that has it
    (so a bad value is refused whichever method is chosen)."""
    chosen = {s.field: s for s in _settings(loss)}
    for method in METHODS.values():
        for setting in method.settings:
            chosen.setdefault(setting.field, setting)
    return list(chosen.values())
