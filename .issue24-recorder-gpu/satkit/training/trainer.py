"""The training loop, composed by injection: model, optimizer, schedule, data, recorder.

One step is forward -> loss -> backward -> ``recorder.step`` -> ``optimizer.step``. Nothing in
a step reads a tensor on the host (nor copies one to the device): the running loss and error for
the progress display and the non-finite check are read only at the recorder's flush interval
(``sync_every``) and at the end of an epoch; sample counts are known on the host.

The evaluation after each epoch measures test loss and error and the top-1 calibration
(:mod:`satkit.training.calibration`) in one pass, read with one host sync. During the last
epoch the training logits' calibration is accumulated too (the same no-sync accumulator in
the step), read at the epoch's end sync.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from satkit.training.calibration import MEASURES, TopOneCalibration
from satkit.training.evaluation import Evaluation, evaluate, predict, split_batch, unwrap
from satkit.training.faults import pause_from_env
from satkit.training.interrupt import GracefulStop, StopRequested
from satkit.training.progress import Progress
from satkit.validation import check_int

__all__ = ["STATE_KEYS", "EpochResult", "Evaluation", "NonFiniteError", "Trainer"]

#: The keys of :meth:`Trainer.state_dict` (``rng_cuda`` too on CUDA).
STATE_KEYS = ("model", "optimizer", "schedule", "recorder", "step", "epoch", "batch_in_epoch",
              "sums", "n", "seconds", "history", "rng_cpu")


class NonFiniteError(FloatingPointError):
    """The training loss (or the features or outputs of the model) became NaN or Inf; the
    message names the first bad step and ends with what to change."""


def _is_nonfinite_input(exc: ValueError) -> bool:
    """A head's own check refused NaN/Inf features (satkit's heads say "NaN or Inf")."""
    return "NaN or Inf" in str(exc)


@dataclass
class EpochResult:
    """One row of ``epochs.csv``. Errors are in %; train figures use the training logits; the
    calibration figures are of the clean test logits (NaN in a history written before satkit
    measured them)."""

    epoch: int
    step: int
    train_loss: float
    train_error: float
    test_loss: float
    test_error: float
    lr: float
    seconds: float
    test_ece: float = math.nan
    test_ece_adaptive: float = math.nan
    test_brier: float = math.nan
    test_confidence: float = math.nan
    test_overconfidence: float = math.nan


def _accepts_target(model: nn.Module) -> bool:
    """Whether ``model.forward`` takes a second argument (satkit's Classifier takes ``target``)."""
    params = list(inspect.signature(model.forward).parameters.values())
    return any(p.kind is p.VAR_POSITIONAL for p in params) or len(params) >= 2


class Trainer:
    """Train ``model`` for ``epochs`` with per-epoch evaluation on clean logits.

    Args:
        model: maps inputs to logits; if its ``forward`` takes a second argument the targets
            are passed (satkit's ``Classifier`` forwards them to its ``NoisySoftmax`` head).
        optimizer: any ``torch.optim.Optimizer``.
        train_data: iterable of batches (x, y) or (x, y, index); ``set_epoch(e)`` and
            ``iter_from(batch)`` are used when present (deterministic order, mid-epoch resume).
        test_data: optional iterable of batches for evaluation (eval mode, no target: clean).
        epochs: number of epochs.
        schedule: optional LR scheduler stepped once per epoch.
        recorder: optional :class:`satkit.hooks.SaturationRecorder` attached to the head.
        loss_fn: ``loss_fn(logits, target)``, computed in float32.
        device: where batches are moved; default: the model's parameters' device.
        amp: bf16 autocast for the model (CUDA); the loss stays float32.
        sync_every: steps between the loop's host reads (default: the recorder's flush_every).
        progress: True for a :class:`~satkit.training.progress.Progress` display on stderr
            (a bar on a terminal, plain lines otherwise), False for none, or your own
            ``Progress`` (labelled; add its ``tap`` to the recorder's sinks to show the
            saturated fraction).
        on_epoch: called with each :class:`EpochResult`.
        on_checkpoint: called with the state dict whenever a checkpoint should be saved.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_data: Iterable[Any],
        *,
        test_data: Iterable[Any] | None = None,
        epochs: int = 1,
        schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
        recorder: Any | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
        device: torch.device | str | None = None,
        amp: bool = False,
        sync_every: int | None = None,
        progress: bool | Progress = True,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        check_int("epochs", epochs, minimum=1)
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.train_data, self.test_data, self.epochs = train_data, test_data, epochs
        self.recorder, self.loss_fn, self.amp = recorder, loss_fn, amp
        if device is None:
            device = next(model.parameters()).device
        self.device = torch.device(device)
        self.sync_every = sync_every or getattr(recorder, "flush_every", 100)
        self.progress = progress if isinstance(progress, Progress) else Progress(enabled=progress)
        self.on_epoch, self.on_checkpoint = on_epoch, on_checkpoint
        self._takes_target = _accepts_target(model)
        # Loop position and per-epoch sums; all part of the checkpoint.
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[EpochResult] = []
        self.seconds = 0.0
        self.checkpoint_step: int | None = None  # the step of the last on_checkpoint call
        self._sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss*n, errors
        self._n = 0  # samples of the epoch so far; known on the host, never copied over
        self._first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._pause = None
        self._eval_calibration = TopOneCalibration(self.device)  # reset by each evaluation
        # the training logits' calibration over the last epoch (None in the other epochs)
        self._train_calibration: TopOneCalibration | None = None
        #: The calibration of the training logits over the last epoch (each training sample
        #: once, with the logits its loss was computed on): ``{"ece", "ece_adaptive",
        #: "brier", "confidence", "overconfidence"}``, set when the last epoch ends; None
        #: before. This process's samples only (under torchrun: this rank's shard, like
        #: ``train_error``).
        self.train_calibration: dict[str, float] | None = None

    # -- one step ---------------------------------------------------------------------------
    def _forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(x, y) if (self._takes_target and y is not None) else self.model(x)

    def train_step(self, x: Tensor, y: Tensor, index: Tensor | None) -> Tensor:
        """One optimisation step; returns the detached loss (no host sync)."""
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        try:
            logits = self._forward(x, y)
        except ValueError as exc:
            if not _is_nonfinite_input(exc):
                raise
            raise self._nonfinite("features reaching the head") from exc
        loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss = loss.detach()
        if self.recorder is not None:
            self.recorder.step(y, index=None if index is None else index.to(self.device),
                               loss=loss)
        self.optimizer.step()
        n = y.shape[0]
        predicted = logits.detach().argmax(1)
        errors = (predicted != y).sum()
        if self._train_calibration is not None:
            self._train_calibration.add(logits.detach(), y, predicted)
        self._sums += torch.stack([loss.double() * n, errors.double()])
        self._n += n
        bad = ~torch.isfinite(loss)
        self._first_bad = torch.where(bad & (self._first_bad < 0), self.step, self._first_bad)
        return loss

    def _writes_done(self) -> None:
        wait = getattr(self.recorder, "wait_for_writes", None)
        if wait is not None:
            wait()

    def _check_finite(self) -> None:
        if int(self._first_bad) >= 0:  # sync point (every sync_every steps)
            raise self._nonfinite("training loss")

    def _nonfinite(self, what: str) -> NonFiniteError:
        """Flush what was recorded and describe the first non-finite step (a failure path)."""
        first_bad = int(self._first_bad)  # sync point (the run is failing)
        step = first_bad if first_bad >= 0 else self.step
        what = "training loss" if first_bad >= 0 else what
        if self.recorder is not None:
            self.recorder.flush()
        kept = ("no checkpoint had been written yet" if self.checkpoint_step is None
                else f"the checkpoint of step {self.checkpoint_step} was kept")
        return NonFiniteError(
            f"non-finite {what} (NaN or Inf) at step {step} (epoch {self.epoch}); the "
            f"recorded rows were flushed and {kept}. Lower the learning rate or alpha2.")

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, data: Iterable[Any] | None = None, *, reduce: bool = True) -> Evaluation:
        """Loss, error and calibration on ``data`` (default: the test data), clean logits.

        One pass, one host sync (:func:`satkit.training.evaluation.evaluate`).

        Args:
            data: batches (x, y) or (x, y, index); default: ``test_data``.
            reduce: under ``torch.distributed``, combine every rank's samples (every rank
                calls it and evaluates equally many samples, as satkit's ``DeviceLoader``
                shards do); False: this process's samples only, with the model unwrapped from
                DDP and no collective (one rank may call it alone).

        Returns:
            An :class:`~satkit.training.evaluation.Evaluation` (NaN figures without data).
        """
        data = self.test_data if data is None else data
        if data is None:
            return Evaluation.empty()
        distributed = reduce and dist.is_available() and dist.is_initialized()
        module = self.model if reduce else unwrap(self.model)
        try:
            return evaluate(module, data, device=self.device, amp=self.amp,
                            calibration=self._eval_calibration, distributed=distributed)
        except ValueError as exc:
            if not _is_nonfinite_input(exc):
                raise
            raise self._nonfinite("features in evaluation") from exc

    def predict(self, data: Iterable[Any]) -> tuple[Tensor, Tensor, Tensor | None]:
        """The clean logits of ``data`` on the device: this process's samples, the model
        unwrapped from DDP (:func:`satkit.training.evaluation.predict`)."""
        return predict(unwrap(self.model), data, device=self.device, amp=self.amp)

    # -- the loop ---------------------------------------------------------------------------
    def _batches(self) -> Iterator[Any]:
        data = self.train_data
        if hasattr(data, "set_epoch"):
            data.set_epoch(self.epoch)
        if self.batch_in_epoch:
            if not hasattr(data, "iter_from"):
                raise RuntimeError("resuming mid-epoch needs a loader with iter_from(batch)")
            return iter(data.iter_from(self.batch_in_epoch))
        return iter(data)

    def _end_epoch(self, started: float) -> EpochResult:
        n = self._n
        if self._train_calibration is not None:  # the last epoch: its calibration, same sync
            loss_sum, errors, *measured = torch.cat(
                [self._sums, self._train_calibration.result()]).tolist()  # sync point (once)
            values = dict(zip(MEASURES, measured, strict=True))
            values["overconfidence"] = values["confidence"] - values.pop("accuracy")
            self.train_calibration = values
            self._train_calibration = None
        else:
            loss_sum, errors = self._sums.tolist()  # sync point (once per epoch)
        self._check_finite()
        lr = self.optimizer.param_groups[0]["lr"]
        evaluation = self.evaluate()
        if self.schedule is not None:
            self.schedule.step()
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        result = EpochResult(self.epoch, self.step, loss_sum / max(n, 1),
                             100.0 * errors / max(n, 1), evaluation.loss, evaluation.error, lr,
                             elapsed, **evaluation.calibration("test_"))
        self.history.append(result)
        self.epoch += 1
        self.batch_in_epoch = 0
        self._sums.zero_()
        self._n = 0
        if self.on_epoch is not None:
            self.on_epoch(result)
        return result

    def fit(self) -> list[EpochResult]:
        """Train until ``epochs``; returns the per-epoch results (also in :attr:`history`).

        Raises:
            StopRequested: SIGINT/SIGTERM arrived; the recorder was flushed and
                ``on_checkpoint`` called with the state at the current step.
            NonFiniteError: the loss became NaN/Inf (checked every ``sync_every`` steps), or
                the head refused NaN/Inf features; the recorder was flushed first.
        """
        steps_per_epoch = len(self.train_data) if hasattr(self.train_data, "__len__") else None
        total = steps_per_epoch * self.epochs if steps_per_epoch else None
        self._pause = pause_from_env()
        self.progress.start(total_steps=total, done_steps=self.step, epochs=self.epochs)
        try:
            with GracefulStop() as stop:
                while self.epoch < self.epochs:
                    self._run_epoch(stop)
        finally:
            self.progress.close()
        return self.history

    def _calibration_of_epoch(self) -> TopOneCalibration | None:
        """The accumulator of the training logits' calibration for the epoch starting (or
        resumed) now: only in the last epoch; the restored one when the last epoch is resumed
        midway, None when that resume has none (a checkpoint from before it existed)."""
        if self.epoch != self.epochs - 1:
            return None  # also when --epochs grew past a last epoch that was cut short
        if self.batch_in_epoch == 0:
            return TopOneCalibration(self.device)
        return self._train_calibration

    def _run_epoch(self, stop: GracefulStop) -> None:
        started = time.perf_counter()
        self._train_calibration = self._calibration_of_epoch()
        for batch in self._batches():
            if self._pause is not None:
                self._pause.at("step", before=self._writes_done)
            self.train_step(*split_batch(batch))
            self.step += 1
            self.batch_in_epoch += 1
            self.progress.advance()
            if self.step % self.sync_every == 0:
                self._check_finite()
                self._report()
            if stop.requested:
                self.seconds += time.perf_counter() - started
                self._checkpoint()
                raise StopRequested(stop.signum)
        result = self._end_epoch(started)
        self._checkpoint()  # flushes the recorder: the epoch line shows the epoch's last rows
        self.progress.epoch_end(result)

    def _report(self) -> None:
        if self.progress.enabled and self._n:
            loss_sum, errors = self._sums.tolist()  # sync point (every sync_every steps)
            self.progress.update(step=self.step, epoch=self.epoch, loss=loss_sum / self._n,
                                 train_error=100.0 * errors / self._n)

    # -- state ------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        if self.recorder is not None:
            self.recorder.flush()  # the checkpoint's step matches the rows on disk
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.state_dict())
            self.checkpoint_step = self.step

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the loop is (CPU tensors)."""
        model = unwrap(self.model)
        state: dict[str, Any] = {
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "recorder": self.recorder.state_dict() if self.recorder is not None else None,
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "sums": self._sums.cpu(), "n": self._n, "seconds": self.seconds,
            "history": [asdict(r) for r in self.history],
            "rng_cpu": torch.get_rng_state(),
            "train_calibration": None if self._train_calibration is None
            else self._train_calibration.state_dict(),
            "train_calibration_result": self.train_calibration,
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (from :func:`load_checkpoint`)."""
        model = unwrap(self.model)
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.recorder is not None and state["recorder"] is not None:
            self.recorder.load_state_dict(state["recorder"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch, self.seconds = int(state["batch_in_epoch"]), float(state["seconds"])
        sums = state["sums"]
        if sums.numel() == 3:  # checkpoints before the sample count moved to the host
            sums, n = sums[:2], int(sums[2])
        else:
            n = int(state["n"])
        self._sums, self._n = sums.to(self.device), n
        self.checkpoint_step = self.step
        self.history = [EpochResult(**r) for r in state["history"]]
        saved = state.get("train_calibration")  # absent from checkpoints before it existed
        self._train_calibration = None
        if saved is not None:
            self._train_calibration = TopOneCalibration(self.device, bins=int(saved["bins"]))
            self._train_calibration.load_state_dict(saved)
        self.train_calibration = state.get("train_calibration_result")
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
