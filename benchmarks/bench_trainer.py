"""Trainer throughput against a bare hand-written loop: same model, same device-resident data.

Three variants, timed epoch by epoch in interleaved rounds of one run: a bare loop (forward,
cross-entropy, backward, SGD step over a ``DeviceLoader``), satkit's ``Trainer`` without a
recorder, and the ``Trainer`` as ``satkit train`` runs it (recorder every step with the
per-sample record and a Parquet sink). Prints images/s and the ratio to the bare loop
(target >= 0.95 on CPU). On CUDA, ``--preset cifar10-paper --amp`` gives the paper-model figure.

Run: `.venv/bin/python benchmarks/bench_trainer.py [--device cuda --preset cifar10-paper --amp]`
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import sync

from satkit.data import DeviceLoader
from satkit.heads import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.models import PRESETS, build_model
from satkit.sinks import TableSink
from satkit.training import Trainer

SHAPES = {"digits-cnn": (1, 8, 10), "mnist-paper": (1, 28, 10), "cifar10-paper": (3, 32, 10),
          "cifar100-paper": (3, 32, 100), "small-cnn": (1, 28, 10)}


def make_model(preset: str, device: torch.device) -> torch.nn.Module:
    channels, size, classes = SHAPES[preset]
    torch.manual_seed(0)
    head = NoisySoftmax(PRESETS[preset].feature_dim, classes, alpha2=0.1)
    model = build_model(preset, num_classes=classes, in_channels=channels, image_size=size,
                        head=head)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def bare_epoch(model, opt, loader, device, amp: bool) -> None:
    for x, y, _ in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x, y)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", choices=list(PRESETS), default="digits-cnn")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device)
    channels, size, classes = SHAPES[args.preset]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, channels, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (args.samples,), generator=g).to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)

    def loader() -> DeviceLoader:
        return DeviceLoader(x, y, batch_size=args.batch_size, seed=0, drop_last=True)

    def sgd(model):
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    bare_model = make_model(args.preset, device)
    bare_opt, bare_loader = sgd(bare_model), loader()
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, record in (("trainer", False), ("trainer+recorder", True)):
            model = make_model(args.preset, device)
            rec = None
            if record:
                rec = SaturationRecorder(model.head, num_samples=args.samples, every=1,
                                         sinks=[TableSink(Path(tmp) / "metrics.parquet")])
            trainers[name] = Trainer(model, sgd(model), loader(), epochs=1, recorder=rec,
                                     device=device, amp=args.amp, progress=False)
            trainers[name].epochs = 0

        def trainer_epoch(t: Trainer) -> None:
            t.epochs += 1
            t.fit()

        variants = {"bare loop": lambda: bare_epoch(bare_model, bare_opt, bare_loader, device,
                                                    args.amp)}
        variants.update({name: (lambda t=t: trainer_epoch(t)) for name, t in trainers.items()})
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds + 1):  # round 0 warms up
            names = list(variants)
            for k in names[r % 3:] + names[:r % 3]:
                sync(device)
                t0 = time.perf_counter()
                variants[k]()
                sync(device)
                if r:
                    times[k].append(time.perf_counter() - t0)
        if trainers["trainer+recorder"].recorder is not None:
            trainers["trainer+recorder"].recorder.close()
    images = len(bare_loader) * args.batch_size
    rate = {k: images / statistics.median(v) for k, v in times.items()}
    print(f"{args.preset} on {device.type} ({torch.get_num_threads()} threads), batch "
          f"{args.batch_size}, amp={args.amp}, {args.rounds} interleaved epochs of {images} images")
    for k, v in rate.items():
        print(f"  {k:18s} {v:10.0f} images/s   ratio to bare loop {v / rate['bare loop']:.3f}")
    print("  target: trainer+recorder / bare loop >= 0.95 on CPU")


if __name__ == "__main__":
    main()
