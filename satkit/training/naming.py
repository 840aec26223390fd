"""How a run of ``satkit train`` is named: its directory in a comparison, its run in
TensorBoard, its trial in the HPARAMS table, and where it goes without ``--out``."""

from __future__ import annotations

from pathlib import Path

from satkit.methods import NOISY
from satkit.training.config import TrainConfig

__all__ = ["NOISY_SOFTMAX", "default_run_dir", "run_name"]

#: How a run name spells Noisy Softmax (its ``--loss`` value is ``noisy``).
NOISY_SOFTMAX = "noisy-softmax"


def run_name(config: TrainConfig) -> str:
    """The name of a run (its directory in a comparison, its run in TensorBoard, its trial in
    the HPARAMS table): the method as applied (:attr:`TrainConfig.method`) first.

    ``noisy-softmax_alpha2=0.1_seed=0`` for Noisy Softmax (``_noise=<family>`` before the seed
    unless the noise is annealed), ``<method>_seed=0`` for every other method, the alpha2 = 0
    baseline (softmax) included.

    Example:
        >>> run_name(TrainConfig(alpha2=0.1)), run_name(TrainConfig(alpha2=0, noise="free"))
        ('noisy-softmax_alpha2=0.1_seed=0', 'softmax_seed=0')
        >>> run_name(TrainConfig(alpha2=1, noise="amplitude")), run_name(TrainConfig(loss="focal"))
        ('noisy-softmax_alpha2=1_noise=amplitude_seed=0', 'focal_seed=0')
    """
    if config.method != NOISY:
        return f"{config.method}_seed={config.seed}"
    noise = "" if config.effective_noise == "annealed" else f"_noise={config.effective_noise}"
    return f"{NOISY_SOFTMAX}_alpha2={config.effective_alpha2:g}{noise}_seed={config.seed}"


def default_run_dir(config: TrainConfig) -> Path:
    """Where a run goes without ``out``: ``runs/<dataset>_<run_name>``."""
    return Path("runs") / f"{config.dataset}_{run_name(config)}"
