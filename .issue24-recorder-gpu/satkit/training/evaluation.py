"""One evaluation pass: loss, error and top-1 calibration of clean logits, with one host sync.

:func:`evaluate` is what :meth:`satkit.training.Trainer.evaluate` runs after every epoch: the
summed loss and errors and the calibration accumulator
(:class:`satkit.training.calibration.TopOneCalibration`) stay on the device, and one
``tolist()`` reads them all. :func:`predict` keeps the logits themselves (for the end-of-run
temperature scaling and the test predictions file).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from satkit.training.calibration import MEASURES, TopOneCalibration

__all__ = ["Evaluation", "evaluate", "predict", "split_batch", "unwrap"]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured: mean cross-entropy (``loss``, the NLL), error
    (%), and the top-1 calibration of :mod:`satkit.analysis.calibration` -- ECE over 15
    equal-width bins, the equal-mass ECE, the Brier score, the mean top-1 probability and
    ``overconfidence = confidence - (1 - error / 100)``; ``samples`` evaluated. NaN when there
    was nothing to evaluate."""

    loss: float
    error: float
    ece: float
    ece_adaptive: float
    brier: float
    confidence: float
    overconfidence: float
    samples: int

    @classmethod
    def empty(cls) -> Evaluation:
        return cls(*[math.nan] * 7, 0)

    def calibration(self, prefix: str = "", suffix: str = "") -> dict[str, float]:
        """The five calibration figures named ``<prefix><measure><suffix>`` (e.g. the
        ``test_ece``, ... of ``epochs.csv`` for ``prefix="test_"``)."""
        return {f"{prefix}{name}{suffix}": getattr(self, name) for name in
                ("ece", "ece_adaptive", "brier", "confidence", "overconfidence")}


def _evaluation(loss_sum: float, errors: float, n: float, measures: list[float]) -> Evaluation:
    if n <= 0:
        return Evaluation.empty()
    values = dict(zip(MEASURES, measures, strict=True))
    return Evaluation(loss_sum / n, 100.0 * errors / n, values["ece"], values["ece_adaptive"],
                      values["brier"], values["confidence"],
                      values["confidence"] - (1.0 - errors / n), int(n))


def split_batch(batch: Any) -> tuple[Tensor, Tensor, Tensor | None]:
    """Accept (x, y) from any DataLoader or (x, y, index) from satkit's DeviceLoader."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    size = len(batch) if hasattr(batch, "__len__") else "?"
    raise TypeError("a batch must be (inputs, targets) or (inputs, targets, indices), got "
                    f"{type(batch).__name__} of length {size}")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``torch.compile`` and DistributedDataParallel wrappers."""
    model = getattr(model, "_orig_mod", model)
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _logits(module: nn.Module, x: Tensor, device: torch.device, amp: bool) -> Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        return module(x.to(device, non_blocking=True)).float()


@torch.no_grad()
def evaluate(module: nn.Module, data: Iterable[Any], *, device: torch.device, amp: bool = False,
             calibration: TopOneCalibration | None = None,
             distributed: bool = False) -> Evaluation:
    """Mean cross-entropy, error and calibration of ``module``'s clean (eval-mode) logits.

    Args:
        module: maps inputs to logits (called without targets, in eval mode; its mode is
            restored afterwards).
        data: batches (x, y) or (x, y, index).
        device: where batches go and the sums stay.
        amp: bf16 autocast for the forward pass; the loss and probabilities are float32.
        calibration: the accumulator to use (reset here; default: a new one on ``device``).
        distributed: combine the samples of every rank of the default process group
            (collectives; every rank evaluates equally many samples).

    Returns:
        An :class:`Evaluation`, read from the device with one ``tolist()``.
    """
    calibration = TopOneCalibration(device) if calibration is None else calibration
    calibration.reset()
    was_training = module.training
    module.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    try:
        for batch in data:
            x, y, _ = split_batch(batch)
            y = y.to(device, non_blocking=True)
            logits = _logits(module, x, device, amp)
            loss = F.cross_entropy(logits, y, reduction="sum")
            predicted = logits.argmax(1)
            sums += torch.stack([loss.double(), (predicted != y).sum().double()])
            calibration.add(logits, y, predicted)
    finally:
        module.train(was_training)
    n = calibration.count
    measures = calibration.result(distributed=distributed)
    if distributed:
        total = torch.cat([sums, sums.new_tensor([n])])  # every rank's count, once
        dist.all_reduce(total)
        loss_sum, errors, n, *measured = torch.cat([total, measures]).tolist()  # sync point
    else:
        loss_sum, errors, *measured = torch.cat([sums, measures]).tolist()  # sync point (once)
    return _evaluation(loss_sum, errors, n, measured)


@torch.no_grad()
def predict(module: nn.Module, data: Iterable[Any], *, device: torch.device,
            amp: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
    """The clean (eval-mode) logits of ``data``, kept on the device (no host sync).

    Returns:
        ``(logits, targets, indices)``: float32 (N, C), (N,) and the batches' indices (N,)
        when they carry them (satkit's ``DeviceLoader``), else None.

    Raises:
        ValueError: ``data`` yielded no batch.
    """
    was_training = module.training
    module.eval()
    logits, targets, indices = [], [], []
    try:
        for batch in data:
            x, y, index = split_batch(batch)
            logits.append(_logits(module, x, device, amp))
            targets.append(y.to(device, non_blocking=True))
            indices.append(index)
    finally:
        module.train(was_training)
    if not logits:
        raise ValueError("predict: data yielded no batch")
    index = None if any(i is None for i in indices) else \
        torch.cat([i.to(device) for i in indices])
    return torch.cat(logits), torch.cat(targets), index
