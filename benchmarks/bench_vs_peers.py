"""Per-step cost of satkit's recorder next to what people use instead: logging by hand, Cockpit.

Every configuration trains its own copy of one model (same seed, the same batches in the same
order, plain SGD) and is timed in blocks of steps, interleaved in rounds whose order rotates, so
that drift on a shared machine hits all of them alike. The table gives each configuration's time
per step over the bare step's, as the median over rounds of the ratio measured within a round,
and the bare step in ms.

Configurations:

* ``bare``: forward, cross-entropy, backward, SGD step.
* ``satkit recorder``: a :class:`satkit.hooks.SaturationRecorder` on the head, every step, with
  the per-sample record on (dataset indices of a 60 000-sample dataset) and a Parquet
  ``TableSink``; it moves data to the host only at its flush (every 100 steps).
* ``hand logging``: what people write to log it themselves: loss, accuracy and mean p_target,
  three ``.item()`` and three ``SummaryWriter.add_scalar`` per step.
* ``cockpit economy`` / ``cockpit business``: Cockpit (Schneider, Dangel, Hennig, NeurIPS 2021)
  with those configurations, every step; the model and the loss extended by BackPACK.

Models: ``cnn``, conv32-pool, conv64-pool, FC 256 with ReLUs and no BatchNorm, and ``cnn-bn``, the
same with BatchNorm (``benchlib.small_cnn``); both end in an ``nn.Linear(256, 10)`` head, which
BackPACK can extend. BackPACK refuses BatchNorm in training mode (BatchNorm mixes the samples, so
per-sample gradients are not defined): the Cockpit columns of ``cnn-bn`` read n/a, and why.

Cockpit and BackPACK are benchmark-only extras. ``make bench-peers`` installs them (the Makefile
says why not ``pip install satkit[bench]``) and runs this script; without them their columns are
skipped, the rest still runs, and the output gives the install commands.

Run: ``make bench-peers`` or ``.venv/bin/python benchmarks/bench_vs_peers.py [--rounds R]
[--steps S] [--batch-size B] [--models cnn cnn-bn] [--threads T]`` (on a busy machine,
``--threads 1``). A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import Step, small_cnn, timed
from torch import Tensor, nn

from satkit.hooks import SaturationRecorder
from satkit.sinks import TableSink, read_table

NUM_SAMPLES = 60_000  # dataset size behind the per-sample record
POOL = 8  # distinct batches, which every configuration cycles through in the same order
LR = 0.01  # plain SGD: Cockpit's Alpha projects the update with BackPACK only for default SGD

# The bench extra of pyproject.toml, in the Makefile's two steps (tests keep the three equal).
PEERS = ("cockpit-for-pytorch>=1.0.2", "backpack-for-pytorch>=1.7")
PEER_DEPS = ("einops>=0.3,<1", "unfoldNd>=0.2,<1", "json-tricks>=3.15", "setuptools>=77,<82")
COCKPIT_CONFIGS = ("economy", "business")

Batch = tuple[Tensor, Tensor, Tensor]  # inputs (B, 1, 28, 28), targets (B,), dataset indices (B,)


def small_cnn_no_bn(in_channels: int = 1, width: int = 256) -> nn.Sequential:
    """``benchlib.small_cnn`` without its BatchNorm layers, for 28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, width), nn.ReLU(),
    )


MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "cnn": ("small CNN, no BatchNorm", small_cnn_no_bn),
    "cnn-bn": ("small CNN + BatchNorm", small_cnn),
}


def build_model(name: str, device: torch.device) -> nn.Sequential:
    """The body ``name`` and an ``nn.Linear(256, 10)`` head, with the same weights every call."""
    torch.manual_seed(0)
    return nn.Sequential(MODELS[name][1](), nn.Linear(256, 10)).to(device)


def make_batches(batch_size: int, device: torch.device) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(batch_size, 1, 28, 28, generator=g).to(device),
             torch.randint(0, 10, (batch_size,), generator=g).to(device),
             torch.randint(0, NUM_SAMPLES, (batch_size,), generator=g).to(device))
            for _ in range(POOL)]


class Batches:
    """The pool's batches in a fixed order, and how many steps have taken one."""

    def __init__(self, pool: list[Batch]) -> None:
        self.pool, self.count = pool, 0

    def next(self) -> Batch:
        batch = self.pool[self.count % len(self.pool)]
        self.count += 1
        return batch


@dataclass
class Run:
    """One configuration: its training step, its batches, and what it does around the timing."""

    step: Step
    batches: Batches
    settle: Callable[[], None] = lambda: None  # after the warm-up, before the timed rounds
    close: Callable[[], str] = lambda: ""  # after them; returns what was recorded


def bare(model: nn.Sequential, pool: list[Batch], tmp: Path) -> Run:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = Batches(pool)

    def step() -> None:
        x, y, _ = batches.next()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return Run(step, batches)


