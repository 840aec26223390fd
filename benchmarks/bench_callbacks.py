"""Cost of the framework callbacks: a training step with ``SaturationCallback`` vs without.

Three sections, each measured side by side in one run, in rounds whose order rotates, so drift
on a shared machine hits both variants alike (read the ratios):

* ``lightning``: a Lightning ``Trainer`` fitting the small CNN (FC 256, ``nn.Linear`` head) on
  MNIST-shaped synthetic data, batch 128, with and without
  :class:`satkit.integrations.lightning.SaturationCallback` (per-sample record on, its Parquet
  and TensorBoard sinks, the scalars sent to a CSV logger);
* ``transformers``: a Hugging Face ``Trainer`` on a small GPT-2 (2 layers, width 128,
  vocabulary 8192, 8 sequences of 128 tokens: a body so narrow beside its vocabulary that the
  recorder's fixed cost per token and vocabulary entry weighs most), on a wider one (4 layers,
  width 256, the same vocabulary and tokens) and on a BERT sequence classifier of the first
  one's size, with and without :class:`satkit.integrations.transformers.SaturationCallback`
  on ``lm_head`` / ``classifier``;
* ``lm-head``: the recorder alone on a language-model head at vocabulary 32,000 (8 x 128
  positions, width 256): the bare step (forward, cross-entropy, backward) vs the recorded one,
  in two ways: ``recorded`` (``set_target`` before forward, ``step`` after backward: the
  recorder computes its own log-softmax) and ``with-loss`` (``set_target(loss_follows=True)``
  and ``set_loss`` before backward, what both callbacks do: it reads the loss's), and the peak
  resident memory of each, measured in separate processes.

The framework step time is the wall time between the starts of consecutive optimizer steps
after a warm-up, so it includes the callback's per-step hooks and, in the mean, its flushes
(default ``flush_every=100``: a Lightning fit of the default 110 steps holds one; pass
``--flush-every`` to see their share). The end-of-training close (last flush, samples table,
summary) is timed apart. Target: each callback <= 1.05x the framework's own step time, read
as the paired ratio: each round's median step with the callback over the one without (the
two fits of a round run back to back), its median over the rounds; also printed for the mean
step, and pooled over all rounds.

Run: ``.venv/bin/python benchmarks/bench_callbacks.py [--section lightning transformers
lm-head] [--rounds 5] [--threads 1]``. Needs the ``lightning`` and ``transformers`` extras for
their sections. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from benchlib import interleaved, medians, paired_ratio, small_cnn
from torch import nn

TARGET = 1.05
LM = {"positions": (8, 128), "vocab": 32_000, "width": 256}


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


Fit = Callable[[], tuple[list[float], float]]


def _rotating(variants: dict[str, Fit], rounds: int) -> dict[str, list[tuple[list[float], float]]]:
    """Run each variant once per round, in an order that rotates; each returns (the durations
    of its timed steps, seconds of its end-of-training close)."""
    names = list(variants)
    out: dict[str, list[tuple[list[float], float]]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def _durations(times: list[float], warm: int) -> list[float]:
    """Seconds of each step after the first ``warm``: the gaps between step starts (the
    last one ends at the end of training, before the close)."""
    return [b - a for a, b in zip(times[warm:-1], times[warm + 1:], strict=True)]


def _report(title: str, results: dict[str, list[tuple[list[float], float]]]) -> None:
    """Per variant: the median and the 25% quantile of all its step durations pooled over the
    rounds (other processes only ever add time, so the low quantile is the estimate least
    disturbed by a busy machine), and the mean (which carries the flushes)."""
    stats = {}
    for name, fits in results.items():
        steps = np.concatenate([d for d, _ in fits])
        stats[name] = (np.median(steps), np.quantile(steps, 0.25), steps.mean(), len(steps))
    print(title)
    for name, (med, low, mean, n) in stats.items():
        print(f"  {name:>13}: {1e3 * med:8.2f} ms/step median, {1e3 * low:8.2f} 25% quantile, "
              f"{1e3 * mean:8.2f} mean ({n} steps)")
    ratios = [stats["with callback"][i] / stats["without"][i] for i in range(3)]
    close = statistics.median(c for _, c in results["with callback"])
    print(f"  pooled ratio with/without: {ratios[0]:.3f} median, {ratios[1]:.3f} 25% quantile, "
          f"{ratios[2]:.3f} mean; end-of-training close {close:.2f} s")
    # Paired: each round's with/without ratio (both fits of a round run back to back, so the
    # machine's drift between rounds cancels), then the median and quartiles over rounds.
    for label, reduce in (("median step", np.median), ("mean step (with the flushes)", np.mean)):
        paired = paired_ratio({name: [reduce(d) for d, _ in fits]
                               for name, fits in results.items()}, "with callback", "without")
        verdict = f" (target <= {TARGET}: {'met' if paired[0] <= TARGET else 'NOT met'})" \
            if label == "median step" else ""
        print(f"  paired ratio of the {label}: {paired[0]:.3f} [{paired[1]:.3f}, "
              f"{paired[2]:.3f}] over {len(results['without'])} rounds{verdict}")


# -- Lightning ---------------------------------------------------------------------------------
def bench_lightning(rounds: int, steps: int, warm: int, flush_every: int) -> None:
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    from satkit.integrations.lightning import SaturationCallback

    n = steps * 128
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(n, 1, 28, 28, generator=g),
                         torch.randint(0, 10, (n,), generator=g), torch.arange(n))

    class CNN(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.body = small_cnn()
            self.classifier = nn.Linear(256, 10)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.classifier(self.body(batch[0])), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.times.append(time.perf_counter())

        def on_train_end(self, *args) -> None:
            self.times.append(time.perf_counter())

    def fit(with_callback: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            clock = Clock()
            callbacks: list = [clock]
            if with_callback:
                callbacks.append(SaturationCallback("classifier", Path(tmp) / "run",
                                                    flush_every=flush_every))
            trainer = L.Trainer(accelerator="cpu", max_steps=steps, callbacks=callbacks,
                                logger=L.loggers.CSVLogger(tmp), enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False)
            trainer.fit(CNN(), DataLoader(data, batch_size=128))
            done = time.perf_counter()
        return _durations(clock.times, warm), done - clock.times[-1]

    _report(f"Lightning {L.__version__}: small CNN, batch 128, {steps} steps per fit "
            f"(first {warm} not timed), {rounds} rounds",
            _rotating({"without": lambda: fit(False), "with callback": lambda: fit(True)},
                      rounds))


# -- transformers ------------------------------------------------------------------------------
def bench_transformers(rounds: int, steps: int, warm: int, flush_every: int) -> None:
    """Both model kinds: a GPT-2 causal LM (the recorder reduces (tokens x vocabulary) logits)
    and a BERT sequence classifier ((N, C) logits: the callback's own overhead)."""
    import transformers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2LMHeadModel,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from satkit.integrations.transformers import SaturationCallback

    transformers.logging.set_verbosity_error()
    vocab, seq, batch = 8192, 128, 8
    n = steps * batch
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n, seq), generator=g)
    classes = torch.randint(0, 2, (n,), generator=g)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *args, **kwargs) -> None:
            self.times.append(time.perf_counter())

        def on_train_end(self, *args, **kwargs) -> None:
            self.times.append(time.perf_counter())

    lm_data = [{"input_ids": ids[i], "labels": ids[i], "index": torch.tensor(i)}
               for i in range(n)]
    kinds = {
        "lm": ("lm_head", lambda: GPT2LMHeadModel(GPT2Config(
            n_layer=2, n_head=4, n_embd=128, vocab_size=vocab, n_positions=seq, bos_token_id=0,
            eos_token_id=0)), lm_data),
        "lm-wider": ("lm_head", lambda: GPT2LMHeadModel(GPT2Config(
            n_layer=4, n_head=4, n_embd=256, vocab_size=vocab, n_positions=seq, bos_token_id=0,
            eos_token_id=0)), lm_data),
        "classifier": ("classifier", lambda: BertForSequenceClassification(BertConfig(
            vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=512, max_position_embeddings=seq, num_labels=2)),
            [{"input_ids": ids[i], "labels": classes[i], "index": torch.tensor(i)}
             for i in range(n)]),
    }

    def fit(kind: str, with_callback: bool) -> tuple[list[float], float]:
        head, build, data = kinds[kind]
        torch.manual_seed(0)
        model = build()
        with tempfile.TemporaryDirectory() as tmp:
            clock = Clock()
            callbacks: list = [clock]
            if with_callback:
                callbacks.append(SaturationCallback(head, Path(tmp) / "run", index_key="index",
                                                    flush_every=flush_every))
            args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=batch,
                                     max_steps=steps, use_cpu=True, report_to="none",
                                     save_strategy="no", logging_strategy="no",
                                     disable_tqdm=True, remove_unused_columns=False)
            Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks).train()
            done = time.perf_counter()
        return _durations(clock.times, warm), done - clock.times[-1]

    titles = {"lm": f"GPT-2 2x128 causal LM, vocabulary {vocab}",
              "lm-wider": f"GPT-2 4x256 causal LM, vocabulary {vocab}",
              "classifier": "BERT 2x128 sequence classifier, 2 classes"}
    for kind, title in titles.items():
        _report(f"transformers {transformers.__version__}: {title}, {batch} x {seq} tokens, "
                f"{steps} steps per train() (first {warm} not timed), {rounds} rounds",
                _rotating({"without": lambda k=kind: fit(k, False),
                           "with callback": lambda k=kind: fit(k, True)}, rounds))


