"""What a ``satkit train`` run writes at its epochs and checkpoints, beside what the recorder
writes through the :class:`~satkit.run_writer.RunWriter`: ``epochs.csv``, the per-epoch
TensorBoard scalars, the data map's scalars and ``checkpoint.pt``.

:class:`RunOutputs` is what the :class:`~satkit.training.trainer.Trainer` calls at the end of
an epoch (:meth:`RunOutputs.on_epoch`) and when it saves its state
(:meth:`RunOutputs.on_checkpoint`). Every rank calls them; only the writing rank writes.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from satkit import schema
from satkit.run_dir import atomic_write_text
from satkit.run_writer import RunWriter
from satkit.training.checkpoint import save_checkpoint
from satkit.training.compose import RunParts, label_columns
from satkit.training.config import TrainConfig
from satkit.training.faults import pause_from_env
from satkit.training.trainer import EpochResult, Trainer

__all__ = ["EPOCH_SCALARS", "RunOutputs", "write_epochs"]

#: The per-epoch figures written as TensorBoard scalars ``epoch/<name>``.
EPOCH_SCALARS = ("train_loss", "train_error", "test_loss", "test_error", "lr", "test_ece",
                 "test_ece_adaptive", "test_brier", "test_confidence", "test_overconfidence")


def write_epochs(path: Any, history: list[EpochResult]) -> None:
    """``epochs.csv``: one row per finished epoch (:data:`satkit.schema.EPOCH_COLUMNS`),
    written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EpochResult.__dataclass_fields__))
    writer.writeheader()
    for row in history:
        writer.writerow(asdict(row))
    atomic_write_text(path, buf.getvalue())


class RunOutputs:
    """The epoch and checkpoint outputs of one run.

    Args:
        config: the run's config (saved into each checkpoint, for ``--resume``).
        parts: the run's parts (the training labels, for the data map).
        writer: the run directory's writer; writes nothing off the writing rank.

    Attach the trainer (:attr:`trainer`) before it runs: its history is what ``epochs.csv``
    holds.
    """

    def __init__(self, config: TrainConfig, parts: RunParts, writer: RunWriter) -> None:
        self.config, self.parts, self.writer = config, parts, writer
        self.trainer: Trainer | None = None
        self._pause = pause_from_env()

    def on_epoch(self, result: EpochResult) -> None:
        """After each epoch: ``epochs.csv``, the epoch's TensorBoard scalars, and the data
        map's scalars when there is a per-sample record. Every rank flushes the per-sample
        record (a collective under ``torch.distributed``); the writing rank writes."""
        trainer = self.trainer
        assert trainer is not None, "attach the trainer first"
        recorder = trainer.recorder
        samples = recorder.samples() if recorder is not None and recorder.num_samples else None
        if self.writer.path is None:
            return
        self.write_epochs(trainer.history)
        history = trainer.history
        first = history[-2].step if len(history) > 1 else 0
        last = max(result.step - 1, first)
        if self.writer.tensorboard is not None:
            self.writer.tensorboard.write_epoch(first, last, {
                k: getattr(result, k) for k in EPOCH_SCALARS})
            if samples is not None:
                self._write_data_map(samples, max(result.step - 1, 0))

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        """Save the trainer's state with the config (``--resume`` checks it) atomically."""
        if self.writer.path is None:
            return
        pause = self._pause
        midway = None if pause is None else (lambda _tmp: pause.at("checkpoint"))
        save_checkpoint(self.writer.path / schema.CHECKPOINT,
                        {**state, "config": self.config.to_dict()}, midway=midway)

    def write_epochs(self, history: list[EpochResult]) -> None:
        """``epochs.csv`` as ``history`` has it (after a resume: the epochs up to the
        checkpoint; those past it are redone)."""
        if self.writer.path is not None:
            write_epochs(self.writer.path / schema.EPOCHS, history)

    def _write_data_map(self, samples: Any, step: int) -> None:
        """The data map's region fractions, and the mean confidence of corrupted vs clean
        samples, as TensorBoard scalars ``data_map/<name>`` at the epoch's last step."""
        from satkit.analysis.label_issues import data_map_scalars

        labels = label_columns(self.parts.labels)
        if labels is not None:
            samples = samples.assign(label_corrupted=labels["label_corrupted"].to_numpy())
        assert self.writer.tensorboard is not None
        self.writer.tensorboard.write_scalars(step, data_map_scalars(samples), group="data_map")
