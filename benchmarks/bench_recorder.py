"""Cost of the saturation recorder: a recorded training step vs the bare step, side by side.

Models, batch 128, Noisy Softmax head (alpha2 = 0.1):

* ``plain``: a small CNN without BatchNorm (conv32, pool, conv64, pool, FC256), 28x28;
* ``bn``: conv32/conv64/FC256 with BatchNorm (``benchlib.small_cnn``), 28x28;
* ``cifar10-paper``: the preset's VGG-like features, 32x32x3 (with ``--amp`` on a GPU: the
  issue's target there is <= 1.03).

Each is trained bare, and with a :class:`satkit.hooks.SaturationRecorder` attached (per-sample
record on for a 60 000-sample data set, a Parquet ``TableSink``, default ``flush_every=100``)
recording every step, and every 10th step. All variants are timed in interleaved blocks whose
order rotates, so drift on a busy machine hits them alike. Printed: median ms/step; the
ratio to bare, as the median over rounds of each round's pair of blocks (so drift between
rounds cancels), with its quartiles; and the recorder's own work measured directly
(:class:`TimedRecorder`: the CPU time of its hooks and ``step()`` on the training thread and
of its writer thread's flushes) as a ratio to the bare step; and that less a control
(:class:`ControlProbe`: one tiny operation at the same places, timed the same way; the
first operation after a big forward or backward pays a cold start of tens of microseconds
on a CPU, which the bare step pays too, in its optimizer). Targets on CPU: <= 1.02 every
step, <= 1.01 with every=10.

``--long`` records 300,000 steps of a tiny head (batch 8, 16 features, 10 classes, every step,
per-sample record, histograms every 100 steps; ``--sinks``: a Parquet ``TableSink`` by default,
also a ``TensorBoardSink``, or none) and prints the growth of the process's resident memory
(RSS) between step 30,000 and the end, after a flush at both (``--long-steps`` to change the
length); target: under 16 MiB. Nothing else is timed or measured in that mode.

``--scale`` also measures the per-sample record at N = 10 million samples (an
ImageNet-21k-sized data set): its device memory, the flush of 100 buffered steps, and the
samples table.

Run: ``.venv/bin/python benchmarks/bench_recorder.py`` (CPU, and CUDA too when present);
``nice -n 10 .venv/bin/python benchmarks/bench_recorder.py --long`` for the memory run.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import interleaved, medians, paired_ratio, small_cnn
from torch import nn

from satkit import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.hooks.samples import SampleTracker
from satkit.hooks.visits import VISIT_VALUES
from satkit.sinks import TableSink

NUM_SAMPLES = 60_000


class TimedRecorder(SaturationRecorder):
    """The recorder with its own work timed: the CPU time of its hooks and ``step()`` on the
    training thread, and of the flushes its writer thread finishes (which on a 2-core machine
    competes with training). What the recorder costs, measured directly as work done, so it
    does not drown in the drift of a shared machine the way a difference of step times does
    (CPU time does not count the moments another process holds the core)."""

    def __init__(self, *args, **kwargs) -> None:
        self.seconds = 0.0
        super().__init__(*args, **kwargs)
        finish = self._flusher._finish

        def timed_finish(*a):
            started = time.thread_time()
            try:
                return finish(*a)
            finally:
                self.seconds += time.thread_time() - started

        self._flusher._finish = timed_finish

    def _timed(self, method, *args, **kwargs):
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            self.seconds += time.thread_time() - started

    def _on_forward(self, *args, **kwargs):
        return self._timed(super()._on_forward, *args, **kwargs)

    def _on_grad(self, *args, **kwargs):
        return self._timed(super()._on_grad, *args, **kwargs)

    def step(self, *args, **kwargs):
        return self._timed(super().step, *args, **kwargs)


class ControlProbe:
    """The control for :class:`TimedRecorder`'s direct measure: a forward hook on the head and a
    ``step()`` at the recorder's places, each making one tiny operation, timed the same way.
    Their CPU time is what any code there pays (the first operation after a large forward or
    backward starts cold; the bare step pays that in its optimizer instead), so the recorder's
    own work less the control's is the work the recorder adds."""

    def __init__(self, head: nn.Module) -> None:
        self.seconds = 0.0
        self._pair = [torch.zeros((), device=head.weight.device)] * 2
        self._handle = head.register_forward_hook(lambda *args: self._touch())

    def _touch(self) -> None:
        started = time.thread_time()
        torch.stack(self._pair)
        self.seconds += time.thread_time() - started

    def step(self, **kwargs) -> None:
        self._touch()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._handle.remove()


def plain_cnn() -> nn.Sequential:
    """conv32 -> pool -> conv64 -> pool -> FC256, ReLU, no normalisation."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU())


def cifar10_paper() -> nn.Module:
    """The ``cifar10-paper`` preset's feature extractor (3x32x32 inputs, 256 features)."""
    from satkit.models import build_model

    return build_model("cifar10-paper", num_classes=10, in_channels=3, image_size=32).features


