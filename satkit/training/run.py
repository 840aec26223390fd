"""``train(config)``: compose one run, claim its directory, train, and write what it did.

Order, so that a refused run leaves nothing behind and a failed one loses nothing:

1. check the config and the device (:class:`ConfigError`), load the data and build the parts
   (:mod:`satkit.training.compose`); nothing is written yet;
2. claim the run directory atomically (:func:`satkit.run_dir.create_run_dir`) and
   write ``config.json``;
3. train (:class:`satkit.training.trainer.Trainer`); the recorder flushes its rows durably;
   a run that finished then measures its end-of-run calibration and writes its test
   predictions (:mod:`satkit.training.posthoc`);
4. whatever way training ended (finished, SIGINT/SIGTERM, a non-finite loss, a failing disk),
   read the run back from its directory and write ``summary.json`` from its whole tables, with
   ``finished`` saying whether every epoch ran; then the TensorBoard hparams of a finished run.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from satkit import schema
from satkit._version import __version__
from satkit.methods import NOISY
from satkit.run_dir import RunWriteError, describe_os_error
from satkit.run_writer import RunWriter
from satkit.training.checkpoint import CheckpointError, load_checkpoint
from satkit.training.compose import (
    RunParts,
    build_parts,
    check_config,
    label_columns,
    recorder_options,
)
from satkit.training.config import ConfigError, TrainConfig
from satkit.training.distributed import DistContext, setup_distributed
from satkit.training.faults import pause_from_env
from satkit.training.interrupt import Interrupted, StopRequested
from satkit.training.naming import default_run_dir
from satkit.training.outputs import RunOutputs
from satkit.training.posthoc import final_calibration
from satkit.training.progress import Progress
from satkit.training.resume import check_position, check_resume_config
from satkit.training.summary import hparams, hparams_metrics, run_summary
from satkit.training.trainer import STATE_KEYS, Trainer

__all__ = ["RunResult", "default_run_dir", "run_label", "train"]

@dataclass
class RunResult:
    """What a run returns: its directory and its summary (also ``summary.json``)."""

    run_dir: Path
    summary: dict[str, Any]


def run_label(config: TrainConfig, position: tuple[int, int] | None = None) -> str:
    """How the progress display names a run: the method as applied, alpha2, seed, and its
    position in a comparison.

    Example:
        >>> run_label(TrainConfig(alpha2=0.1), (2, 3)), run_label(TrainConfig(alpha2=0))
        ('[2/3] noisy alpha2=0.1 seed=0', 'softmax seed=0')
    """
    name = config.method
    if config.method == NOISY:
        name += f" alpha2={config.effective_alpha2:g}"
        if config.effective_noise != "annealed":
            name += f" noise={config.effective_noise}"
    name += f" seed={config.seed}"
    return name if position is None else f"[{position[0]}/{position[1]}] {name}"


def _share_path(path: Path | None, ctx: DistContext) -> Path:
    """Rank 0 chose the run directory; every rank uses the same one."""
    if not ctx.distributed:
        assert path is not None
        return path
    box = [str(path) if path is not None else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def _config_record(config: TrainConfig, parts: RunParts, ctx: DistContext,
                   run_dir: Path) -> dict[str, Any]:
    """``config.json``: the resolved config, the method as applied, the epochs at which the
    learning rate drops (from the schedule itself: a resume with more epochs keeps them),
    versions, device, threads, sizes."""
    drops = sorted(getattr(parts.schedule, "milestones", ()))
    return {**config.to_dict(), "lr_milestone_epochs": drops, "method": config.method,
            "effective_alpha2": config.effective_alpha2,
            "effective_noise": config.effective_noise, "out": str(run_dir),
            "satkit_version": __version__, "torch_version": torch.__version__,
            "device": str(ctx.device), "threads": torch.get_num_threads(),
            "world_size": ctx.world_size,
            "train_size": int(parts.data.train_x.shape[0]),
            "val_size": 0 if parts.validation is None else int(parts.validation[1].shape[0]),
            "test_size": int(parts.data.test_x.shape[0]), "num_classes": parts.data.num_classes}


def _resume_state(config: TrainConfig, parts: RunParts, run_dir: Path,
                  ctx: DistContext) -> dict[str, Any]:
    """The checkpoint to continue from, once it is known to be this run's (same settings, a
    possible position, tables that reach it)."""
    from satkit.sinks import read_table

    path = run_dir / schema.CHECKPOINT
    state = load_checkpoint(path, required=(*STATE_KEYS, "config"))
    saved = state["config"]
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path} holds no config; delete it to start the "
                              "run afresh")
    check_resume_config(saved, config, run_dir)
    recorded = None
    if ctx.is_main:
        table = read_table(run_dir / schema.METRICS)
        recorded = table["step"].tolist() if "step" in table.columns else []
    check_position(state, steps_per_epoch=len(parts.train_loader), epochs=config.epochs,
                   every=config.every, recorded_steps=recorded, path=path)
    schedule = state.get("schedule")
    if isinstance(schedule, dict) and "milestones" in schedule:  # planned for the first epochs
        parts.schedule.milestones = schedule["milestones"]
    return state


def _trainer(config: TrainConfig, parts: RunParts, ctx: DistContext, outputs: RunOutputs,
             recorder: Any, progress: Progress) -> Trainer:
    net = parts.model
    if ctx.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    trainer = Trainer(net, parts.optimizer, parts.train_loader, test_data=parts.test_loader,
                      epochs=config.epochs, schedule=parts.schedule, recorder=recorder,
                      loss_fn=parts.loss_fn, device=ctx.device,
                      amp=config.amp and ctx.device.type == "cuda", progress=progress,
                      on_epoch=outputs.on_epoch, on_checkpoint=outputs.on_checkpoint)
    outputs.trainer = trainer
    return trainer


def _restore(trainer: Trainer, state: dict[str, Any], writer: RunWriter,
             outputs: RunOutputs, run_dir: Path) -> None:
    """Load the checkpoint into the loop; cut the tables back to it."""
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {run_dir / schema.CHECKPOINT} does not fit this run "
                              f"({exc}); delete it to start the run afresh") from exc
    writer.truncate_after(trainer.step - 1)
    outputs.write_epochs(trainer.history)  # epochs past it are redone


def _finish(config: TrainConfig, trainer: Trainer, writer: RunWriter, ctx: DistContext,
            run_dir: Path, started: float, error: BaseException | None,
            final: dict[str, Any] | None = None,
            peers: Sequence[TrainConfig] = ()) -> dict[str, Any]:
    """Write summary.json (and a finished run's hparams, configured over ``peers``, the runs
    of its comparison) from the run read back from disk and the end-of-run calibration
    ``final`` (:func:`satkit.training.posthoc.final_calibration`)."""
    from satkit.analysis import load_run

    finished = error is None and trainer.epoch >= config.epochs
    try:
        summary = run_summary(config, load_run(run_dir), steps=trainer.step,
                              seconds=trainer.seconds, device=ctx.device, finished=finished,
                              wall_seconds=time.perf_counter() - started,
                              stop_reason=_stop_reason(error), final=final)
        summary = writer.write_summary(summary) or {}
        if finished and writer.tensorboard is not None:
            writer.tensorboard.write_hparams(
                hparams(config, ctx.device), hparams_metrics(summary),
                step=max(trainer.step - 1, 0),
                runs=[hparams(p, ctx.device) for p in peers] or None)
    except Exception as exc:
        if error is None:
            raise
        error.add_note(f"{run_dir / schema.SUMMARY} could not be written: {exc}")
        return {}
    finally:
        writer.close_sinks()  # the lock is held until train() returns
    return summary


def train(config: TrainConfig, *, position: tuple[int, int] | None = None,
          peers: Sequence[TrainConfig] = ()) -> RunResult:
    """Train one run as ``config`` says and write its run directory.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel, the data is sharded by
    rank, the recorder merges the ranks' statistics and only rank 0 writes.

    Args:
        config: the run.
        position: ``(k, n)``: the run is the k-th of n (shown by the progress display).
        peers: the configs of the comparison the run belongs to (its own included): the
            TensorBoard HPARAMS config lists their settings and shows by default the columns
            that differ between them (:mod:`satkit.sinks.tensorboard_layout`).

    Returns:
        The run directory and the summary written to its ``summary.json``.

    Raises:
        ConfigError: a bad or inconsistent setting, refused before anything is written (an
            unknown model, a device that is not available, ``--resume`` with other settings).
        DataError: the data set is missing or corrupt (nothing is written).
        CheckpointError: ``--resume`` from a corrupt or incomplete checkpoint.
        StopRequested: SIGINT/SIGTERM; the state was saved, ``summary.json`` says
            ``finished: false``; ``--resume`` continues in ``exc.run_dir``.
        NonFiniteError: the loss, or the features, became NaN/Inf (``finished: false``).
        RunWriteError: the run directory could not be written (read-only, disk full); its
            message names the problem and the path. What was flushed before stays readable.
    """
    started = time.perf_counter()
    try:
        ctx = setup_distributed(config.device)
    except ValueError as exc:  # a device that is not available here
        raise ConfigError(str(exc)) from exc
    config = check_config(config)
    peers = [check_config(p) for p in peers]
    torch.manual_seed(config.seed * 1000 + ctx.rank)
    parts = build_parts(config, ctx)
    writer = RunWriter.claim(config.out or default_run_dir(config), resume=config.resume,
                             writes=ctx.is_main)
    try:
        run_dir = _share_path(writer.path, ctx)
        return _train_in(run_dir, writer, config, parts, ctx, position, started, peers)
    except OSError as exc:
        if isinstance(exc, RunWriteError):
            raise
        raise RunWriteError(describe_os_error(exc, writer.path), exc.errno) from exc
    finally:
        writer.close()


def _stop_reason(error: BaseException | None) -> str | None:
    from satkit.training.trainer import NonFiniteError

    if error is None:
        return None
    if isinstance(error, StopRequested):
        return "interrupted"
    if isinstance(error, NonFiniteError):
        return "non-finite"
    return "write error" if isinstance(error, OSError) else "error"


def _train_in(run_dir: Path, writer: RunWriter, config: TrainConfig, parts: RunParts,
              ctx: DistContext, position: tuple[int, int] | None, started: float,
              peers: Sequence[TrainConfig] = ()) -> RunResult:
    how = f"the same command plus --out {run_dir} --resume"
    try:
        state = _resume_state(config, parts, run_dir, ctx) if config.resume else None
        writer.write_config(_config_record(config, parts, ctx, run_dir))
        progress = Progress(run_label(config, position),
                            enabled=not config.quiet and ctx.is_main)
        recorder = writer.recorder(parts.model.head, recorder_options(config, parts),
                                   num_samples=parts.data.train_x.shape[0],
                                   sample_columns=label_columns(parts.labels),
                                   sinks=[progress.tap] if writer.writes else ())
        outputs = RunOutputs(config, parts, writer)
        trainer = _trainer(config, parts, ctx, outputs, recorder, progress)
        if state is not None:
            try:
                _restore(trainer, state, writer, outputs, run_dir)
            except BaseException:
                recorder.close()
                writer.close()
                raise
    except KeyboardInterrupt as exc:
        what = (f"{run_dir} is as it was: continue it with {how}" if config.resume else
                f"{run_dir} holds no recorded step yet")
        raise Interrupted(f"interrupted before training started; {what}", run_dir) from exc
    error: Exception | None = None
    final = None
    try:
        with recorder:  # closes (flushes) the recorder and its sinks, also on errors
            trainer.fit()
        if ctx.is_main and trainer.epoch >= config.epochs:
            final = final_calibration(trainer, parts, run_dir,
                                      batch_size=max(config.batch_size, 512))
    except KeyboardInterrupt as exc:  # a second Ctrl-C: the process stops without a summary
        kept = (f"the checkpoint of step {trainer.checkpoint_step} and the rows flushed before "
                f"it are kept; continue with {how}" if trainer.checkpoint_step is not None else
                "no checkpoint had been written; start the run again")
        raise Interrupted(f"interrupted again before the state was saved; in {run_dir} "
                          f"{kept}", run_dir) from exc
    except Exception as exc:  # the run stopped early: its summary says how far it got
        error = exc
    try:
        summary = _finish(config, trainer, writer, ctx, run_dir, started, error, final,
                          peers) \
            if ctx.is_main else {}
    except KeyboardInterrupt as exc:
        raise Interrupted(f"interrupted while writing {run_dir / schema.SUMMARY}; the "
                          f"checkpoint and the tables are kept: {how} writes it", run_dir) from exc
    if isinstance(error, StopRequested):
        error.run_dir = run_dir
    if error is not None:
        raise error
    if ctx.is_main and config.figures:
        try:
            pause = pause_from_env()
            if pause is not None:
                pause.at("figures")
            _save_figures(run_dir)
        except KeyboardInterrupt as exc:
            raise Interrupted(f"interrupted while drawing the figures; the run in {run_dir} "
                              "is complete (summary.json: finished true); `satkit plot "
                              f"{run_dir}` draws them", run_dir) from exc
    if ctx.distributed:
        dist.barrier()  # every rank leaves together, after rank 0 wrote the run directory
    return RunResult(run_dir=run_dir, summary=summary)


def _save_figures(run_dir: Path) -> None:
    from satkit.analysis import load_run
    from satkit.training.figures import save_dashboard

    path = run_dir / schema.DASHBOARD
    try:
        save_dashboard([load_run(run_dir)], path)
    except Exception as exc:  # a figure is not worth failing a finished run for
        warnings.warn(f"{path} was not saved: {exc}", stacklevel=3)