# -- the recorder on a 32k-vocabulary LM head -----------------------------------------------
LM_VARIANTS = ("bare", "recorded", "with-loss")


def _lm_step(variant: str) -> tuple[Callable[[], None], object]:
    from satkit.hooks import SaturationRecorder

    (n, t), v, d = LM["positions"], LM["vocab"], LM["width"]
    torch.manual_seed(0)
    head = nn.Linear(d, v, bias=False)
    features = torch.randn(n, t, d, requires_grad=True)
    target = torch.randint(0, v, (n, t))
    target[:, -1] = -100  # the last position has no next token
    rec = SaturationRecorder(head, num_samples=n, histogram_every=None) \
        if variant != "bare" else None
    with_loss = variant == "with-loss"
    index = torch.arange(n)

    def step() -> None:
        head.zero_grad(set_to_none=True)
        features.grad = None
        if rec is not None:
            rec.set_target(target, loss_follows=with_loss)
        logits = head(features)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        if with_loss:
            rec.set_loss(loss)
        loss.backward()
        if rec is not None:
            rec.step(index=index)

    return step, rec


def lm_memory(variant: str) -> None:
    """In a fresh process: peak RSS after 3 steps (the recorder imported in both variants)."""
    step, rec = _lm_step(variant)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{before} {peak}")  # KiB on Linux


