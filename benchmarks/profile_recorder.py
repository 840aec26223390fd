"""Where a recorded step's time goes: the recorder's host and device work, op by op.

A diagnostic beside ``bench_recorder.py`` (which says *how much* the recorder costs; this says
*where*). On the chosen model (default: ``cifar10-paper`` with bf16 autocast, the GPU case):

1. Step time of the bare step and of a step recorded every step with the compiled statistics
   (the default on CUDA) and with the eager ones, interleaved (median ms/step, ratio to bare).
2. ``torch.profiler`` over recorded steps: the ops with the most self CPU time and, on CUDA,
   the most self device time, and the device time per step against the bare step's.
3. ``cProfile`` of one ``Trainer`` epoch as ``satkit train`` runs it (per-sample record,
   Parquet sink): the functions with the most own time on the training thread.

Run: ``.venv/bin/python benchmarks/profile_recorder.py [--device cuda] [--steps 20]``.
A diagnostic, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_recorder import MODELS, make_step
from benchlib import sync
from torch.profiler import ProfilerActivity, profile

from satkit import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.sinks import TableSink


def timed(variants: dict, device: torch.device, rounds: int, steps: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        names = list(variants)
        for k in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                variants[k]()
            sync(device)
            times[k].append((time.perf_counter() - t0) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def profile_steps(step, device: torch.device, steps: int):
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    return prof.key_averages()


def device_us(averages) -> float:
    """The device's busy time: the kernels' own time (an op's row repeats its kernels')."""
    return sum(e.self_device_time_total for e in averages
               if e.device_type == torch.autograd.DeviceType.CUDA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=list(MODELS), default="cifar10-paper")
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trainer-samples", type=int, default=8192)
    args = parser.parse_args()
    device, amp = torch.device(args.device), not args.no_amp
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, *MODELS[args.model][1], generator=g).to(device)
    y = torch.randint(0, 10, (128,), generator=g).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        variants, recs = {}, []
        for name, out, comp in (("bare", None, None), ("compiled", "c", True),
                                ("eager", "e", False)):
            variants[name], rec = make_step(args.model, device, x, y, out and Path(tmp) / out,
                                            every=1, amp=amp, compile=comp)
            for _ in range(3):
                variants[name]()
            if rec is not None:
                rec.flush()
                recs.append(rec)
        med = timed(variants, device, args.rounds, args.steps)
        print(f"[{device.type}] {args.model}, amp={amp}, batch 128: ms/step (median of "
              f"{args.rounds} interleaved blocks of {args.steps})")
        for k, v in med.items():
            print(f"  {k:9s} {v * 1e3:8.3f}   ratio {v / med['bare']:.3f}")
        base = profile_steps(variants["bare"], device, args.steps)
        for name in ("compiled", "eager"):
            averages = profile_steps(variants[name], device, args.steps)
            print(f"\n--- profiler, recorded ({name}), {args.steps} steps")
            if device.type == "cuda":
                print(f"  device time per step: recorded {device_us(averages) / args.steps:.0f} us,"
                      f" bare {device_us(base) / args.steps:.0f} us")
                print(averages.table(sort_by="self_cuda_time_total", row_limit=15,
                                     max_name_column_width=60))
            print(averages.table(sort_by="self_cpu_time_total", row_limit=25,
                                 max_name_column_width=60))
        for rec in recs:
            rec.close()
    trainer_profile(args, device, amp)


def trainer_profile(args, device: torch.device, amp: bool) -> None:
    from satkit.data import DeviceLoader
    from satkit.models import build_model
    from satkit.training import Trainer

    g = torch.Generator().manual_seed(0)
    channels, size = MODELS[args.model][1][0], MODELS[args.model][1][1]
    if args.model != "cifar10-paper":
        return
    x = torch.randn(args.trainer_samples, channels, size, size, generator=g).to(device)
    y = torch.randint(0, 10, (args.trainer_samples,), generator=g).to(device)
    head = NoisySoftmax(256, 10, alpha2=0.1)
    model = build_model("cifar10-paper", num_classes=10, in_channels=3, image_size=32,
                        head=head).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with tempfile.TemporaryDirectory() as tmp:
        rec = SaturationRecorder(model.head, num_samples=args.trainer_samples,
                                 sinks=[TableSink(Path(tmp) / "metrics.parquet")])
        loader = DeviceLoader(x, y, batch_size=128, seed=0, drop_last=True)
        trainer = Trainer(model, opt, loader, epochs=1, recorder=rec, device=device, amp=amp,
                          progress=False)
        trainer.fit()  # warm-up epoch
        trainer.epochs = 2
        prof = cProfile.Profile()
        sync(device)
        t0 = time.perf_counter()
        prof.enable()
        trainer.fit()
        sync(device)
        prof.disable()
        wall = time.perf_counter() - t0
        rec.close()
    stream = io.StringIO()
    pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(25)
    print(f"\n--- cProfile, one Trainer epoch ({len(loader)} steps, {wall:.2f} s wall), "
          f"training thread, by own time")
    print(stream.getvalue()[-6000:])


if __name__ == "__main__":
    main()