#: name -> (feature extractor with 256 outputs, input shape).
MODELS = {"plain": (plain_cnn, (1, 28, 28)), "bn": (small_cnn, (1, 28, 28)),
          "cifar10-paper": (cifar10_paper, (3, 32, 32))}


def make_step(model: str, device: torch.device, x: torch.Tensor, y: torch.Tensor,
              out: Path | None, every: int, amp: bool = False, control: bool = False,
              compile: bool | None = None):
    """A training step closure; with ``out``, recorded every ``every`` steps (``control``: the
    :class:`ControlProbe` instead); ``amp``: bf16 autocast for the body (the head computes in
    float32 anyway); ``compile``: the recorder's own (None: compiled on CUDA)."""
    torch.manual_seed(0)
    body = MODELS[model][0]().to(device)
    head = NoisySoftmax(256, 10, alpha2=0.1).to(device)
    opt = torch.optim.SGD([*body.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
    rec = None
    if control:
        rec = ControlProbe(head)
    elif out is not None:
        rec = TimedRecorder(head, num_samples=NUM_SAMPLES, every=every, compile=compile,
                            sinks=[TableSink(out / "metrics.parquet")])
    g = torch.Generator().manual_seed(1)
    indices = [torch.randint(0, NUM_SAMPLES, (x.shape[0],), generator=g).to(device)
               for _ in range(16)]
    count = [0]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            features = body(x)
        loss = F.cross_entropy(head(features, y), y)
        loss.backward()
        if rec is not None:
            rec.step(index=indices[count[0] % len(indices)], loss=loss.detach())
        opt.step()
        count[0] += 1

    return step, rec


def bench(model: str, device: torch.device, batch_size: int, rounds: int, steps: int,
          amp: bool = False) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *MODELS[model][1], generator=g).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        variants, recorders = {}, {}
        for name, every in (("bare", None), ("every=1", 1), ("every=10", 10), ("control", 1)):
            out = None if every is None else Path(tmp) / name
            variants[name], rec = make_step(model, device, x, y, out, every or 1, amp,
                                            control=name == "control")
            if rec is not None:
                variants[name]()
                rec.flush()  # pays the one-off import of the Parquet writer outside the timing
                recorders[name] = rec
        for rec in recorders.values():
            rec.seconds = 0.0
        times = interleaved(variants, device, rounds, steps)
        own = {name: rec.seconds / (rounds * steps) for name, rec in recorders.items()}
        for rec in recorders.values():
            rec.close()
    med = medians(times)
    print(f"[{device.type}] model {model}{' (bf16 autocast)' if amp else ''}, batch {batch_size}, "
          f"{rounds} rounds x {steps} steps, {torch.get_num_threads()} threads")
    print(f"  bare        {med['bare'] * 1e3:8.2f} ms/step (median of blocks)")
    for name, target in (("every=1", 1.02), ("every=10", 1.01)):
        ratio, q1, q3 = paired_ratio(times, name, "bare")
        direct = 1 + own[name] / med["bare"]
        net = 1 + (own[name] - own["control"] / (1 if name == "every=1" else 10)) / med["bare"]
        print(f"  {name:10s}  {med[name] * 1e3:8.2f} ms/step  ratio {ratio:.3f} (target <= "
              f"{target}; median of per-round pairs, quartiles {q1:.3f}-{q3:.3f}); the "
              f"recorder's own work {own[name] * 1e3:.3f} ms/step = {direct:.3f}, net of the "
              f"control {net:.3f}")
    print(f"  control     one tiny operation at the recorder's places: "
          f"{own['control'] * 1e3:.3f} ms/step")


def bench_scale(device: torch.device, n: int = 10_000_000, rows: int = 100,
                batch: int = 128) -> None:
    """The per-sample record at ``n`` samples: memory, a flush's update, the samples table."""
    for size in (NUM_SAMPLES, n):
        _scale(device, size, rows, batch)


def _scale(device: torch.device, n: int, rows: int, batch: int) -> None:
    tracker = SampleTracker(n, threshold=0.99).to(device)
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, n, (rows, batch), generator=g).to(device)
    per_sample = torch.rand(rows, len(VISIT_VALUES), batch, generator=g).to(device)
    tracker.update(index, per_sample, list(range(rows)))  # warm-up
    t0 = time.perf_counter()
    for k in range(5):
        tracker.update(index, per_sample, list(range(rows * (k + 1), rows * (k + 2))))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    update = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    frame = tracker.frame()
    table = time.perf_counter() - t0
    print(f"[{device.type}] per-sample record at N = {n:,}: {tracker.nbytes / 2**20:.0f} MiB on "
          f"the device ({tracker.nbytes / (n + 1):.0f} bytes/sample); a flush of {rows} steps x "
          f"{batch} samples updates it in {update * 1e3:.1f} ms; the samples table "
          f"({len(frame):,} rows, built once at close) in {table:.2f} s")


