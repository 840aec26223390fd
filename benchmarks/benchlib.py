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


def timed(step: Step, device: torch.device, n: int,
          clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``step``, over ``n`` calls (synchronised on CUDA), by ``clock``."""
    sync(device)
    t0 = clock()
    for _ in range(n):
        step()
    sync(device)
    return (clock() - t0) / n


def interleaved(steps: dict[str, Step], device: torch.device, rounds: int, n: int,
                warmup: int = 3, clock: Callable[[], float] = time.perf_counter,
                ) -> dict[str, list[float]]:
    """Per-block seconds per step of each variant, in rounds whose order rotates.

    ``clock``: wall time by default; ``time.process_time`` gives the CPU time of every thread
    of the process instead (the work done, which another tenant's load on a shared machine
    does not inflate the way it does wall time)."""
    names = list(steps)
    for step in steps.values():
        timed(step, device, warmup, clock)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(steps[name], device, n, clock))
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(v) for name, v in times.items()}


def paired_ratio(times: dict[str, list[float]], name: str, base: str) -> tuple[float, float, float]:
    """Median, first and third quartile over rounds of ``name``'s block time divided by
    ``base``'s block time *in the same round*: drift between rounds (a shared machine's
    several percent) cancels in each pair, which a ratio of overall medians does not do."""
    ratios = sorted(a / b for a, b in zip(times[name], times[base], strict=True))
    q1, med, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return med, q1, q3
