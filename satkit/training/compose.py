"""What a run is made of, built from its config: data, head and loss, model, optimizer, schedule,
loaders, and the recorder's options. No loop and no run directory logic here (the recorder and
its sinks are built by :class:`satkit.run_writer.RunWriter`).

Order: :func:`check_config` (everything that can be refused without touching the disk), then
:func:`build_parts` (the data set is loaded, nothing is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from satkit.hooks.options import RecorderOptions
from satkit.training.config import ConfigError, TrainConfig, histogram_cadence
from satkit.training.distributed import DistContext

__all__ = ["RunParts", "build_parts", "check_config", "histogram_every", "label_columns",
           "milestone_epochs", "recorder_options"]


def milestone_epochs(fractions: tuple[float, ...], epochs: int) -> list[int]:
    """The epochs after which the learning rate is multiplied by ``lr_gamma``: each fraction
    of ``epochs``, rounded, at least 1, without repeats.

    Example:
        >>> milestone_epochs((0.5, 0.75), 10), milestone_epochs((0.1, 0.2), 4)
        ([5, 8], [1])
    """
    return sorted({max(1, round(f * epochs)) for f in fractions})


def check_config(config: TrainConfig) -> TrainConfig:
    """Resolve the default model and refuse what would fail later: an unknown model preset, a
    ``data_dir`` that is not a directory.

    Raises:
        ConfigError: naming the field.
    """
    from satkit.models import PRESETS, default_preset

    if config.model is None:
        config = config.replace(model=default_preset(config.dataset))
    if config.model not in PRESETS:
        raise ConfigError(f"model must be one of {', '.join(PRESETS)}; got {config.model!r}")
    if config.data_dir is not None and Path(config.data_dir).exists() \
            and not Path(config.data_dir).is_dir():
        raise ConfigError(f"data_dir must be a directory; {config.data_dir} is a file")
    return config


@dataclass
class RunParts:
    """Everything the loop needs, built from one config (no files written yet)."""

    data: Any
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    train_loader: Any
    test_loader: Any
    validation: tuple[torch.Tensor, torch.Tensor] | None = None
    """``(val_x, val_y)`` held out of the training set (``val_fraction``), else None."""
    labels: Any = None
    """:class:`satkit.data.NoisyLabels`: the training labels, true and as trained on."""


def build_parts(config: TrainConfig, ctx: DistContext) -> RunParts:
    """Load the data onto ``ctx.device``, hold out the validation split (``val_fraction``),
    corrupt the remaining training labels as ``label_noise`` says, and build the head and loss
    of ``config.loss``, then the model around that head, the SGD optimizer, its step schedule
    and the loaders.

    Raises:
        DataError: the data set is missing or corrupt.
        ConfigError: ``val_fraction`` would leave a class without a training sample.
    """
    from satkit.data import (
        DeviceLoader,
        apply_label_noise,
        cifar_augment,
        load_dataset,
        split_validation,
    )
    from satkit.heads import make_head_and_loss
    from satkit.models import PRESETS, build_model

    data = load_dataset(config.dataset, data_dir=config.data_dir, device=ctx.device,
                        seed=config.split_seed)
    try:  # the validation split first: the rest applies to the samples trained on only
        data, validation = split_validation(data, config.val_fraction, config.split_seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    data, labels = apply_label_noise(data, config.label_noise, kind=config.label_noise_kind,
                                     seed=config.label_noise_seed)
    assert config.model is not None  # check_config resolved it
    head, loss_fn = make_head_and_loss(config.loss, PRESETS[config.model].feature_dim,
                                       data.num_classes, **config.head_options())
    model = build_model(config.model, num_classes=data.num_classes,
                        in_channels=data.in_channels, image_size=data.image_size, head=head)
    model = model.to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestone_epochs(config.lr_milestones, config.epochs), config.lr_gamma)
    per_rank = -(-data.train_x.shape[0] // ctx.world_size)
    if config.drop_last and per_rank < config.batch_size:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {per_rank} training "
                          "samples per process: with drop_last no full batch is left; lower "
                          "--batch-size or pass --no-drop-last")
    train_loader = DeviceLoader(data.train_x, data.train_y, batch_size=config.batch_size,
                                shuffle=True, drop_last=config.drop_last, seed=config.seed,
                                augment=cifar_augment if config.augment else None,
                                rank=ctx.rank, world_size=ctx.world_size)
    test_loader = DeviceLoader(data.test_x, data.test_y, batch_size=max(config.batch_size, 512),
                               shuffle=False, rank=ctx.rank, world_size=ctx.world_size)
    return RunParts(data, model, loss_fn.to(ctx.device), optimizer, schedule, train_loader,
                    test_loader, validation, labels)


def label_columns(labels: Any) -> Any:
    """The samples table's label columns (:data:`satkit.schema.SAMPLE_LABEL_COLUMNS`) of a
    :class:`satkit.data.NoisyLabels`, one row per training sample; None for None."""
    if labels is None:
        return None
    import pandas as pd

    return pd.DataFrame({"label": labels.labels, "true_label": labels.true_labels,
                         "label_corrupted": labels.corrupted})


def histogram_every(config: TrainConfig, parts: RunParts) -> int:
    """The run's histogram cadence: ``config.histogram_every``, or about
    :data:`~satkit.training.config.HISTOGRAM_SLICES` histograms over the planned steps."""
    if config.histogram_every is not None:
        return config.histogram_every
    return histogram_cadence(len(parts.train_loader) * config.epochs)


def recorder_options(config: TrainConfig, parts: RunParts) -> RecorderOptions:
    """The recorder's settings for the run (:class:`~satkit.hooks.RecorderOptions`).

    Histograms are kept every ``config.histogram_every`` steps, by default at the cadence
    that gives the planned run about :data:`~satkit.training.config.HISTOGRAM_SLICES`
    of them (:func:`~satkit.training.config.histogram_cadence`).
    """
    return RecorderOptions(thresholds=config.thresholds, every=config.every,
                           flush_every=config.flush_every,
                           histogram_every=histogram_every(config, parts), opt_in=config.opt_in)
