"""Shared pieces of the benchmarks: the small CNN they time, and interleaved timing.

Every benchmark measures its variants side by side in one run, in rounds whose order
rotates, so drift on a shared machine hits all variants alike; ratios are what to read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

Step = Callable[[], None]


def small_cnn(in_channels: int = 1, width: int = 256) -> nn.Sequential:
    """2 conv+BN+ReLU+pool blocks -> FC ``width`` + BN + ReLU, for 28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, width), nn.BatchNorm1d(width), nn.ReLU(),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Step, device: torch.device, n: int) -> float:
    """Seconds per call of ``step``, over ``n`` calls (synchronised on CUDA)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - t0) / n


def interleaved(steps: dict[str, Step], device: torch.device, rounds: int, n: int,
                warmup: int = 3) -> dict[str, list[float]]:
    """Per-block seconds per step of each variant, in rounds whose order rotates."""
    names = list(steps)
    for step in steps.values():
        timed(step, device, warmup)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(steps[name], device, n))
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(v) for name, v in times.items()}
