"""Images per second: DeviceLoader vs torch's DataLoader over a TensorDataset, same tensors.

CIFAR-shaped random data (N x 3 x 32 x 32, float32) already on the device; the best of a few
interleaved epochs each, and DeviceLoader with the batched ``cifar_augment``. Prints images/s
and the ratio DeviceLoader / DataLoader.
Run: `.venv/bin/python benchmarks/bench_loader.py [--device cuda] [--samples 20000]`.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from satkit.data import DeviceLoader, cifar_augment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()  # sync point: timing only


def images_per_s(batches, device: torch.device, n: int) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for batch in batches:
        last = batch[0]
    del last
    _sync(device)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (args.samples,), generator=g).to(device)
    n, bs = args.samples, args.batch_size
    loaders = {
        "ours": DeviceLoader(x, y, batch_size=bs),
        "ours_aug": DeviceLoader(x, y, batch_size=bs, augment=cifar_augment),
        "theirs": DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True),
    }
    best = dict.fromkeys(loaders, 0.0)
    for _ in range(args.rounds):  # interleaved rounds, best of each: robust to a busy machine
        for name, loader in loaders.items():
            best[name] = max(best[name], images_per_s(loader, device, n))
    ours, ours_aug, theirs = best["ours"], best["ours_aug"], best["theirs"]
    print(f"device {device}, {n} images, batch {args.batch_size}")
    print(f"DeviceLoader            {ours:12,.0f} images/s")
    print(f"DeviceLoader + augment  {ours_aug:12,.0f} images/s")
    print(f"DataLoader(TensorDataset){theirs:11,.0f} images/s")
    print(f"ratio DeviceLoader / DataLoader: {ours / theirs:.1f}")


if __name__ == "__main__":
    main()
