"""Benchmark: load and summarise a one-million-step run (issue 5: "under a few seconds").

Writes a synthetic run directory whose ``metrics.parquet`` has 1,000,000 rows with every
column of the recorder's contract (both views of saturation) and a 60,000-sample
``samples.parquet`` (MNIST-sized, with the training-logit view and the settled event), then
times, in one process:

* load + summarise: ``load_run`` and ``run_table`` (onsets in both views, late-window means,
  the four per-sample Kaplan-Meier medians) plus ``postponement`` against a second run;
* ``saturation_summary``, what the trainer computes for summary.json at the end of a run;
* the tidy long form of all metrics (``load_runs``), for reference.

Run: ``.venv/bin/python benchmarks/bench_analysis.py [--steps N]``. Prints seconds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from satkit.analysis import load_run, load_runs, postponement, run_table, saturation_summary

COLUMNS = ("loss", "p_target_mean", "p_target_median", "p_target_q10", "p_target_q90",
           "p_target_noisy_mean", "p_target_noisy_median", "p_target_noisy_q10",
           "p_target_noisy_q90", "saturated_frac", "saturated_frac_0.9", "saturated_frac_0.99",
           "saturated_frac_noisy", "saturated_frac_noisy_0.9", "saturated_frac_noisy_0.99",
           "grad_target_mean", "grad_logits_norm_mean", "grad_features_norm_mean",
           "grad_weight_norm", "noise_mean", "noise_max", "cos_target_mean",
           "feature_norm_mean", "weight_norm_target_mean", "logit_target_mean",
           "logit_margin_mean")


def write_run(root: Path, steps: int, alpha2: float, num_samples: int = 60_000) -> Path:
    rng = np.random.default_rng(int(alpha2 * 10))
    run_dir = root / f"alpha2={alpha2:g}"
    run_dir.mkdir()
    step = np.arange(steps, dtype="int64")
    p = 1 - np.exp(-(step + 1) / (steps / 50 * (1 + 5 * alpha2)))
    frame = {"step": step}
    for column in COLUMNS:
        frame[column] = np.clip(p + rng.normal(0, 0.01, steps), 0, 1)
    frame["nonfinite"] = np.zeros(steps, dtype=bool)
    frame["batch_size"] = np.full(steps, 128, dtype="int64")
    pd.DataFrame(frame).to_parquet(run_dir / "metrics.parquet")
    first = rng.exponential(steps / 10, num_samples).astype("int64")
    first_noisy = (first * (1 + alpha2)).astype("int64")
    settled = first + rng.integers(0, steps // 100, num_samples)
    settled_noisy = first_noisy + rng.integers(0, steps // 50, num_samples)
    samples = pd.DataFrame({"index": np.arange(num_samples),
                            "desaturations": np.zeros(num_samples, dtype="int64"),
                            "desaturations_noisy": np.ones(num_samples, dtype="int64"),
                            "last_p_target": rng.uniform(size=num_samples),
                            "last_p_target_noisy": rng.uniform(size=num_samples),
                            "last_seen_step": np.full(num_samples, steps - 1)})
    for column, values in (("first_saturated_step", first), ("settled_step", settled),
                           ("first_saturated_step_noisy", first_noisy),
                           ("settled_step_noisy", settled_noisy)):
        samples[column] = pd.array(values, dtype="Int64")
        samples.loc[values >= steps, column] = pd.NA
    samples.to_parquet(run_dir / "samples.parquet")
    config = {"dataset": "mnist", "model": "mnist-paper", "alpha2": alpha2, "noise": "annealed",
              "loss": "noisy" if alpha2 else "softmax", "seed": 0}
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    steps = parser.parse_args().steps
    with tempfile.TemporaryDirectory() as tmp:
        soft_dir = write_run(Path(tmp), steps, 0.0)
        noisy_dir = write_run(Path(tmp), steps, 0.1)
        size = (soft_dir / "metrics.parquet").stat().st_size / 2**20

        start = time.perf_counter()
        soft = load_run(soft_dir)
        loaded = time.perf_counter()
        table = run_table([soft])
        summarised = time.perf_counter()
        noisy = load_run(noisy_dir)
        result = postponement(soft, noisy, saturation="noisy")
        both = time.perf_counter()
        summary = saturation_summary(noisy_dir)
        summarised_json = time.perf_counter()
        tidy = load_runs(soft_dir)
        tidied = time.perf_counter()

    print(f"metrics: {steps:,} steps x {len(soft.metrics.columns)} columns "
          f"({size:.0f} MiB Parquet), samples: {len(soft.samples):,}")
    print(f"load_run                      {loaded - start:6.2f} s")
    print(f"run_table (summarise)         {summarised - loaded:6.2f} s  "
          f"onset={table['onset_step'].iloc[0]:.0f}")
    print(f"load + summarise, one run     {summarised - start:6.2f} s")
    print(f"+ load 2nd run, postponement  {both - summarised:6.2f} s  "
          f"onset_ratio (training logits)={result['onset_ratio']:.2f}")
    print(f"saturation_summary (load too) {summarised_json - both:6.2f} s  "
          f"onset_noisy={summary['onset_step_noisy']}")
    print(f"load_runs (tidy, {len(tidy):,} rows) {tidied - summarised_json:6.2f} s, "
          f"{tidy.memory_usage(deep=True).sum() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
