"""Finding mislabeled samples: satkit's scores from one training run vs cleanlab on K folds.

On the embedded digits with a known share of flipped training labels (10 % and 30 %
symmetric, 20 % pairs; ``--label-noise``), for each seed:

* **satkit**: one training run (digits-cnn, the recorder on, as ``satkit train`` does); its
  samples table gives every score of :func:`satkit.analysis.label_issue_scores` at no extra
  pass;
* **cleanlab** (confident learning, Northcutt et al. 2021), which needs out-of-sample
  predicted probabilities: K = 5 stratified folds of the (noisy) training set, each trained
  with the same preset, settings and epochs on the other four folds (no recorder), its
  softmax probabilities predicted on the held-out fold; then
  ``cleanlab.rank.get_label_quality_scores`` (self-confidence; suspicion = 1 - quality) and
  ``cleanlab.filter.find_label_issues`` (a yes/no flag per sample; its AUROC treats the flag
  as a score with two values, and its precision at k is that of the flagged samples taken
  first).

Printed: per setting and score, AUROC, average precision and precision at the true number of
corrupted labels (mean ± half-width of the 95 % Student-t interval over seeds; one seed: the
value alone), and the compute: trainings, and CPU and wall seconds per seed (satkit: its one
training, which also evaluates the test set every epoch and writes its run directory;
cleanlab: its K trainings, each without a test evaluation, and its own analysis). All timed in
one process, one after the other, after an untimed warm-up, with pinned torch threads. The
CPU time (of every thread of the process) is the steadier measure of the work on a shared
machine, where the wall clock also counts the time other processes hold the cores.

cleanlab is a benchmark-only extra (it brings scikit-learn): ``make bench-labels`` installs it
and runs this script; without it the cleanlab rows read n/a.

Run: ``.venv/bin/python benchmarks/bench_label_issues.py [--seeds 0 1 2] [--out FILE.md]``.
A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from satkit.analysis import SCORES, auroc, average_precision, load_run, precision_at_k
from satkit.analysis import detection_quality as satkit_quality
from satkit.analysis.seeds import t_interval
from satkit.data import DeviceLoader
from satkit.training import TrainConfig, Trainer, train
from satkit.training.compose import build_parts
from satkit.training.distributed import DistContext

#: What ``make bench-labels`` installs (pyproject's ``bench-labels`` extra; a test keeps the
#: three lists equal).
LABEL_PEERS = ("cleanlab>=2.6",)
SETTINGS = (("symmetric", 0.1), ("symmetric", 0.3), ("pairs", 0.2))
FOLDS = 5


def noise_setting(text: str) -> tuple[str, float]:
    kind, _, fraction = text.partition(":")
    try:
        value = float(fraction)
    except ValueError:
        value = math.nan
    if kind not in ("symmetric", "pairs") or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected symmetric:F or pairs:F with F in (0, 1), "
                                         f"got {text}")
    return kind, value


def config_for(kind: str, fraction: float, seed: int, args: argparse.Namespace,
               out: Path) -> TrainConfig:
    return TrainConfig(dataset="digits", model="digits-cnn", epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, alpha2=args.alpha2, seed=seed,
                       label_noise=fraction, label_noise_kind=kind, label_noise_seed=seed,
                       quiet=True, device="cpu", figures=False, out=str(out))


def satkit_scores(config: TrainConfig) -> tuple[pd.DataFrame, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    result = train(config)
    quality = satkit_quality(load_run(result.run_dir))
    return quality, time.perf_counter() - started, time.process_time() - cpu


def out_of_fold_probabilities(config: TrainConfig, folds: int) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """(noisy labels, corrupted, out-of-fold probabilities (N, C)) from ``folds`` trainings
    of ``config``'s preset on the other folds."""
    from sklearn.model_selection import StratifiedKFold

    ctx = DistContext()  # one process, the CPU
    parts = build_parts(config, ctx)
    x, y = parts.data.train_x, parts.data.train_y
    labels = y.numpy()
    probs = np.zeros((len(labels), parts.data.num_classes))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for k, (fit, held) in enumerate(split.split(np.zeros(len(labels)), labels)):
        torch.manual_seed(config.seed * 1000 + k)
        fold = build_parts(config, ctx)  # a fresh model, optimizer and schedule
        loader = DeviceLoader(x[fit], y[fit], batch_size=config.batch_size, shuffle=True,
                              seed=config.seed + k)
        Trainer(fold.model, fold.optimizer, loader, epochs=config.epochs,
                schedule=fold.schedule, loss_fn=fold.loss_fn, progress=False).fit()
        fold.model.eval()
        with torch.no_grad():
            probs[held] = torch.softmax(fold.model(x[held]).double(), dim=1).numpy()
    return labels, parts.labels.corrupted, probs


