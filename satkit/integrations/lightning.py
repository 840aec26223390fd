"""Record softmax saturation inside PyTorch Lightning: :class:`SaturationCallback`.

``pip install 'satkit[lightning]'``. Add the callback to a ``lightning.pytorch.Trainer`` (a
``pytorch_lightning.Trainer`` works too) and every optimizer step of ``fit`` is recorded by a
:class:`~satkit.hooks.SaturationRecorder` on the model's head: how close the target-class
probability p_y is to 1 (saturation, whose gradient p_y - 1 vanishes; Chen, Deng, Du,
"Noisy Softmax", CVPR 2017, arXiv 1708.03769), per step and per training sample, in a satkit
run directory that ``satkit report``, ``satkit plot`` and ``satkit tensorboard`` read.

How it hooks into Lightning:

* ``on_train_batch_start`` reads the batch's targets (and dataset indices) and announces them
  to the recorder (``set_target``), so it reduces the logits and their gradients as they come
  and keeps nothing of size (tokens x vocabulary);
* ``on_before_backward`` gives the recorder the loss (``set_loss``): when it is a
  cross-entropy of the head's logits, the recorder reads log p_y from the loss's own
  log-softmax instead of computing a second one;
* ``on_before_optimizer_step`` (after backward, before the step and ``zero_grad``) closes the
  recorder's step: with ``accumulate_grad_batches=k`` once per k micro-batches, their targets
  and indices concatenated;
* validation and the sanity check run in eval mode under ``no_grad``: the recorder ignores
  those forwards;
* at ``on_train_end`` the recorder is closed (on every rank: it merges the ranks' statistics
  under DDP) and rank 0 writes summary.json. The main scalars go to the LightningModule's
  loggers when the recorder flushes (never a host sync per step).

The gradient columns are the per-position gradient of the step's loss when that loss is the
mean over the step's positions (the recorder's convention). Lightning divides each
micro-batch's loss by ``accumulate_grad_batches``, which is that mean when the micro-batches
are equally large; a short last batch (or an epoch whose batch count is not a multiple of
``accumulate_grad_batches``) makes that step's gradient columns ``n_micro * k / n_step`` times
too small or large. A GradScaler (``precision="16-mixed"``) multiplies them by its scale. At
the end the callback warns when the recorded target gradient is not 1 - p_y (what cross-entropy
gives), with the factor.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from satkit.columns import QUANTITIES, column_names, tensorboard_tag
from satkit.hooks.options import RecorderOptions, recorder_options
from satkit.integrations.common import find_head, missing_extra
from satkit.integrations.session import (
    RecordingSession,
    SessionOwner,
    run_config,
    summary_fields,
)
from satkit.run_writer import RunWriter

try:
    import lightning.pytorch as _pl
except ImportError:  # the standalone package has the same Callback API
    try:
        import pytorch_lightning as _pl  # type: ignore[no-redef]
    except ImportError:
        _pl = None  # type: ignore[assignment]

__all__ = ["LOGGER_SCALARS", "SaturationCallback"]

#: The metrics columns sent to the LightningModule's loggers by default, as
#: ``<group>/<column>`` (``saturation/p_target_median``, ...).
LOGGER_SCALARS = ("p_target_median", "p_target_noisy_median", "saturated_frac",
                  "grad_target_mean")

_Base: type = object if _pl is None else _pl.Callback
_GROUPS = {q.name: q.group for q in QUANTITIES}

BatchToTarget = Callable[[Any], "Tensor | tuple[Tensor, Tensor | None]"]


class _LoggerRows:
    """A sink keeping the logged scalars of each flushed row until the training thread hands
    them to the loggers (rows arrive on the recorder's writer thread; a deque is thread-safe
    for one appender and one consumer)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.tags = {c: tensorboard_tag(c) or f"{_GROUPS[c]}/{c}" for c in columns}
        self.pending: deque[tuple[int, dict[str, float]]] = deque()

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            values = {tag: float(row[c]) for c, tag in self.tags.items() if row[c] == row[c]}
            self.pending.append((int(row["step"]), values))

    def close(self) -> None:
        """Nothing to finish: the callback drains :attr:`pending`."""