def satkit_recorder(model: nn.Sequential, pool: list[Batch], tmp: Path) -> Run:
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = Batches(pool)
    table = tmp / "metrics.parquet"
    rec = SaturationRecorder(model[-1], num_samples=NUM_SAMPLES, every=1,
                             sinks=[TableSink(table)])

    def step() -> None:
        x, y, index = batches.next()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        rec.step(y, index=index, loss=loss.detach())
        opt.step()

    def close() -> str:
        rec.close()
        return f"{len(read_table(table))} rows in its Parquet table"

    # settle: the first flush pays the one-off import of the Parquet writer outside the timing.
    return Run(step, batches, settle=rec.flush, close=close)


def hand_logging(model: nn.Sequential, pool: list[Batch], tmp: Path) -> Run:
    from torch.utils.tensorboard import SummaryWriter  # imported here: only this one needs it

    opt = torch.optim.SGD(model.parameters(), lr=LR)
    batches = Batches(pool)
    writer = SummaryWriter(str(tmp / "tensorboard"))
    written = [0]

    def step() -> None:
        x, y, _ = batches.next()
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        with torch.no_grad():
            accuracy = (logits.argmax(1) == y).float().mean()
            p_target = logits.softmax(1).gather(1, y[:, None]).mean()
        # sync point, three per step (.item()): the cost this baseline stands for.
        for tag, value in (("loss", loss), ("accuracy", accuracy), ("p_target", p_target)):
            writer.add_scalar(f"train/{tag}", value.item(), batches.count)
        written[0] += 3

    def close() -> str:
        writer.close()
        return f"{written[0]} scalars to TensorBoard"

    return Run(step, batches, close=close)


def cockpit_run(label: str) -> Callable[[nn.Sequential, list[Batch], Path], Run]:
    """Cockpit's configuration ``label``, tracked every step, as Cockpit's README trains."""

    def build(model: nn.Sequential, pool: list[Batch], tmp: Path) -> Run:
        from backpack import extend
        from cockpit import Cockpit
        from cockpit.utils.configuration import configuration

        model = extend(model)
        loss_fn = extend(nn.CrossEntropyLoss(reduction="mean"))
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        cockpit = Cockpit(model.parameters(), quantities=configuration(label))
        batches = Batches(pool)

        def step() -> None:
            x, y, _ = batches.next()
            global_step = batches.count - 1
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            losses = F.cross_entropy(logits, y, reduction="none")  # Cockpit wants them too
            info = {"batch_size": x.shape[0], "individual_losses": losses, "loss": loss,
                    "optimizer": opt}
            with cockpit(global_step, info=info):
                loss.backward(create_graph=cockpit.create_graph(global_step))
            opt.step()

        def close() -> str:
            return f"{len(cockpit.get_output())} steps in its output"

        return Run(step, batches, close=close)

    return build


def interleaved(steps: dict[str, Step], device: torch.device, rounds: int,
                n: int) -> dict[str, list[float]]:
    """``benchlib.interleaved`` less its warm-up, which the caller ran (then settled each run)."""
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(steps[name], device, n))
    return times


def peers_missing() -> str | None:
    """Why Cockpit/BackPACK cannot be imported, or None when they can."""
    try:
        with warnings.catch_warnings():  # cockpit's own import of pkg_resources warns
            warnings.simplefilter("ignore")
            import backpack  # noqa: F401
            import cockpit  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


def backpack_refusal(err: BaseException | None) -> str | None:
    """The ``NotImplementedError`` by which BackPACK refuses a module, found behind ``err``.

    Cockpit's context raises another error on its way out (its quantities find no BackPACK
    result), so BackPACK's refusal arrives as that error's context.
    """
    while err is not None:
        if isinstance(err, NotImplementedError):
            return f"BackPACK: {str(err).splitlines()[0]}"
        err = err.__context__
    return None


