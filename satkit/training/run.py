"""``train(config)``: build data, model, optimizer, recorder and sinks, run, write the run dir.

This module only composes; the loop is :class:`satkit.training.trainer.Trainer`.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from satkit import schema
from satkit._version import __version__
from satkit.training.checkpoint import load_checkpoint, save_checkpoint
from satkit.training.config import ConfigError, TrainConfig
from satkit.training.distributed import DistContext, setup_distributed
from satkit.training.run_dir import CHECKPOINT, atomic_write_text, create_run_dir, write_json
from satkit.training.trainer import EpochResult, Trainer

__all__ = ["RunResult", "default_run_dir", "train"]

#: Config fields that must match between a checkpoint and ``--resume``.
_RESUME_KEYS = ("dataset", "model", "loss", "alpha2", "noise", "xi_per", "epochs", "batch_size",
                "lr", "seed", "split_seed", "thresholds", "every")


@dataclass
class RunResult:
    """What a finished run returns: its directory and its summary (also ``summary.json``)."""

    run_dir: Path
    summary: dict[str, Any]


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.dataset}_alpha2={config.alpha2:g}_seed={config.seed}"


def _resolve(config: TrainConfig) -> TrainConfig:
    from satkit.models import default_preset

    return config if config.model else config.replace(model=default_preset(config.dataset))


def _share_path(path: Path | None, ctx: DistContext) -> Path:
    """Rank 0 chose the run directory; every rank uses the same one."""
    if not ctx.distributed:
        assert path is not None
        return path
    box = [str(path) if path is not None else None]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def _write_epochs(path: Path, history: list[EpochResult]) -> None:
    buf = io.StringIO()
    fields = list(EpochResult.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in history:
        writer.writerow(asdict(row))
    atomic_write_text(path, buf.getvalue())


def _build(config: TrainConfig, ctx: DistContext, run_dir: Path):
    """Data, model, optimizer, schedule, sinks and recorder for ``config``."""
    from satkit.data import DeviceLoader, cifar_augment, load_dataset
    from satkit.heads import make_head_and_loss
    from satkit.hooks import SaturationRecorder
    from satkit.models import build_model
    from satkit.sinks import TableSink, TensorBoardSink

    data = load_dataset(config.dataset, data_dir=config.data_dir, device=ctx.device,
                        seed=config.split_seed)
    made: dict[str, Any] = {}

    def head(in_features: int, num_classes: int) -> torch.nn.Module:
        made["head"], made["loss_fn"] = make_head_and_loss(
            config.loss, in_features, num_classes, **config.head_options())
        return made["head"]

    model = build_model(config.model, num_classes=data.num_classes,
                        in_channels=data.in_channels, head=head).to(ctx.device)
    loss_fn = made["loss_fn"].to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    milestones = sorted({max(1, round(f * config.epochs)) for f in config.lr_milestones})
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, config.lr_gamma)
    augment = cifar_augment if config.augment else None
    train_loader = DeviceLoader(data.train_x, data.train_y, batch_size=config.batch_size,
                                shuffle=True, seed=config.seed, augment=augment,
                                rank=ctx.rank, world_size=ctx.world_size)
    test_loader = DeviceLoader(data.test_x, data.test_y, batch_size=max(config.batch_size, 512),
                               shuffle=False, rank=ctx.rank, world_size=ctx.world_size)
    sinks = []
    table = None
    if ctx.is_main:
        table = TableSink(run_dir / schema.METRICS, resume=config.resume)
        sinks = [table, TensorBoardSink(run_dir, histogram_every=config.histogram_every)]
    recorder = SaturationRecorder(
        model.head, thresholds=config.thresholds, num_samples=data.train_x.shape[0],
        every=config.every, flush_every=config.flush_every, sinks=sinks,
        histogram_every=config.histogram_every)
    return (data, model, loss_fn, optimizer, schedule, train_loader, test_loader, recorder,
            table, sinks)


def _summary(config: TrainConfig, trainer: Trainer, metrics, device: torch.device) -> dict:
    from satkit.analysis import onset_step

    errors = [r.test_error for r in trainer.history]
    return {
        "dataset": config.dataset, "model": config.model, "loss": config.method,
        "alpha2": config.effective_alpha2,
        "noise": config.noise if config.effective_alpha2 > 0 else "none", "seed": config.seed,
        "epochs": len(trainer.history), "steps": trainer.step,
        "test_error": errors[-1] if errors else None,
        "best_test_error": min(errors) if errors else None,
        "train_error": trainer.history[-1].train_error if trainer.history else None,
        "onset_step": onset_step(metrics, tau=config.thresholds[-1]),
        "seconds": round(trainer.seconds, 3), "device": str(device),
        "seconds_per_step": trainer.seconds / max(trainer.step, 1),
        "satkit_version": __version__,
    }


def _write_hparams(sinks: list[Any], config: TrainConfig, summary: dict[str, Any]) -> None:
    hparams = {k: v for k, v in config.to_dict().items()
               if isinstance(v, (int, float, str, bool)) and k not in ("out", "data_dir", "quiet")}
    onset = summary["onset_step"]
    metrics = {"test_error": summary["test_error"], "onset_step": -1 if onset is None else onset}
    for sink in sinks:
        if hasattr(sink, "write_hparams"):
            sink.write_hparams(hparams, metrics)


def train(config: TrainConfig) -> RunResult:
    """Train one run as ``config`` says and write its run directory.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel, the data is sharded by
    rank, the recorder merges the ranks' statistics and only rank 0 writes.

    Raises:
        ConfigError: an inconsistent config (e.g. ``--resume`` with different settings).
        StopRequested: SIGINT/SIGTERM; the state was saved, ``--resume`` continues.
        NonFiniteError: the loss became NaN/Inf.
    """
    ctx = setup_distributed(config.device)
    config = _resolve(config)
    torch.manual_seed(config.seed * 1000 + ctx.rank)
    run_dir = None
    if ctx.is_main:
        run_dir = create_run_dir(config.out or default_run_dir(config), resume=config.resume)
    run_dir = _share_path(run_dir, ctx)
    checkpoint_path = run_dir / CHECKPOINT
    state = None
    if config.resume:
        state = load_checkpoint(checkpoint_path)
        saved = state["config"]
        changed = [k for k in _RESUME_KEYS if saved.get(k) != config.to_dict().get(k)]
        if changed:
            raise ConfigError(f"--resume: {', '.join(changed)} differ(s) from the checkpoint's "
                              f"config in {run_dir}")
    (data, model, loss_fn, optimizer, schedule, train_loader, test_loader, recorder, table,
     sinks) = _build(config, ctx, run_dir)
    if ctx.is_main:
        (run_dir / "figures").mkdir(exist_ok=True)
        write_json(run_dir / schema.CONFIG, {
            **config.to_dict(), "method": config.method,
            "effective_alpha2": config.effective_alpha2, "out": str(run_dir),
            "satkit_version": __version__,
            "torch_version": torch.__version__, "device": str(ctx.device),
            "world_size": ctx.world_size, "train_size": int(data.train_x.shape[0]),
            "test_size": int(data.test_x.shape[0]), "num_classes": data.num_classes})
    net = model
    if ctx.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)

    def on_epoch(_: EpochResult) -> None:
        if ctx.is_main:
            _write_epochs(run_dir / schema.EPOCHS, trainer.history)

    def on_checkpoint(st: dict[str, Any]) -> None:
        if ctx.is_main:
            save_checkpoint(checkpoint_path, {**st, "config": config.to_dict()})

    trainer = Trainer(net, optimizer, train_loader, test_data=test_loader, epochs=config.epochs,
                      schedule=schedule, recorder=recorder, loss_fn=loss_fn, device=ctx.device,
                      amp=config.amp and ctx.device.type == "cuda",
                      progress=not config.quiet and ctx.is_main,
                      on_epoch=on_epoch, on_checkpoint=on_checkpoint)
    if state is not None:
        trainer.load_state_dict(state)
        if table is not None:
            table.truncate_after(trainer.step - 1)
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    with recorder:  # closes (flushes) the recorder and its sinks even when training raises
        trainer.fit()
        if ctx.is_main:
            summary = _summary(config, trainer, recorder.metrics(), ctx.device)
            summary["wall_seconds"] = round(time.perf_counter() - started, 3)
            write_json(run_dir / schema.SUMMARY, summary)
            _write_hparams(sinks, config, summary)
    if ctx.is_main and config.figures:
        from satkit.analysis import load_run
        from satkit.training.figures import save_dashboard

        save_dashboard([load_run(run_dir)], run_dir / "figures" / "dashboard.png")
    if ctx.distributed:
        dist.barrier()  # every rank leaves together, after rank 0 wrote the run directory
    return RunResult(run_dir=run_dir, summary=summary)
