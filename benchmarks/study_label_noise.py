"""Does Noisy Softmax, by postponing saturation, delay the memorization of wrong labels?

On the embedded digits (digits-cnn, ``--epochs`` epochs, batch 128, lr 0.1) with 0 / 20 / 40 %
of the training labels flipped (symmetric), every method of ``METHODS`` over the seeds:
softmax, Noisy Softmax at alpha2 = 0.1 and 1, DisturbLabel, label smoothing and focal loss
(their default settings). Per run, from its epochs and samples tables:

* test error % after the last epoch;
* of the corrupted samples: the share *memorized* (ever predicted as their wrong training
  label: ``first_learned_step`` known) and the Kaplan-Meier median step of that first
  prediction (censored at the last step: "> last" when under half were memorized);
* of the corrupted samples, under the training logits (the view in which Noisy Softmax
  postpones saturation): the share that ever saturated (p_y >= tau = 0.99 for the wrong
  label) and the Kaplan-Meier median step of their first saturation; the same median for the
  clean samples, for contrast;
* AUROC of the ``aum`` score for "label was flipped".

Printed: one Markdown table, mean ± half-width of the 95 % Student-t interval over seeds
(medians not reached within the run are averaged as missing: the cell says in how many
seeds it was reached); then the paired differences to softmax (same seed, so the same
initialisation, data order and flipped labels) of test error, memorized share, median step
of memorization and saturated share. Each run
is a real ``satkit train`` run directory under ``--out``.

Run: ``nice -n 10 .venv/bin/python benchmarks/study_label_noise.py --out DIR [--seeds 0 1 2]
[--epochs 12] [--noise 0 0.2 0.4]``.
A study, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from satkit.analysis import detection_quality, load_run, median_time_to_saturation
from satkit.analysis.seeds import t_interval
from satkit.training import TrainConfig, train

#: name -> TrainConfig fields of the method.
METHODS = {"softmax": {"loss": "noisy", "alpha2": 0.0},
           "Noisy Softmax α²=0.1": {"loss": "noisy", "alpha2": 0.1},
           "Noisy Softmax α²=1": {"loss": "noisy", "alpha2": 1.0},
           "DisturbLabel": {"loss": "disturb-label"},
           "label smoothing": {"loss": "label-smoothing"},
           "focal loss": {"loss": "focal"}}
NOISE = (0.0, 0.2, 0.4)


def _km_median(samples: pd.DataFrame, column: str, last_step: int) -> float:
    """Kaplan-Meier median of ``column`` (a step; <NA>: not by the end) over ``samples``."""
    if not len(samples):
        return math.nan
    # the survival functions read the event from first_saturated_step: hand them this column
    frame = pd.DataFrame({"first_saturated_step": samples[column].astype("Int64")})
    return median_time_to_saturation(frame, last_step=last_step)["median"]


def measure(run_dir: Path) -> dict[str, float]:
    run = load_run(run_dir)
    s, last = run.samples, run.last_step
    bad = s["label_corrupted"].astype(bool)
    out = {"test_error": float(run.epochs["test_error"].iloc[-1]), "last_step": last}
    if bad.any():
        c = s[bad]
        out.update(
            memorized=float(c["first_learned_step"].notna().mean()),
            memorized_median=_km_median(c, "first_learned_step", last),
            saturated=float(c["first_saturated_step_noisy"].notna().mean()),
            saturated_median=_km_median(c, "first_saturated_step_noisy", last),
            clean_saturated_median=_km_median(s[~bad], "first_saturated_step_noisy", last),
            aum_auroc=float(detection_quality(run, ["aum"])["auroc"].iloc[0]))
    else:
        out["clean_saturated_median"] = _km_median(s, "first_saturated_step_noisy", last)
    return out


def cell(values: list[float], fmt: str) -> str:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return "> last"
    mean, low, high = t_interval(finite)
    text = format(mean, fmt) if math.isnan(low) else f"{format(mean, fmt)} ± " \
        f"{format(high - mean, fmt)}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)}/{len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the runs go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--noise", type=float, nargs="+", default=list(NOISE),
                        help="label-noise fractions (symmetric)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pinned)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for noise in args.noise:
        for name, fields in METHODS.items():
            for seed in args.seeds:
                out = args.out / f"noise={noise}" / f"{name.replace(' ', '_')}_seed={seed}"
                if not (out / "summary.json").exists():
                    train(TrainConfig(dataset="digits", model="digits-cnn", epochs=args.epochs,
                                      batch_size=128, lr=0.1, seed=seed, label_noise=noise,
                                      label_noise_seed=seed, quiet=True, device="cpu",
                                      figures=False, out=str(out), **fields))
                rows.append({"noise": noise, "method": name, "seed": seed, **measure(out)})
                print(f"done: noise {noise} {name} seed {seed}", flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "study_label_noise.csv", index=False)
    columns = {"test_error": ("test error %", ".2f"),
               "memorized": ("corrupted memorized", ".2f"),
               "memorized_median": ("median step memorized", ".0f"),
               "saturated": ("corrupted saturated (training logits)", ".2f"),
               "saturated_median": ("median step corrupted saturate", ".0f"),
               "clean_saturated_median": ("median step clean saturate", ".0f"),
               "aum_auroc": ("AUROC aum", ".3f")}
    lines = ["| label noise | method | " + " | ".join(t for t, _ in columns.values()) + " |",
             "|---|---|" + "---|" * len(columns)]
    for (noise, name), g in frame.groupby(["noise", "method"], sort=False):
        cells = [cell(g[c].tolist(), fmt) if noise > 0 or c in ("test_error",
                                                                "clean_saturated_median")
                 else "–" for c, (_, fmt) in columns.items()]
        lines.append(f"| {noise:.0%} | {name} | " + " | ".join(cells) + " |")
    print(f"\ndigits-cnn, {args.epochs} epochs, seeds {args.seeds}; last step "
          f"{int(frame['last_step'].max())}\n")
    print("\n".join(lines))
    print("\nPaired with softmax (same seed, same flipped labels): the run's figure minus "
          "softmax's, mean ± half-width of the 95 % Student-t interval over seeds\n")
    print("\n".join(paired(frame)))


def paired(frame: pd.DataFrame) -> list[str]:
    """Markdown rows: per noise and method, the paired differences to softmax."""
    figures = {"test_error": ("test error %", ".2f"), "memorized": ("corrupted memorized", ".3f"),
               "memorized_median": ("median step memorized", ".0f"),
               "saturated": ("corrupted saturated", ".3f")}
    lines = ["| label noise | method | " + " | ".join(f"Δ {t}" for t, _ in figures.values())
             + " |", "|---|---|" + "---|" * len(figures)]
    for noise, g in frame.groupby("noise", sort=False):
        base = g[g["method"] == "softmax"].set_index("seed")
        for name, m in g[g["method"] != "softmax"].groupby("method", sort=False):
            m = m.set_index("seed")
            cells = []
            for column, (_, fmt) in figures.items():
                if column not in m or m[column].isna().all():
                    cells.append("–")
                    continue
                cells.append(cell((m[column] - base.loc[m.index, column]).tolist(), fmt))
            lines.append(f"| {noise:.0%} | {name} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