def warm_up(run: Run, steps: int) -> list[str]:
    """Run ``steps`` untimed steps; return the warnings BackPACK and Cockpit gave, once each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(steps):
            run.step()
    return list(dict.fromkeys(str(w.message).splitlines()[0] for w in caught
                              if {"backpack", "cockpit"} & set(Path(w.filename).parts)))


@dataclass
class Result:
    model: str
    bare_ms: float
    ratios: dict[str, float]  # configuration -> median over rounds of its time / bare time
    fastest: dict[str, float]  # configuration -> its fastest block / bare's fastest block
    bare_fastest_ms: float
    steps: dict[str, int]  # configuration -> steps it ran
    recorded: dict[str, str]  # configuration -> what it recorded
    notes: dict[str, str]  # configuration -> why it is n/a, or what its peer warned about


def bench_model(name: str, args: argparse.Namespace, device: torch.device,
                with_cockpit: bool) -> Result:
    pool = make_batches(args.batch_size, device)
    builders: dict[str, Callable[[nn.Sequential, list[Batch], Path], Run]] = {
        "bare": bare, "satkit recorder": satkit_recorder, "hand logging": hand_logging}
    if with_cockpit:
        builders.update({f"cockpit {label}": cockpit_run(label) for label in COCKPIT_CONFIGS})
    notes: dict[str, str] = {}
    runs: dict[str, Run] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for config, build in builders.items():
                (Path(tmp) / config).mkdir()
                run = build(build_model(name, device), pool, Path(tmp) / config)
                try:
                    warned = warm_up(run, args.warmup)
                except Exception as err:  # only BackPACK's refusal of a module is expected
                    if (reason := backpack_refusal(err)) is None:
                        raise
                    notes[config] = f"n/a, {reason}"
                    continue
                if warned:
                    notes[config] = "ran, with the warning: " + " / ".join(warned)
                run.settle()
                runs[config] = run
            with warnings.catch_warnings():  # the peers warn at every step: reported once above
                warnings.simplefilter("ignore")
                times = interleaved({k: r.step for k, r in runs.items()}, device, args.rounds,
                                    args.steps)
        finally:  # writers and sinks closed before their directory goes
            recorded = {k: r.close() for k, r in runs.items()}
    ratios = {k: statistics.median(t / b for t, b in zip(v, times["bare"], strict=True))
              for k, v in times.items() if k != "bare"}
    fastest = {k: min(v) / min(times["bare"]) for k, v in times.items() if k != "bare"}
    return Result(name, statistics.median(times["bare"]) * 1e3, ratios, fastest,
                  min(times["bare"]) * 1e3,
                  {k: r.batches.count for k, r in runs.items()}, recorded, notes)


def print_table(rows: list[tuple[str, float, dict[str, float]]], columns: list[str]) -> None:
    """One row per model: its name, the bare step in ms, a ratio per column (n/a if absent)."""
    head = f"{'model':32s} {'bare ms/step':>12s}" + "".join(f" {c:>17s}" for c in columns)
    print(head)
    print("-" * len(head))
    for model, bare_ms, ratios in rows:
        cells = "".join(f" {ratios[c]:17.2f}" if c in ratios else f" {'n/a':>17s}"
                        for c in columns)
        print(f"{model + ' (' + MODELS[model][0] + ')':32s} {bare_ms:12.1f}{cells}")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=positive, default=128)
    parser.add_argument("--rounds", type=positive, default=10, help="interleaved rounds")
    parser.add_argument("--steps", type=positive, default=5, help="steps per timed block")
    parser.add_argument("--warmup", type=positive, default=3,
                        help="untimed steps per configuration, before the rounds")
    parser.add_argument("--threads", type=positive, default=None,
                        help="torch intra-op threads (default: torch's); 1 suffers least when "
                             "other processes share the cores")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    missing = peers_missing()
    columns = ["satkit recorder", "hand logging"] + [f"cockpit {c}" for c in COCKPIT_CONFIGS]
    load_start = os.getloadavg()[0]
    results = []
    for name in args.models:
        print(f"timing {name} ...", file=sys.stderr, flush=True)
        results.append(bench_model(name, args, device, missing is None))
    load_end = os.getloadavg()[0]

    print(f"Per-step time over the bare step's: median over {args.rounds} interleaved rounds of "
          f"{args.steps} steps each")
    print(f"[{device.type}] batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load_start:.1f} at start, {load_end:.1f} at end")
    print_table([(r.model, r.bare_ms, r.ratios) for r in results], columns)
    print("\nThe same from the fastest block of each (other load only ever adds time):")
    print_table([(r.model, r.bare_fastest_ms, r.fastest) for r in results], columns)
    print()
    for r in results:
        counts = sorted(set(r.steps.values()))
        print(f"{r.model}: {'/'.join(map(str, counts))} steps per configuration ({args.warmup} "
              f"warm-up + {args.rounds} x {args.steps} timed) on the same {POOL} batches in the "
              "same order; recorded: "
              + "; ".join(f"{k} {v}" for k, v in r.recorded.items() if v))
        for config, note in r.notes.items():
            print(f"{r.model}, {config}: {note}")
    # Other load: the start's, or the end's less this benchmark's own threads.
    others = max(load_start, load_end - torch.get_num_threads())
    free = max(os.cpu_count() - torch.get_num_threads(), 0)
    if others > free + 0.75 and torch.get_num_threads() > 1:
        print(f"\nThe machine was busy (load average {others:.1f} besides this benchmark's "
              f"threads, on {os.cpu_count()} CPUs): with more "
              "threads than free cores every step waits for descheduled threads, the bare one "
              "most, and the ratios shrink; `--threads 1` suffers least.")
    if missing is not None:
        skipped = ", ".join(c for c in columns if c.startswith("cockpit"))
        print(f"\nSkipped columns: {skipped} (Cockpit/BackPACK missing: {missing}).\n"
              "Install them with `make bench-peers`, or into this environment with\n"
              f"  pip install --no-deps {' '.join(repr(p) for p in PEERS)}\n"
              f"  pip install {' '.join(repr(p) for p in PEER_DEPS)}\n"
              "(not `pip install satkit[bench]`: BackPACK's torchvision requirement makes pip "
              "replace a CPU torch with a CUDA build).")


if __name__ == "__main__":
    main()