def cleanlab_scores(config: TrainConfig, folds: int) -> tuple[pd.DataFrame, float, float]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    started, cpu = time.perf_counter(), time.process_time()
    labels, corrupted, probs = out_of_fold_probabilities(config, folds)
    quality = 1.0 - get_label_quality_scores(labels, probs)
    flagged = find_label_issues(labels, probs).astype(np.float64)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    k = int(corrupted.sum())
    rows = [{"score": name, "auroc": auroc(s, corrupted),
             "average_precision": average_precision(s, corrupted),
             "precision_at_k": precision_at_k(s, corrupted, k), "k": k, "n": len(s),
             "flagged": int(flagged.sum()) if name == "find_label_issues" else math.nan}
            for name, s in (("get_label_quality_scores", quality),
                            ("find_label_issues", flagged))]
    return pd.DataFrame(rows), seconds, cpu


def cell(values: list[float], fmt: str = ".3f") -> str:
    mean, low, high = t_interval(values)
    if math.isnan(mean):
        return "n/a"
    if math.isnan(low):
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(high - mean, fmt)}"


def table(rows: pd.DataFrame) -> str:
    lines = ["| noise | method | score | trainings | CPU s per seed | wall s per seed | AUROC "
             "| average precision | precision at k |", "|---|---|---|---|---|---|---|---|---|"]
    for (kind, fraction), setting in rows.groupby(["kind", "fraction"], sort=False):
        for (method, score), g in setting.groupby(["method", "score"], sort=False):
            lines.append(
                f"| {fraction:.0%} {kind} | {method} | {score} | {int(g['trainings'].iloc[0])} "
                f"| {cell(g['cpu_seconds'].tolist(), '.0f')} "
                f"| {cell(g['seconds'].tolist(), '.0f')} | {cell(g['auroc'].tolist())} | "
                f"{cell(g['average_precision'].tolist())} | "
                f"{cell(g['precision_at_k'].tolist())} |")
    return "\n".join(lines)


def verdict(rows: pd.DataFrame) -> list[str]:
    """satkit's best AUROC against cleanlab's (quality scores), and the compute ratio."""
    out = []
    for (kind, fraction), g in rows.groupby(["kind", "fraction"], sort=False):
        mine = g[g["method"] == "satkit"].groupby("score")["auroc"].mean()
        theirs = g[(g["method"] == "cleanlab") & (g["score"] == "get_label_quality_scores")]
        cpu = (g[g["method"] == "satkit"]["cpu_seconds"].mean(),
               g[g["method"] == "cleanlab"]["cpu_seconds"].mean())
        if theirs.empty:
            out.append(f"{fraction:.0%} {kind}: satkit's best score {mine.idxmax()} AUROC "
                       f"{mine.max():.3f}; cleanlab not installed")
            continue
        best, ref = mine.max(), theirs["auroc"].mean()
        folds = int(theirs["trainings"].iloc[0])
        out.append(f"{fraction:.0%} {kind}: satkit's best score {mine.idxmax()} AUROC {best:.4f} "
                   f"vs cleanlab {ref:.4f} ({best - ref:+.4f}); compute 1 vs {folds} trainings, "
                   f"CPU time {cpu[0] / cpu[1]:.2f} of cleanlab's")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--noise", type=noise_setting, nargs="+", default=list(SETTINGS),
                        metavar="KIND:FRACTION",
                        help="label-noise settings (default: symmetric:0.1 symmetric:0.3 "
                             "pairs:0.2)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--alpha2", type=float, default=0.0,
                        help="the method of both (0: softmax; > 0: Noisy Softmax)")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pinned)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    have_cleanlab = importlib.util.find_spec("cleanlab") is not None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up, untimed: imports, first allocations (else the first configuration pays them)
        train(config_for("symmetric", 0.1, 0, argparse.Namespace(**{**vars(args), "epochs": 1}),
                         Path(tmp) / "warm-up"))
        for kind, fraction in args.noise:
            for seed in args.seeds:
                config = config_for(kind, fraction, seed, args,
                                    Path(tmp) / f"{kind}_{fraction}_{seed}")
                quality, seconds, cpu = satkit_scores(config)
                rows += [{**r, "kind": kind, "fraction": fraction, "seed": seed,
                          "method": "satkit", "trainings": 1, "seconds": seconds,
                          "cpu_seconds": cpu} for r in quality.to_dict("records")]
                if have_cleanlab:
                    quality, seconds, cpu = cleanlab_scores(config, args.folds)
                    rows += [{**r, "kind": kind, "fraction": fraction, "seed": seed,
                              "method": "cleanlab", "trainings": args.folds,
                              "seconds": seconds, "cpu_seconds": cpu}
                             for r in quality.to_dict("records")]
                print(f"done: {fraction:.0%} {kind} seed {seed}", flush=True)
    frame = pd.DataFrame(rows)
    text = table(frame)
    print(f"\ndigits-cnn, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, alpha2 "
          f"{args.alpha2:g}, seeds {args.seeds}, {args.threads} torch thread(s); satkit scores: "
          f"{', '.join(SCORES)}\n")
    print(text)
    if not have_cleanlab:
        print("\ncleanlab: n/a (not installed; `make bench-labels` installs it)")
    print()
    for line in verdict(frame):
        print(line)
    if args.out is not None:
        args.out.write_text(text + "\n\n" + "\n".join(verdict(frame)) + "\n")
        frame.to_csv(args.out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
