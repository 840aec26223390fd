"""Record softmax saturation inside a Hugging Face ``Trainer``: :class:`SaturationCallback`.

``pip install 'satkit[transformers]'``. Add the callback to a ``transformers.Trainer`` and
every optimizer step of ``train()`` is recorded by a :class:`~satkit.hooks.SaturationRecorder`
on the model's output layer: how close the target probability p_y is to 1 (saturation, whose
gradient p_y - 1 vanishes; Chen, Deng, Du, "Noisy Softmax", CVPR 2017, arXiv 1708.03769), per
step and per training sample, in a satkit run directory that ``satkit report``, ``satkit plot``
and ``satkit tensorboard`` read. Three kinds of models:

* sequence classification, logits (N, C): head ``"classifier"`` (BERT) or ``"score"``
  (GPT-2, Llama); the target is ``labels``;
* causal language models, logits (N, T, V): head ``"lm_head"``; the model's loss compares
  ``logits[:, t]`` with ``labels[:, t + 1]``, so the target aligned with the logits is
  ``labels[:, 1:]`` padded with -100 at the end (or the batch's ``shift_labels`` when a
  collator provides them). Statistics are per token over the non-ignored positions; the
  per-sample record is per sequence;
* token classification, logits (N, T, C): head ``"classifier"``; the target is ``labels``.

How it hooks into the Trainer, which gives callbacks no batch: a forward pre-hook on the model
reads ``labels`` from each training forward's keyword arguments and announces the aligned
target to the recorder (``set_target``), which then reduces the logits and their gradient in
its hooks and keeps nothing of size (tokens x vocabulary); a forward hook gives it the loss the
model returns (``set_loss``), whose own log-softmax of the logits it reads instead of computing
a second one. ``on_pre_optimizer_step`` (after the backward of every accumulated micro-batch
and gradient clipping, before the optimizer step and ``zero_grad``) closes the recorder's step,
so ``gradient_accumulation_steps`` micro-batches make one recorded step. Evaluation runs the
model in eval mode under ``no_grad``: ignored.

The gradient columns are the step's token count times the gradient the Trainer's loss sent to
the logits: |p_y - 1| per position when the step's loss is the mean over the step's positions.
The Trainer's loss is that mean exactly when the model divides its summed loss by the
``num_items_in_batch`` the Trainer counts over the step's micro-batches and that count equals
the recorder's positions. In transformers 5.24 two cases differ, and the end-of-training check
(a warning with the factor) catches both:

* a causal LM whose ``loss_type`` the Trainer does not recognise as shifting its labels (GPT-2)
  gets ``num_items_in_batch`` counted over the unshifted labels, one token per sequence too
  many; the callback announces that count to the recorder as the forward's gradient scale
  (``set_target(grad_scale=...)``), so the columns are |p_y - 1| exactly all the same;
* a model whose forward takes ``**kwargs`` but ignores ``num_items_in_batch`` (BERT's
  classification heads) returns a per-micro-batch mean that the Trainer then does not divide by
  ``gradient_accumulation_steps``: the columns (and the gradients the model trains with) are
  ``gradient_accumulation_steps`` x |p_y - 1|.

Under ``torch.distributed`` the recorder merges the ranks at each flush and rank 0 writes the
run directory. With ``average_tokens_across_devices`` the Trainer divides each rank's summed
loss by the global token count and multiplies it by the world size, so the columns read
(world size x local tokens / global tokens) x |p_y - 1|: 1 for equally many tokens per rank
(read from the Trainer's code; the multi-process path is tested for Lightning only).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from satkit.hooks import distributed
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
    import transformers as _hf
    from transformers import TrainerCallback as _Base
except ImportError:
    _hf = None  # type: ignore[assignment]
    _Base = object  # type: ignore[assignment,misc]

__all__ = ["SaturationCallback", "shifted_target", "shifts_labels"]


def shifted_target(labels: Tensor, ignore_index: int = -100) -> Tensor:
    """The target aligned with a causal LM's logits: ``labels[:, 1:]`` padded with
    ``ignore_index`` at the end (what the model's loss compares ``logits[:, t]`` with).

    Shape: (N, T) -> (N, T). No host sync.

    Example:
        >>> shifted_target(torch.tensor([[5, 6, 7, -100]])).tolist()
        [[6, 7, -100, -100]]
    """
    return F.pad(labels[..., 1:], (0, 1), value=ignore_index)


def shifts_labels(model: nn.Module) -> bool:
    """Whether ``model``'s own loss shifts its labels (a decoder-only causal LM): its class is
    one of transformers' causal LMs (the list the Trainer's label smoother shifts for) and it
    is not an encoder-decoder model.

    Example:
        >>> shifts_labels(torch.nn.Linear(2, 2))
        False
    """
    if _hf is None:
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return False
    return type(model).__name__ in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


class SaturationCallback(SessionOwner, _Base):
    """Record p_y saturation of a transformers model's output layer in every training step.

    Args:
        head: the output layer (a submodule of the model, Linear-like) or its dotted path on
            the model: ``"classifier"``, ``"score"``, ``"lm_head"``, ``"model.lm_head"``.
        out: the run directory to create; never overwritten: when it exists and is not empty,
            ``out-1``, ``out-2``, ... (see :attr:`run_dir`).
        options: the recorder's settings (:class:`~satkit.hooks.RecorderOptions`).
        **settings: :class:`~satkit.hooks.RecorderOptions` fields replacing those of
            ``options`` (``every=2`` is ``options=RecorderOptions(every=2)``).
        index_key: a column of the training batches holding each example's dataset index
            (0 <= index < num_samples), for the per-sample record; the callback removes it
            from the model's inputs. The Trainer drops columns its model does not take unless
            ``TrainingArguments(remove_unused_columns=False)``. None: no per-sample record.
        num_samples: the training set's size; default: the training DataLoader's dataset
            length.
        shift_labels: whether the target is ``labels[:, 1:]`` (causal LM); None: decided from
            the model's class (:func:`shifts_labels`).
        dataset: the data set's name in config.json; default: the dataset's class name.
        config: entries added to config.json (they override the callback's own).

    Attributes:
        run_dir: the directory written (on the main process; None before ``train()`` and on
            other ranks).
        summary: summary.json as written at the end of ``train()`` (main process).

    Raises:
        ImportError: transformers is not installed (``pip install 'satkit[transformers]'``),
            or is older than 4.46 (no ``on_pre_optimizer_step`` event).
        ValueError: a setting out of range; at ``train()``: a head path that does not exist
            (the message lists the model's children), ``label_smoothing_factor > 0`` (the
            Trainer then keeps the labels from the model), a training forward without
            ``labels``, a missing ``index_key`` column.

    If ``train()`` raises, call :meth:`close` to remove the hooks and close the run's files.
    Each ``train()`` writes a new run directory whose steps count from 0 (also when it resumes
    from a checkpoint).

    Example:
        >>> callback = SaturationCallback("lm_head", "runs/lm")          # doctest: +SKIP
        >>> Trainer(model, args, train_dataset=ds, callbacks=[callback]).train()  # doctest: +SKIP
        >>> satkit.analysis.load_run(callback.run_dir)                   # doctest: +SKIP
    """

    def __init__(
        self,
        head: str | nn.Module,
        out: str | os.PathLike[str],
        *,
        options: RecorderOptions | None = None,
        index_key: str | None = None,
        num_samples: int | None = None,
        shift_labels: bool | None = None,
        dataset: str | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        if _hf is None:
            raise missing_extra("transformers", "transformers")
        if not hasattr(_Base, "on_pre_optimizer_step"):
            raise ImportError(f"satkit's transformers callback needs transformers >= 4.46 "
                              f"(found {_hf.__version__}): pip install 'satkit[transformers]'")
        self.options = recorder_options(options, settings, who="SaturationTrainerCallback")
        if not isinstance(head, (str, nn.Module)):
            raise TypeError(f"head must be a submodule or its dotted path, got {head!r}")
        if shift_labels is not None and not isinstance(shift_labels, bool):
            raise ValueError(f"shift_labels must be true, false or None, got {shift_labels!r}")
        self.head, self.out = head, Path(out)
        self.index_key, self.num_samples = index_key, num_samples
        self.shift_labels = shift_labels
        self.dataset, self.config = dataset, dict(config or {})
        self.run_dir: Path | None = None
        self._writer: RunWriter | None = None  # this process's hold on run_dir
        self.summary: dict[str, Any] | None = None
        self._session: RecordingSession | None = None
        self._handles: list[RemovableHandle] = []
        self._shift = False
        self._config_written: dict[str, Any] = {}

    # -- Trainer events --------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                       train_dataloader: Any = None, **kwargs: Any) -> None:
        self.close()
        if model is None:
            raise ValueError("on_train_begin got no model (the Trainer passes it)")
        if getattr(args, "label_smoothing_factor", 0.0):
            raise ValueError("label_smoothing_factor > 0: the Trainer then computes the loss "
                             "itself and never passes `labels` to the model, so the callback "
                             "cannot see the targets; train without label smoothing")
        head = find_head(model, self.head)
        self._shift = self.shift_labels if self.shift_labels is not None else shifts_labels(model)
        dataset = getattr(train_dataloader, "dataset", None)
        num_samples = None
        if self.index_key is not None:
            num_samples = self.num_samples or _length(dataset)
            if num_samples is None:
                raise ValueError(f"index_key={self.index_key!r} needs the training set's size: "
                                 "pass num_samples=len(train_dataset)")
        self._writer = RunWriter.claim(self.out, writes=state.is_world_process_zero)
        run_dir = self._writer.path
        self.run_dir = run_dir
        self._config_written = run_config(head, self.options, {
            "framework": "transformers", "framework_version": _hf.__version__,
            "model": type(model).__name__, "head": self._head_path(model, head),
            "task": "causal-lm" if self._shift else "classification",
            "dataset": self.dataset or (type(dataset).__name__ if dataset is not None
                                        else "unknown"),
            "seed": args.seed, "epochs": _planned_epochs(args),
            "batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "lr": args.learning_rate, "world_size": args.world_size,
            "device": str(args.device), "train_size": _length(dataset),
            "out": _shared_path(run_dir),
        }, self.config)
        self._writer.write_config(self._config_written)
        self._session = RecordingSession(head, self._writer, self.options, num_samples=num_samples)
        self._handles = [model.register_forward_pre_hook(self._before_forward, with_kwargs=True),
                         model.register_forward_hook(self._after_forward)]

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._session is not None:
            self._session.step()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        session, self._session = self._session, None
        self._remove_hook()
        if session is None:
            self._release()
            return
        planned = _planned_epochs(args)
        finished = state.max_steps > 0 and state.global_step >= state.max_steps
        self.summary = session.finish({
            **summary_fields(self._config_written), "finished": finished,
            "stop_reason": None if finished else "stopped early",
            "epochs": int(state.epoch or 0), "epochs_planned": planned,
            "steps": session.recorder.steps})
        self._release()

    def close(self) -> None:
        """Remove the hooks and close the run's files after ``train()`` raised (idempotent;
        ``train()`` calls it at its start and end itself)."""
        self._remove_hook()
        self._close_session(flush=not distributed.is_distributed())

    # -- the forward pre-hook --------------------------------------------------------------
    def _before_forward(self, module: nn.Module, args: tuple,
                        kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        """Announce the target of a training forward; take the index column out of the
        model's inputs (in evaluation too: the model does not accept it)."""
        index = None
        if self.index_key is not None:
            kwargs = dict(kwargs)
            index = kwargs.pop(self.index_key, None)
        if not (module.training and torch.is_grad_enabled()) or self._session is None:
            return args, kwargs
        target = kwargs.get("shift_labels") if self._shift else None
        if target is None:
            labels = kwargs.get("labels")
            if labels is None:
                raise ValueError(
                    "SaturationCallback: a training forward of the model got no `labels` "
                    "keyword (a compute_loss_func or label smoothing keeps them from the model); "
                    "the recorder needs the targets")
            target = shifted_target(labels, self.options.ignore_index) if self._shift \
                else labels
        if self.index_key is not None and index is None:
            raise ValueError(f"index_key={self.index_key!r}: the training batch has no such "
                             "column; the Trainer removes columns the model does not take "
                             "unless TrainingArguments(remove_unused_columns=False)")
        # A causal LM divides its summed loss by the Trainer's num_items_in_batch: announced,
        # it makes the gradient columns per position (|dL_i/df_y| = 1 - p_y) exactly.
        scale = kwargs.get("num_items_in_batch") if self._shift else None
        self._session.announce(target, index, grad_scale=scale)
        return args, kwargs

    def _after_forward(self, module: nn.Module, args: tuple, output: Any) -> None:
        """Give the recorder the loss the model returned (None when it returned none)."""
        if self._session is None or not (module.training and torch.is_grad_enabled()):
            return
        loss = output.get("loss") if isinstance(output, Mapping) else None
        self._session.loss(loss if isinstance(loss, Tensor) else None)

    def _remove_hook(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _head_path(self, model: nn.Module, head: nn.Module) -> str:
        if isinstance(self.head, str):
            return self.head
        return next(name for name, m in model.named_modules() if m is head)


def _length(dataset: Any) -> int | None:
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:  # an iterable dataset
        return None


def _planned_epochs(args: Any) -> int | None:
    return None if args.max_steps and args.max_steps > 0 else int(args.num_train_epochs)


def _shared_path(run_dir: Path | None) -> str | None:
    """The main process's run directory, on every rank (one broadcast at train start)."""
    if not distributed.is_distributed():
        return None if run_dir is None else str(run_dir)
    box = [None if run_dir is None else str(run_dir)]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
