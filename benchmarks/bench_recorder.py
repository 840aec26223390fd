"""Cost of the saturation recorder: a recorded training step vs the bare step.

A small CNN (2 conv + BatchNorm + ReLU + pool, FC 256, Noisy Softmax head, batch 128, 28x28),
trained bare and with a :class:`satkit.hooks.SaturationRecorder` attached (every=1, per-sample
record on for a 60 000-sample dataset, a ``TableSink`` in a temporary directory, default
``flush_every=100``). Both are timed in interleaved blocks, alternating order, so that drift
hits both alike. Prints the median ms/step of each and their ratio (target: <= 1.03 on CPU),
the ratio of the fastest blocks (other processes only ever add time, so it is the estimate
least disturbed by a busy machine) and the ratio of total times (which includes the flushes,
the recorder's only host syncs).

Run: ``.venv/bin/python benchmarks/bench_recorder.py`` (CPU, and CUDA too when present), or
``--device cpu`` / ``--device cuda`` for one. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import interleaved, medians, small_cnn

from satkit import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.sinks import TableSink

NUM_SAMPLES = 60_000


def make_step(device: torch.device, x: torch.Tensor, y: torch.Tensor,
              recorder_dir: Path | None):
    """A training step closure; with ``recorder_dir``, recorded. Returns (step, recorder)."""
    torch.manual_seed(0)
    body = small_cnn().to(device)
    head = NoisySoftmax(256, 10, alpha2=0.1).to(device)
    opt = torch.optim.SGD([*body.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
    rec = None
    if recorder_dir is not None:
        rec = SaturationRecorder(head, num_samples=NUM_SAMPLES, every=1,
                                 sinks=[TableSink(recorder_dir / "metrics.parquet")])
    g = torch.Generator().manual_seed(1)
    indices = [torch.randint(0, NUM_SAMPLES, (x.shape[0],), generator=g).to(device)
               for _ in range(16)]
    count = [0]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(body(x), y), y)
        loss.backward()
        if rec is not None:
            rec.step(index=indices[count[0] % len(indices)], loss=loss.detach())
        opt.step()
        count[0] += 1

    return step, rec


def bench(device: torch.device, batch_size: int, rounds: int, steps: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        bare, _ = make_step(device, x, y, None)
        recorded, rec = make_step(device, x, y, Path(tmp))
        recorded()
        rec.flush()  # pays the one-off import of the Parquet writer outside the timing
        times = interleaved({"bare": bare, "recorded": recorded}, device, rounds, steps)
        rec.close()
        rows = len(rec.metrics())
    med = medians(times)
    total = {k: sum(v) for k, v in times.items()}
    print(f"[{device.type}] batch {batch_size}, {rounds} rounds x {steps} steps, "
          f"{torch.get_num_threads()} threads, {rows} rows recorded")
    for k, v in med.items():
        print(f"  {k:9s} {v * 1e3:8.2f} ms/step (median of blocks)")
    ratio = med["recorded"] / med["bare"]
    best = min(times["recorded"]) / min(times["bare"])
    print(f"  ratio recorded/bare on {device.type}: {ratio:.3f} median (target <= 1.03 on CPU); "
          f"{best:.3f} fastest block (robust to other load on the machine); "
          f"{total['recorded'] / total['bare']:.3f} total time (includes the flushes)")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cpu, and cuda too when available")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    args = parser.parse_args()
    devices = [args.device] if args.device else ["cpu"] + (
        ["cuda"] if torch.cuda.is_available() else [])
    for name in devices:
        bench(torch.device(name), args.batch_size, args.rounds, args.steps)


if __name__ == "__main__":
    main()
