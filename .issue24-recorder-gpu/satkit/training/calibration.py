"""Top-1 calibration accumulated on the device, with no host sync (the trainer's evaluation).

:class:`TopOneCalibration` takes batches of logits and keeps, on their device, the sums of
Guo et al.'s reliability diagram (per equal-width confidence bin: the samples, their summed
top-1 confidence and how many were right), the summed Brier score, and each sample's top-1
confidence and correctness (O(samples): the equal-mass ECE ranks them).
:meth:`~TopOneCalibration.result` turns them into the measures as one device tensor, so the
caller reads everything at its single sync.

The definitions (bins ``(b/B, (b+1)/B]``, equal-mass bins that never split tied confidences,
the Brier score over every class) are those of :mod:`satkit.analysis.calibration`, the numpy
reference this module is tested against. Reductions are one-hot matrix products, not atomic
scatters, so a CUDA result does not depend on thread scheduling.

The confidence is the largest softmax probability of the float32 logits; the prediction is the
first class of largest *logit* (what the trainer's error counts), so a sample is right here
exactly when it is right in ``test_error``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from satkit.schema import CALIBRATION_BINS
from satkit.validation import check_int

__all__ = ["MEASURES", "TopOneCalibration"]

#: What :meth:`TopOneCalibration.result` holds, in order.
MEASURES = ("ece", "ece_adaptive", "brier", "confidence", "accuracy")


class TopOneCalibration:
    """Calibration sums of logits on ``device``; :meth:`add` and :meth:`result` never sync.

    Args:
        device: where the logits are (and the sums stay).
        bins: equal-width bins of the ECE and equal-mass bins of the adaptive ECE.

    Example:
        >>> acc = TopOneCalibration("cpu")
        >>> acc.add(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 0, 0]))
        >>> dict(zip(MEASURES, [round(v, 4) for v in acc.result().tolist()]))
        {'ece': 0.2992, 'ece_adaptive': 0.2992, 'brier': 0.3673, 'confidence': 0.8548,
         'accuracy': 0.6667}
    """

    def __init__(self, device: torch.device | str, bins: int = CALIBRATION_BINS) -> None:
        check_int("bins", bins, minimum=1)
        self.bins = bins
        self.device = torch.device(device)
        # the float64 edges np.linspace gives, copied to the device once, here
        self._edges = torch.from_numpy(np.linspace(0.0, 1.0, bins + 1)).to(self.device)
        self._ids = torch.arange(bins, device=self.device)
        self.reset()

    def reset(self) -> None:
        """Forget every sample added."""
        self.sums = torch.zeros(3, self.bins, dtype=torch.float64, device=self.device)
        self.brier = torch.zeros((), dtype=torch.float64, device=self.device)
        self._samples: list[Tensor] = []  # (2, batch): confidence, correct
        self.count = 0  # samples added, known on the host

    def _onehot(self, index: Tensor) -> Tensor:
        return (index[:, None] == self._ids).double()

    def add(self, logits: Tensor, target: Tensor, predicted: Tensor | None = None) -> None:
        """Add a batch: ``logits`` (B, C), ``target`` (B,) class indices; ``predicted``
        (B,) the predicted classes when the caller has them (default: ``logits.argmax(1)``)."""
        probs = torch.softmax(logits.float(), dim=1)
        confidence = probs.amax(dim=1).double()
        if predicted is None:
            predicted = logits.argmax(dim=1)
        correct = (predicted == target).double()
        p64 = probs.double()
        p_target = p64.gather(1, target[:, None]).squeeze(1)
        self.brier += (p64.square().sum(dim=1) - 2.0 * p_target + 1.0).sum()
        index = (torch.bucketize(confidence, self._edges) - 1).clamp_(0, self.bins - 1)
        self.sums += torch.stack([torch.ones_like(confidence), confidence, correct]) \
            @ self._onehot(index)
        self._samples.append(torch.stack([confidence, correct]))
        self.count += int(target.shape[0])

    def _samples_tensor(self) -> Tensor:
        if not self._samples:
            return torch.zeros(2, 0, dtype=torch.float64, device=self.device)
        if len(self._samples) > 1:
            self._samples = [torch.cat(self._samples, dim=1)]
        return self._samples[0]

    def _adaptive(self, samples: Tensor) -> Tensor:
        n = samples.shape[1]
        if n == 0:
            return torch.full((), math.nan, dtype=torch.float64, device=self.device)
        ordered, order = torch.sort(samples[0], stable=True)
        right = samples[1].index_select(0, order)
        first = torch.ones(n, dtype=torch.bool, device=self.device)
        first[1:] = ordered[1:] != ordered[:-1]
        positions = torch.arange(n, device=self.device)
        rank = torch.where(first, positions, 0).cummax(dim=0).values  # ties: the first's rank
        sums = torch.stack([ordered, right]) @ self._onehot(rank * self.bins // n)
        return (sums[0] - sums[1]).abs().sum() / n

    def result(self, *, distributed: bool = False) -> Tensor:
        """The measures :data:`MEASURES` as one float64 device tensor (no host sync).

        Args:
            distributed: combine the samples of every rank of the default process group
                first (collective: every rank calls it, each having added equally many
                samples, as satkit's padded ``DeviceLoader`` shards give).

        Returns:
            ``[ece, ece_adaptive, brier, confidence, accuracy]``: NaN with no sample.
        """
        sums, brier, samples = self.sums, self.brier, self._samples_tensor()
        if distributed:
            packed = torch.cat([sums.flatten(), brier.view(1)])
            dist.all_reduce(packed)
            sums, brier = packed[:-1].view(3, self.bins), packed[-1]
            parts = [torch.empty_like(samples) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, samples.contiguous())
            samples = torch.cat(parts, dim=1)
        count = sums[0].sum()
        ece = (sums[1] - sums[2]).abs().sum() / count
        return torch.stack([ece, self._adaptive(samples), brier / count, sums[1].sum() / count,
                            sums[2].sum() / count])

    def state_dict(self) -> dict[str, Any]:
        """The sums and samples so far, on the CPU (a checkpoint; this copy syncs)."""
        return {"bins": self.bins, "sums": self.sums.cpu(), "brier": self.brier.cpu(),
                "samples": self._samples_tensor().cpu(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ValueError: it was written with another number of bins.
        """
        if int(state["bins"]) != self.bins:
            raise ValueError(f"calibration state has {state['bins']} bins, expected {self.bins}")
        # copies: the sums grow in place and must not write into the caller's state
        self.sums = state["sums"].to(self.device, torch.float64, copy=True)
        self.brier = state["brier"].to(self.device, torch.float64, copy=True)
        self._samples = [state["samples"].to(self.device, torch.float64, copy=True)]
        self.count = int(state["count"])