def bench_lm_head(rounds: int, threads: int | None) -> None:
    (n, t), v, d = LM["positions"], LM["vocab"], LM["width"]
    steps = {name: _lm_step(name)[0] for name in LM_VARIANTS}
    times = interleaved(steps, torch.device("cpu"), rounds=rounds, n=5)
    med = medians(times)
    best = {k: min(x) for k, x in times.items()}
    print(f"recorder on an LM head: {n} x {t} positions, vocabulary {v}, width {d}, float32, "
          f"CPU, {rounds} rounds of 5 steps")
    for name in steps:
        print(f"  {name:>8}: {1e3 * med[name]:8.1f} ms/step median, {1e3 * best[name]:8.1f} "
              "fastest block")
    for name in LM_VARIANTS[1:]:
        print(f"  ratio {name}/bare: {med[name] / med['bare']:.3f} median, "
              f"{best[name] / best['bare']:.3f} fastest blocks")
    peaks = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads or torch.get_num_threads())}
    for variant in LM_VARIANTS:
        out = subprocess.run([sys.executable, __file__, "--lm-memory", variant], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        peaks[variant] = (int(out[0]), int(out[1]))
    logits_mib = n * t * v * 4 / 2**20
    extra = {name: (peaks[name][1] - peaks["bare"][1]) / 1024 for name in LM_VARIANTS[1:]}
    print(f"  peak RSS: bare {peaks['bare'][1] / 1024:.0f} MiB, " + ", ".join(
        f"{name} {peaks[name][1] / 1024:.0f} MiB ({extra[name]:+.0f})" for name in extra)
        + f" (one logits tensor is {logits_mib:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", nargs="+", default=["lightning", "transformers", "lm-head"],
                        choices=["lightning", "transformers", "lm-head"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=110,
                        help="optimizer steps per Lightning fit (the transformers fits take "
                             "30)")
    parser.add_argument("--flush-every", type=int, default=100,
                        help="the callbacks' flush_every (default: the recorder's, 100)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); on a busy machine 1 "
                             "measures the work without the threads' waiting")
    parser.add_argument("--lm-memory", choices=LM_VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.lm_memory:
        lm_memory(args.lm_memory)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {_load():.2f} at the start")
    if "lightning" in args.section:
        bench_lightning(args.rounds, args.steps, warm=5, flush_every=args.flush_every)
    if "transformers" in args.section:
        bench_transformers(args.rounds, 30, warm=3, flush_every=args.flush_every)
    if "lm-head" in args.section:
        bench_lm_head(args.rounds, args.threads)
    print(f"load average {_load():.2f} at the end")


if __name__ == "__main__":
    main()
