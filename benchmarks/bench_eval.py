"""The evaluation pass with and without the calibration measures, side by side in one run.

``before``: the evaluation as it was (forward, summed cross-entropy and errors on the device,
one ``tolist()``). ``after``: :func:`satkit.training.evaluation.evaluate`, which adds the
calibration accumulator (softmax, top-1 confidence, 15-bin sums, Brier, and the per-sample
confidence/correctness sorted at the end for the equal-mass ECE) and still reads the device
once. Both evaluate the same model on the same device-resident batches, in interleaved rounds
whose order rotates (``benchlib.interleaved``); the verdict is the median over rounds of
after / before in the same round, by wall time and by the process's CPU time. A third
variant runs the calibration accumulator alone on the same batches' logits (computed once),
so its *own work* -- ``1 + calibration / before`` per round -- is measured apart from the
forward pass, which on a busy machine the two whole-pass ratios cannot resolve.

Cases: the digits CNN on the embedded digits' test set (360 images, what `satkit train`
evaluates every epoch), on 4,096 synthetic 8x8 images (``--samples``), and with a 100-class
head (CIFAR-100's class count: the softmax and Brier work grow with the classes, the forward
pass barely).

Run: `.venv/bin/python benchmarks/bench_eval.py [--device cuda] [--rounds 30] [--threads 1]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from benchlib import interleaved, paired_ratio

from satkit.data import DeviceLoader, load_dataset
from satkit.heads import NoisySoftmax
from satkit.models import PRESETS, build_model
from satkit.training.calibration import TopOneCalibration
from satkit.training.evaluation import evaluate, split_batch


@torch.no_grad()
def evaluate_before(model: torch.nn.Module, batches: list, device: torch.device) -> tuple:
    """The evaluation loop before calibration was measured (the trainer's former code)."""
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    n = 0
    for batch in batches:
        x, y, _ = split_batch(batch)
        logits = model(x).float()
        loss = F.cross_entropy(logits, y, reduction="sum")
        sums += torch.stack([loss.double(), (logits.argmax(1) != y).sum().double()])
        n += y.shape[0]
    loss_sum, errors = sums.tolist()  # the one sync
    return loss_sum / n, 100.0 * errors / n


def make_case(name: str, device: torch.device, samples: int) -> tuple[torch.nn.Module, list]:
    classes = 100 if "100" in name else 10
    torch.manual_seed(0)
    head = NoisySoftmax(PRESETS["digits-cnn"].feature_dim, classes, alpha2=0.1)
    model = build_model("digits-cnn", num_classes=classes, in_channels=1, image_size=8,
                        head=head).to(device)
    if name.startswith("digits test"):
        data = load_dataset("digits", device=device)
        x, y = data.test_x, data.test_y
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(samples, 1, 8, 8, generator=g).to(device)
        y = torch.randint(0, classes, (samples,), generator=g).to(device)
    batches = list(DeviceLoader(x, y, batch_size=512, shuffle=False))
    return model, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=3, help="evaluations per timed block")
    parser.add_argument("--samples", type=int, default=4096, help="synthetic test-set size")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds of {args.calls} "
          "evaluations per variant")
    print("| case | samples | before ms | after ms | after / before (wall) [q1, q3] | "
          "after / before (CPU time) [q1, q3] | own work (CPU time) [q1, q3] |")
    print("|---|---:|---:|---:|---|---|---|")
    for case in ("digits test set, 10 classes", f"{args.samples} images, 10 classes",
                 f"{args.samples} images, 100 classes"):
        model, batches = make_case(case, device, args.samples)
        calibration = TopOneCalibration(device)
        with torch.no_grad():
            logits = [(model.eval()(b[0]).float(), b[1]) for b in batches]

        def alone(c=calibration, outputs=logits) -> None:
            c.reset()
            for z, y in outputs:
                c.add(z, y, z.argmax(1))
            c.result().tolist()

        steps = {
            "before": lambda m=model, b=batches: evaluate_before(m, b, device),
            "after": lambda m=model, b=batches, c=calibration: evaluate(
                m, b, device=device, calibration=c),
            "calibration": alone,
        }
        samples = sum(len(b[1]) for b in batches)
        wall = interleaved(steps, device, args.rounds, args.calls, clock=time.perf_counter)
        cpu = interleaved(steps, device, args.rounds, args.calls, clock=time.process_time)
        w, c = paired_ratio(wall, "after", "before"), paired_ratio(cpu, "after", "before")
        own = sorted(1 + a / b for a, b in zip(cpu["calibration"], cpu["before"], strict=True))
        q1, med, q3 = statistics.quantiles(own, n=4) if len(own) > 1 else own * 3
        print(f"| {case} | {samples} | {1e3 * statistics.median(wall['before']):.2f} | "
              f"{1e3 * statistics.median(wall['after']):.2f} | {w[0]:.3f} [{w[1]:.3f}, "
              f"{w[2]:.3f}] | {c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}] | {med:.4f} [{q1:.4f}, "
              f"{q3:.4f}] |")


if __name__ == "__main__":
    main()
