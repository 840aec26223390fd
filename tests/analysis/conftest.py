"""Synthetic run directories written exactly as satkit's trainer writes them.

``write_run`` is the helper (also loaded by tests/plots/conftest.py); the ``make_run``
fixture binds it to a temporary directory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

THRESHOLDS = (0.9, 0.99)
#: The columns a run recorded before the training-logit view and the settled event lacks.
NEW_METRICS = ("p_target_noisy_median", "p_target_noisy_q10", "p_target_noisy_q90",
               "saturated_frac_noisy", *[f"saturated_frac_noisy_{t:g}" for t in THRESHOLDS])
NEW_SAMPLES = ("first_saturated_step_noisy", "settled_step", "settled_step_noisy",
               "desaturations_noisy", "last_p_target_noisy")


def time_constant(alpha2: float, saturation: str = "clean") -> float:
    """The synthetic p_y's time constant: 20 (1 + 5 alpha2) steps in the clean view, times
    (1 + alpha2) under the training logits (the same for softmax)."""
    scale = 20.0 * (1.0 + 5.0 * alpha2)
    return scale * (1.0 + alpha2) if saturation == "noisy" else scale


def synthetic_metrics(steps: int, alpha2: float, *, every: int = 1, seed: int = 0) -> pd.DataFrame:
    """Metrics whose p_y approaches 1 as ``1 - exp(-(step + 1) / time_constant)``: the onset
    at tau is ``ceil(time_constant * ln(1 / (1 - tau))) - 1`` in each view."""
    rng = np.random.default_rng(seed)
    step = np.arange(0, steps, every, dtype="int64")
    p = 1.0 - np.exp(-(step + 1) / time_constant(alpha2))
    p_noisy = 1.0 - np.exp(-(step + 1) / time_constant(alpha2, "noisy"))
    noise = alpha2 * (0.5 + 0.5 * np.exp(-step / 100.0))
    jitter = np.zeros(step.size) * rng.normal()  # deterministic: onsets have closed forms
    frame = pd.DataFrame({
        "step": step,
        "loss": -np.log(p_noisy),
        "p_target_mean": p - 0.01 * (1 - p),
        "p_target_median": np.clip(p + jitter, 0, 1),
        "p_target_q10": p ** 3,
        "p_target_q90": p ** 0.3,
        "p_target_noisy_mean": p_noisy - 0.01 * (1 - p_noisy),
        "p_target_noisy_median": p_noisy,
        "p_target_noisy_q10": p_noisy ** 3,
        "p_target_noisy_q90": p_noisy ** 0.3,
    })
    for view, prob in (("", p), ("noisy_", p_noisy)):
        for tau in THRESHOLDS:
            frame[f"saturated_frac_{view}{tau:g}"] = np.clip((prob - tau + 0.3) / 0.3, 0, 1)
        frame[f"saturated_frac{'_noisy' if view else ''}"] = \
            frame[f"saturated_frac_{view}{THRESHOLDS[-1]:g}"]
    frame = frame.assign(
        grad_target_mean=1.0 - p_noisy, grad_logits_norm_mean=1.4 * (1.0 - p_noisy),
        grad_features_norm_mean=0.5 * (1.0 - p_noisy), grad_weight_norm=0.1 * (1.0 - p),
        noise_mean=noise, noise_max=3 * noise, cos_target_mean=0.2 + 0.7 * p,
        feature_norm_mean=5.0 + step / 100.0, weight_norm_target_mean=1.0 + step / 1000.0,
        logit_target_mean=np.log1p(step), logit_margin_mean=np.log1p(step) / 2,
        nonfinite=np.zeros(step.size, dtype=bool), batch_size=np.full(step.size, 128))
    return frame


def _steps(values: np.ndarray, steps: int) -> pd.arrays.IntegerArray:
    """Nullable steps: <NA> where not within the run (``>= steps``)."""
    out = pd.array(np.where(values < steps, values, 0), dtype="Int64")
    out[values >= steps] = pd.NA
    return out


def synthetic_samples(steps: int, alpha2: float, num_samples: int, seed: int = 0) -> pd.DataFrame:
    """Per-sample records: first saturation ~ exponential with mean 30 (1 + 5 alpha2) steps,
    (1 + 2 alpha2) times later under the training logits; settled up to 20 steps after it
    (later under noise); <NA> when beyond the run."""
    rng = np.random.default_rng(1000 + seed)
    first = rng.exponential(30.0 * (1.0 + 5.0 * alpha2), num_samples).astype("int64")
    first_noisy = (first * (1.0 + 2.0 * alpha2)).astype("int64")
    settled = first + rng.integers(0, 20, num_samples)
    settled_noisy = first_noisy + (rng.integers(0, 20, num_samples) * (1 + 5 * alpha2)).astype(
        "int64")
    last_p = rng.uniform(0.5, 1.0, num_samples)
    return pd.DataFrame({
        "index": np.arange(num_samples),
        "first_saturated_step": _steps(first, steps),
        "first_saturated_step_noisy": _steps(first_noisy, steps),
        "settled_step": _steps(settled, steps),
        "settled_step_noisy": _steps(settled_noisy, steps),
        "desaturations": rng.integers(0, 3, num_samples),
        "desaturations_noisy": rng.integers(0, 5, num_samples),
        "last_p_target": last_p,
        "last_p_target_noisy": last_p * (1.0 - 0.1 * alpha2),
        "last_seen_step": np.full(num_samples, steps - 1),
    })


def write_run(root: Path, *, alpha2: float = 0.0, seed: int = 0, steps: int = 300,
              every: int = 1, num_samples: int = 200, dataset: str = "digits",
              noise: str = "annealed", test_error: float | None = None, epochs: int = 3,
              tensorboard: bool = False, name: str | None = None,
              metrics: pd.DataFrame | None = None, samples: pd.DataFrame | None = None,
              config_extra: dict | None = None, summary_extra: dict | None = None,
              legacy: bool = False, summary: bool = True,
              histogram_every: int = 50, test_predictions: bool = False) -> Path:
    """Write one run directory (config, metrics, samples, epochs, summary[, event files]).

    ``config_extra`` / ``summary_extra`` add or override keys of config.json / summary.json
    (e.g. ``method``, ``effective_alpha2``, ``seconds_per_step``). ``legacy=True`` writes a
    run as satkit wrote it before the training-logit view and the settled event (without
    :data:`NEW_METRICS` and :data:`NEW_SAMPLES`); ``summary=False`` writes no summary.json
    (a run stopped before its end); ``test_predictions=True`` writes 120 synthetic test
    predictions, somewhat overconfident.
    """
    run_dir = Path(root) / (name or f"alpha2={alpha2:g}_seed={seed}")
    run_dir.mkdir(parents=True)
    loss = "softmax" if alpha2 == 0 else "noisy"
    config = {"dataset": dataset, "model": "digits-cnn", "alpha2": alpha2, "noise": noise,
              "loss": loss, "seed": seed, "epochs": epochs, "batch_size": 128, "lr": 0.1,
              "satkit_version": "0.1.0", "torch_version": "2.13.0", "device": "cpu",
              **(config_extra or {})}
    (run_dir / "config.json").write_text(json.dumps(config))
    metrics = synthetic_metrics(steps, alpha2, every=every, seed=seed) if metrics is None \
        else metrics
    samples = synthetic_samples(steps, alpha2, num_samples, seed) if samples is None else samples
    if legacy:
        metrics = metrics.drop(columns=[c for c in NEW_METRICS if c in metrics])
        samples = samples.drop(columns=[c for c in NEW_SAMPLES if c in samples])
    metrics.to_parquet(run_dir / "metrics.parquet")
    samples.to_parquet(run_dir / "samples.parquet")
    if test_error is None:
        test_error = 5.0 - 8.0 * alpha2 + 12.0 * alpha2**2 + 0.2 * seed
    epoch_rows = pd.DataFrame({
        "epoch": np.arange(1, epochs + 1),
        "step": np.linspace(steps / epochs, steps, epochs).astype(int),
        "train_loss": np.linspace(1.0, 0.1, epochs), "train_error": np.linspace(20, 1, epochs),
        "test_loss": np.linspace(1.0, 0.2, epochs),
        "test_error": np.linspace(test_error + 10, test_error, epochs),
        "lr": 0.1, "seconds": 1.0})
    epoch_rows.to_csv(run_dir / "epochs.csv", index=False)
    fields = {**{k: config[k] for k in ("dataset", "model", "alpha2", "noise", "loss", "seed")},
              "steps": int(metrics["step"].iloc[-1]) + 1 if len(metrics) else 0,
              "test_error": test_error, "best_test_error": test_error, "onset_step": None,
              "seconds": 3.0, "device": "cpu", **(summary_extra or {})}
    if summary:
        (run_dir / "summary.json").write_text(json.dumps(fields))
    if tensorboard:
        write_events(run_dir, metrics, histogram_every=histogram_every)
    if test_predictions:
        rng = np.random.default_rng(seed)
        confidence = rng.uniform(0.3, 1.0, 120)
        right = rng.uniform(size=120) < confidence - 0.05
        label = rng.integers(0, 10, 120)
        pd.DataFrame({"index": np.arange(120), "label": label,
                      "predicted": np.where(right, label, (label + 1) % 10),
                      "confidence": confidence,
                      "p_label": np.where(right, confidence, (1 - confidence) / 2)}).to_parquet(
            run_dir / "test_predictions.parquet")
    return run_dir


def write_events(run_dir: Path, metrics: pd.DataFrame, *, histograms: bool = True,
                 histogram_every: int = 50) -> None:
    from torch.utils.tensorboard import SummaryWriter

    groups = {"p_target": "saturation", "saturated": "saturation", "grad": "gradient",
              "noise": "noise", "feature": "norms", "weight": "norms"}
    writer = SummaryWriter(log_dir=str(run_dir))
    try:
        rng = np.random.default_rng(0)
        for row in metrics.itertuples(index=False):
            values = row._asdict()
            for column in ("p_target_mean", "p_target_median", "saturated_frac",
                           "grad_target_mean", "noise_mean", "feature_norm_mean"):
                group = next(g for k, g in groups.items() if column.startswith(k))
                writer.add_scalar(f"{group}/{column}", values[column], int(row.step))
            if histograms and row.step % histogram_every == 0:
                p = np.clip(rng.beta(1 + row.step / 10, 1.0, 256), 0, 1)
                writer.add_histogram("saturation/p_target", p, int(row.step))
    finally:
        writer.close()


@pytest.fixture
def make_run(tmp_path):
    """``make_run(**options) -> Path``: a run directory under a fresh temporary directory."""
    def make(**options):
        return write_run(tmp_path / "runs", **options)
    return make


@pytest.fixture
def expected_onset():
    """``expected_onset(alpha2, saturation="clean", tau=0.99)``: the onset step of
    :func:`synthetic_metrics` (first step with 1 - exp(-(t+1)/c) >= tau)."""
    def onset(alpha2: float, saturation: str = "clean", tau: float = 0.99) -> int:
        return math.ceil(time_constant(alpha2, saturation) * math.log(1 / (1 - tau))) - 1
    return onset


@pytest.fixture
def samples_factory():
    """The :func:`synthetic_samples` function."""
    return synthetic_samples


@pytest.fixture
def metrics_factory():
    """The :func:`synthetic_metrics` function (tests use fixtures, never ``import conftest``)."""
    return synthetic_metrics


@pytest.fixture
def run_writer():
    """The :func:`write_run` function, for tests that choose the parent directory."""
    return write_run