def _integer_tensor(name: str, value: object, shape: tuple[int, ...] | None = None) -> Tensor:
    if not isinstance(value, Tensor) or value.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"the batch's {name} must be an integer tensor, got "
                         f"{getattr(value, 'dtype', type(value).__name__)}; pass "
                         "batch_to_target=... to say where the targets are")
    if shape is not None and tuple(value.shape) != shape:
        raise ValueError(f"the batch's {name} must have shape {shape} (one dataset index per "
                         f"sample), got {tuple(value.shape)}; pass batch_to_target=... to say "
                         "where the indices are")
    return value


class SaturationCallback(SessionOwner, _Base):
    """Record p_y saturation of a LightningModule's head in every training step.

    Args:
        head: the head (a submodule of the LightningModule producing the logits, Linear-like:
            ``nn.Linear``, a satkit head, a tied output layer), or its dotted path on the
            LightningModule (``"classifier"``, ``"model.lm_head"``).
        out: the run directory to create; never overwritten: when it exists and is not empty,
            ``out-1``, ``out-2``, ... (see :attr:`run_dir`).
        options: the recorder's settings (:class:`~satkit.hooks.RecorderOptions`).
        **settings: :class:`~satkit.hooks.RecorderOptions` fields replacing those of
            ``options`` (``every=2`` is ``options=RecorderOptions(every=2)``).
        num_samples: the training set's size for the per-sample record; default: the length of
            the training DataLoader's dataset, when the batches carry dataset indices.
        target_key, index_key: where a dict batch holds the targets (required) and the dataset
            indices (optional: without them, no per-sample record).
        batch_to_target: ``batch -> target`` or ``batch -> (target, index or None)``, for any
            other batch layout. Default: dict batches by key, and tuples ``(x, y)`` or
            ``(x, y, index)``. The target must match the head's logits: (N,) for (N, C),
            (N, T) for (N, T, C) (for a language model whose loss compares ``logits[:, t]``
            with ``tokens[:, t + 1]``, return the shifted tokens, padded with ``ignore_index``).
        logger_scalars: metrics columns sent to the LightningModule's loggers at each flush,
            as ``<group>/<column>``; ``()`` sends none.
        dataset: the data set's name in config.json; default: the dataset's class name.
        config: entries added to config.json (they override the callback's own).

    Each ``fit`` writes a new run directory whose steps count from 0 (also when it resumes from
    a checkpoint; the loggers get the trainer's global step).

    Attributes:
        run_dir: the directory written (on rank 0; None before ``fit`` and on other ranks).
        summary: summary.json as written at the end of ``fit`` (rank 0).

    Raises:
        ImportError: Lightning is not installed (``pip install 'satkit[lightning]'``).
        ValueError: a setting out of range, or a ``logger_scalars`` entry that is not a
            metrics column; at ``fit``: a head path that does not exist (the message lists the
            model's children), a batch whose targets cannot be found.

    Example:
        >>> from lightning.pytorch import Trainer                  # doctest: +SKIP
        >>> callback = SaturationCallback("classifier", "runs/mlp")  # doctest: +SKIP
        >>> Trainer(max_epochs=2, callbacks=[callback]).fit(module, loader)  # doctest: +SKIP
        >>> callback.run_dir                                       # doctest: +SKIP
        PosixPath('runs/mlp')
    """

    def __init__(
        self,
        head: str | nn.Module,
        out: str | os.PathLike[str],
        *,
        options: RecorderOptions | None = None,
        num_samples: int | None = None,
        target_key: str = "labels",
        index_key: str | None = "index",
        batch_to_target: BatchToTarget | None = None,
        logger_scalars: Sequence[str] = LOGGER_SCALARS,
        dataset: str | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        if _pl is None:
            raise missing_extra("Lightning", "lightning")
        super().__init__()
        self.options = recorder_options(options, settings, who="SaturationCallback")
        if not isinstance(head, (str, nn.Module)):
            raise TypeError(f"head must be a submodule or its dotted path, got {head!r}")
        if batch_to_target is not None and not callable(batch_to_target):
            raise TypeError(f"batch_to_target must be callable, got {batch_to_target!r}")
        known = set(column_names(self.options.thresholds))
        unknown = [c for c in logger_scalars if c not in known]
        if unknown:
            raise ValueError(f"logger_scalars: {unknown} are not metrics columns; choose from "
                             f"{sorted(known - {'step'})}")
        self.head, self.out = head, Path(out)
        self.num_samples = num_samples
        self.target_key, self.index_key = target_key, index_key
        self.batch_to_target = batch_to_target
        self.logger_scalars = tuple(logger_scalars)
        self.dataset, self.config = dataset, dict(config or {})
        self.run_dir: Path | None = None
        self._writer: RunWriter | None = None  # this process's hold on run_dir
        self.summary: dict[str, Any] | None = None
        self._session: RecordingSession | None = None
        self._head: nn.Module | None = None
        self._rows: _LoggerRows | None = None
        self._step_offset = 0
        self._steppers: dict[int, bool] = {}
        self._config_written: dict[str, Any] = {}

    # -- Lightning hooks -------------------------------------------------------------------
    def on_train_start(self, trainer: Any, pl_module: nn.Module) -> None:
        self._close_session(flush=True)
        self._head = find_head(pl_module, self.head)
        self._step_offset = trainer.global_step
        self._steppers = {}
        self._writer = RunWriter.claim(self.out, writes=trainer.is_global_zero)
        run_dir = self._writer.path
        shared = trainer.strategy.broadcast(None if run_dir is None else str(run_dir), src=0)
        self.run_dir = run_dir
        self._config_written = self._config(trainer, pl_module, shared)
        self._writer.write_config(self._config_written)

    def on_train_batch_start(self, trainer: Any, pl_module: nn.Module, batch: Any,
                             batch_idx: int) -> None:
        target, index = self._targets(batch)
        if self._session is None:
            self._session = self._open(trainer, with_index=index is not None)
        self._session.announce(target, index)

    def on_before_backward(self, trainer: Any, pl_module: nn.Module, loss: Tensor) -> None:
        if self._session is not None:
            self._session.loss(loss)

    def on_before_optimizer_step(self, trainer: Any, pl_module: nn.Module,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self._session is not None and self._steps_with(trainer, optimizer):
            self._session.step()

    def on_train_batch_end(self, trainer: Any, pl_module: nn.Module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._drain(trainer)

    def on_train_end(self, trainer: Any, pl_module: nn.Module) -> None:
        session, self._session = self._session, None
        if session is None:
            self._release()
            return
        finished = _finished(trainer)
        self.summary = session.finish({
            **summary_fields(self._config_written), "finished": finished,
            "stop_reason": None if finished else
            "interrupted" if trainer.interrupted else "stopped early",
            "epochs": trainer.current_epoch, "epochs_planned": _planned(trainer.max_epochs),
            "steps": session.recorder.steps})
        self._release()
        self._drain(trainer)
        trainer.strategy.barrier()  # every rank leaves fit after rank 0 wrote the run

    def on_exception(self, trainer: Any, pl_module: nn.Module, exception: BaseException) -> None:
        self._close_session(flush=trainer.world_size == 1)

    # -- helpers ---------------------------------------------------------------------------
    def _open(self, trainer: Any, *, with_index: bool) -> RecordingSession:
        num_samples = None
        if with_index:
            num_samples = self.num_samples or _dataset_length(trainer)
            if num_samples is None:
                raise ValueError("the batches carry dataset indices but the training set's "
                                 "size is unknown: pass num_samples=len(train_dataset)")
        self._rows = _LoggerRows(self.logger_scalars) if self.logger_scalars else None
        assert self._head is not None, "on_train_start comes first"
        return RecordingSession(self._head, self._writer, self.options,
                                num_samples=num_samples,
                                sinks=[self._rows] if self._rows is not None else [])

    def _targets(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        if self.batch_to_target is not None:
            out = self.batch_to_target(batch)
            target, index = out if isinstance(out, tuple) else (out, None)
        elif isinstance(batch, Mapping):
            if self.target_key not in batch:
                raise ValueError(f"target_key={self.target_key!r} is not in the batch (keys: "
                                 f"{list(batch)}); pass target_key=... or batch_to_target=...")
            target = batch[self.target_key]
            index = batch.get(self.index_key) if self.index_key is not None else None
        elif isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
            target, index = batch[1], batch[2] if len(batch) == 3 else None
        else:
            raise ValueError(f"cannot find the targets in a batch of type "
                             f"{type(batch).__name__}: the default reads (x, y), (x, y, index) "
                             "or a dict; pass batch_to_target=...")
        target = _integer_tensor("target", target)
        if index is not None:
            index = _integer_tensor("index", index, (target.shape[0],))
        return target, index

    def _steps_with(self, trainer: Any, optimizer: torch.optim.Optimizer) -> bool:
        """Whether ``optimizer`` closes the recorder's step: the only one, or (with several)
        the one that updates the head (the others' steps would have no head forward)."""
        key = id(optimizer)
        if key not in self._steppers:
            weight = self._head.weight if self._head is not None else None
            self._steppers[key] = len(trainer.optimizers) <= 1 or any(
                p is weight for group in optimizer.param_groups for p in group["params"])
        return self._steppers[key]

    def _drain(self, trainer: Any) -> None:
        rows = self._rows
        while rows is not None and rows.pending:
            step, values = rows.pending.popleft()
            if values:
                for logger in trainer.loggers:
                    logger.log_metrics(values, step=step + self._step_offset)

    def _dataset_name(self, trainer: Any) -> str:
        if self.dataset is not None:
            return self.dataset
        data = getattr(trainer.train_dataloader, "dataset", None)
        return type(data).__name__ if data is not None else "unknown"

    def _config(self, trainer: Any, pl_module: nn.Module, shared: str | None) -> dict[str, Any]:
        return run_config(self._head, self.options, {
            "framework": _pl.__name__, "framework_version": _pl.__version__,
            "model": type(pl_module).__name__, "head": self._head_path(pl_module),
            "dataset": self._dataset_name(trainer), "seed": _seed(),
            "epochs": _planned(trainer.max_epochs),
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "precision": str(trainer.precision), "world_size": trainer.world_size,
            "device": str(pl_module.device), "train_size": _dataset_length(trainer),
            "out": shared,
        }, self.config)

    def _head_path(self, pl_module: nn.Module) -> str:
        if isinstance(self.head, str):
            return self.head
        return next(name for name, m in pl_module.named_modules() if m is self._head)


def _dataset_length(trainer: Any) -> int | None:
    data = getattr(trainer.train_dataloader, "dataset", None)
    try:
        return len(data) if data is not None else None
    except TypeError:  # an iterable dataset
        return None


def _finished(trainer: Any) -> bool:
    """Whether fit ran to its end: max_steps or max_epochs reached, not interrupted (an
    exception, Ctrl-C) and not stopped early (early stopping)."""
    if trainer.interrupted:
        return False
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
        return True
    planned = _planned(trainer.max_epochs)
    return planned is not None and trainer.current_epoch >= planned


def _planned(max_epochs: int | None) -> int | None:
    return max_epochs if max_epochs is not None and max_epochs >= 0 else None


def _seed() -> int | None:
    """The seed of ``seed_everything`` (Lightning keeps it in the environment), if any."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    return int(seed) if seed is not None and seed.lstrip("-").isdigit() else None
