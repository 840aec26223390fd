"""Cost of the Noisy Softmax head: a training step of a small CNN, alpha2=0.1 vs alpha2=0.

Prints the median time per step of both, measured interleaved in one run, and the ratio
(target: <= 1.05). Run: `.venv/bin/python benchmarks/bench_head.py [--device cuda]`.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from benchlib import interleaved, medians, small_cnn

from satkit import NoisySoftmax


def make_step(alpha2: float, device: torch.device, x: torch.Tensor, y: torch.Tensor):
    torch.manual_seed(0)
    body, head = small_cnn().to(device), NoisySoftmax(256, 10, alpha2=alpha2).to(device)
    opt = torch.optim.SGD([*body.parameters(), *head.parameters()], lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(body(x), y), y).backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    steps = {"softmax (alpha2=0)": make_step(0.0, device, x, y),
             "noisy (alpha2=0.1)": make_step(0.1, device, x, y)}
    med = medians(interleaved(steps, device, args.rounds, args.steps))
    for k, v in med.items():
        print(f"{k:22s} {v * 1e3:8.2f} ms/step")
    ratio = med["noisy (alpha2=0.1)"] / med["softmax (alpha2=0)"]
    print(f"ratio noisy/softmax on {device.type}, batch {args.batch_size}: {ratio:.3f} "
          f"(target <= 1.05)")


if __name__ == "__main__":
    main()