def rss_bytes() -> int:
    """The process's resident set size now (Linux: ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_long(steps: int, sinks: str, mark: int = 30_000, report_every: int = 30_000,
               trim: bool = False) -> None:
    """Record ``steps`` steps of a tiny head; print the RSS growth from step ``mark`` to the end.
    ``trim``: also print it after glibc's ``malloc_trim(0)`` at each report (a diagnostic: the
    memory the C allocator holds free is given back, so what remains is memory in use; it
    changes the later readings, so it is a separate run)."""
    import ctypes

    from satkit.sinks import TensorBoardSink

    libc = ctypes.CDLL("libc.so.6") if trim else None

    torch.manual_seed(0)
    torch.set_num_threads(1)
    batch, width, classes, num_samples = 8, 16, 10, 1024
    head = NoisySoftmax(width, classes, alpha2=0.1)
    opt = torch.optim.SGD(head.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(batch, width, generator=g) for _ in range(16)]
    ys = [torch.randint(0, classes, (batch,), generator=g) for _ in range(16)]
    idx = [torch.randint(0, num_samples, (batch,), generator=g) for _ in range(16)]
    with tempfile.TemporaryDirectory() as tmp:
        chosen = []
        if sinks in ("table", "table+tensorboard"):
            chosen.append(TableSink(Path(tmp) / "metrics.parquet"))
        if sinks == "table+tensorboard":
            chosen.append(TensorBoardSink(Path(tmp) / "tb", histogram_every=100))
        rec = SaturationRecorder(head, num_samples=num_samples, sinks=chosen,
                                 histogram_every=100)
        print(f"[cpu] --long: {steps:,} recorded steps of NoisySoftmax({width}, {classes}), batch "
              f"{batch}, every step, per-sample record of {num_samples} samples, sinks: "
              f"{', '.join(type(s).__name__ for s in chosen) or 'none'}")
        started, base = time.perf_counter(), None
        for step in range(steps):
            k = step % 16
            opt.zero_grad(set_to_none=True)
            x = xs[k].requires_grad_()
            loss = F.cross_entropy(head(x, ys[k]), ys[k])
            loss.backward()
            rec.step(index=idx[k], loss=loss.detach())
            opt.step()
            done = step + 1
            if done == mark or done % report_every == 0 or done == steps:
                rec.flush()
                gc.collect()
                now = rss_bytes()
                if libc is not None:
                    libc.malloc_trim(0)
                    trimmed = rss_bytes()
                if done == mark:
                    base = now
                    base_trimmed = trimmed if libc is not None else None
                growth = "" if base is None else f", {(now - base) / 2**20:+.1f} MiB since " \
                                                 f"step {mark:,}"
                if libc is not None:
                    growth += f"; after malloc_trim {trimmed / 2**20:.1f} MiB" + (
                        "" if base is None else f", {(trimmed - base_trimmed) / 2**20:+.1f} MiB")
                print(f"  step {done:>9,}: RSS {now / 2**20:8.1f} MiB{growth} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
        rows = len(rec.metrics())
        rec.close()
    if base is not None:
        per_step = (now - base) / (steps - mark)
        print(f"  RSS growth from step {mark:,} to {steps:,}: {(now - base) / 2**20:.1f} MiB "
              f"({per_step:.0f} bytes/step; target: under 16 MiB); metrics() returned "
              f"{rows:,} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cpu, and cuda too when available")
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all",
                        help="all: plain and bn (the CPU targets); cifar10-paper for the GPU")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast for the body")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--scale", action="store_true",
                        help="also measure the per-sample record at 10 million samples")
    parser.add_argument("--long", action="store_true",
                        help="only the memory run: RSS growth over 300,000 recorded steps")
    parser.add_argument("--long-steps", type=int, default=300_000)
    parser.add_argument("--sinks", choices=["table", "table+tensorboard", "none"],
                        default="table", help="the sinks of --long")
    parser.add_argument("--malloc-trim", action="store_true",
                        help="--long: also the RSS after glibc's malloc_trim(0) at each report")
    args = parser.parse_args()
    if args.long:
        bench_long(args.long_steps, args.sinks, mark=min(30_000, args.long_steps // 10),
                   trim=args.malloc_trim)
        return
    devices = [args.device] if args.device else ["cpu"] + (
        ["cuda"] if torch.cuda.is_available() else [])
    models = ["plain", "bn"] if args.model == "all" else [args.model]
    for name in devices:
        for model in models:
            bench(model, torch.device(name), args.batch_size, args.rounds, args.steps, args.amp)
        if args.scale:
            bench_scale(torch.device(name))


if __name__ == "__main__":
    main()
