"""Seconds per MNIST epoch: one epoch through satkit's Trainer, as ``satkit train`` runs it.

Synthetic MNIST-shaped data (60,000 x 1 x 28 x 28 float32, random labels: the time does not
depend on the values) on the device; batch 128, SGD with momentum and weight decay, the
default Noisy Softmax head, the ``SaturationRecorder`` on every step with the per-sample
record, a Parquet table sink and a TensorBoard sink (histograms every 100 steps), then the
evaluation of a test set of 1/6 the training size (MNIST's 10,000). On CUDA the model is
channels_last under bf16 autocast, as ``satkit train`` does. ``--samples`` scales the epoch
down; the time is linear in it, so both the measured time and the per-60,000 extrapolation
are printed.

Target: small-cnn <= 180 s per MNIST epoch on 2 CPU cores (about 120 s on a quiet machine).

Run: `.venv/bin/python benchmarks/bench_epoch.py [--preset mnist-paper] [--samples 6000]
[--device cuda] [--threads 1]`
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from benchlib import sync

from satkit.data import DeviceLoader
from satkit.hooks import SaturationRecorder
from satkit.models import PRESETS, build_model
from satkit.sinks import TableSink, TensorBoardSink
from satkit.training import Trainer

MNIST_TRAIN, MNIST_TEST, CHANNELS, SIZE, CLASSES = 60_000, 10_000, 1, 28, 10
TARGET_S = 180.0


def make_trainer(preset: str, samples: int, batch_size: int, device: torch.device,
                 run_dir: Path | None) -> Trainer:
    """A Trainer for one epoch of ``samples`` synthetic MNIST images, as ``satkit train``."""
    g = torch.Generator().manual_seed(0)
    n_test = max(samples * MNIST_TEST // MNIST_TRAIN, 1)
    x = torch.randn(samples + n_test, CHANNELS, SIZE, SIZE, generator=g).to(device)
    y = torch.randint(0, CLASSES, (samples + n_test,), generator=g).to(device)
    torch.manual_seed(0)
    model = build_model(preset, num_classes=CLASSES, in_channels=CHANNELS,
                        image_size=SIZE).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    train = DeviceLoader(x[:samples], y[:samples], batch_size=batch_size, seed=0)
    test = DeviceLoader(x[samples:], y[samples:], batch_size=max(batch_size, 512),
                        shuffle=False)
    sinks = [] if run_dir is None else [TableSink(run_dir / "metrics.parquet"),
                                        TensorBoardSink(run_dir, histogram_every=100)]
    recorder = SaturationRecorder(model.head, num_samples=samples, every=1, sinks=sinks)
    return Trainer(model, optimizer, train, test_data=test, epochs=1, recorder=recorder,
                   device=device, amp=device.type == "cuda", progress=False)


def timed_epoch(trainer: Trainer) -> tuple[float, float]:
    """Wall and process CPU seconds of ``fit()`` (one epoch and its evaluation) and the
    recorder's last flush."""
    sync(trainer.device)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit()
    trainer.recorder.close()
    sync(trainer.device)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="small-cnn")
    parser.add_argument("--samples", type=int, default=MNIST_TRAIN,
                        help="training images in the epoch (default: MNIST's 60,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, one per core); on a busy "
                             "machine 1 thread measures the work without the threads' waiting")
    args = parser.parse_args()
    if args.samples < args.batch_size:
        parser.error(f"--samples must be >= --batch-size ({args.batch_size})")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    # Warm-up: two steps of a throwaway trainer (kernel selection, allocator), untimed.
    timed_epoch(make_trainer(args.preset, 2 * args.batch_size, args.batch_size, device, None))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args.preset, args.samples, args.batch_size, device, Path(tmp))
        seconds, cpu_seconds = timed_epoch(trainer)
    steps = trainer.step
    per_60k = seconds * MNIST_TRAIN / args.samples
    print(f"{args.preset} on {device.type} ({torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} before the run), batch "
          f"{args.batch_size}, recorder on (per-sample record, Parquet + TensorBoard sinks)")
    print(f"  measured:  {args.samples} images, {steps} steps, {seconds:8.1f} s per epoch "
          f"(with the test evaluation), {steps / seconds:6.2f} steps/s, "
          f"{cpu_seconds:.1f} s of process CPU time")
    print(f"  per 60,000 MNIST images: {per_60k:8.1f} s per epoch")
    verdict = ""
    if args.preset == "small-cnn" and device.type == "cpu":
        verdict = " -- met" if per_60k <= TARGET_S else " -- NOT met"
    print(f"  target: small-cnn <= {TARGET_S:.0f} s per MNIST epoch on 2 CPU cores{verdict}")
    if device.type == "cpu" and load[0] > (os.cpu_count() or 1) - 0.5:
        print(f"  note: the machine was busy (load {load[0]:.1f} on {os.cpu_count()} CPUs), so the "
              "wall time is pessimistic; --threads 1 measures the work without the waiting")


if __name__ == "__main__":
    main()
