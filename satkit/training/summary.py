"""A run's summary (``summary.json``, the printed line) and its TensorBoard hparams.

Every figure is computed from the whole run's tables, read back from the run directory after
the recorder closed, so a run resumed from a checkpoint reports the same figures as the same
run done in one go.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from satkit._version import __version__
from satkit.methods import NOISY, setting_values
from satkit.schema import SUMMARY_FIELDS, SUMMARY_TYPES
from satkit.training.config import TrainConfig

__all__ = ["HPARAM_METRICS", "HPARAM_METRICS_SHOWN", "hparams", "hparams_metrics", "run_summary"]

#: The HPARAMS metrics TensorBoard shows by default (it shows the first five): the test error
#: and the saturation figures in both views.
HPARAM_METRICS_SHOWN = ("test_error", "onset_step", "onset_step_noisy", "median_sample_onset",
                        "median_sample_onset_noisy")
#: Summary fields that describe the run rather than measure it (never hparams metrics).
_NOT_METRICS = ("alpha2", "seed", "epochs", "epochs_planned", "steps", "seconds",
                "seconds_per_step", "wall_seconds")
#: Summary fields logged as TensorBoard hparams metrics (as ``9 final figures/<field>``):
#: :data:`HPARAM_METRICS_SHOWN`, the late gradient, then every other numeric figure of
#: ``summary.json`` (:data:`satkit.schema.SUMMARY_TYPES`: a figure added there becomes a metric).
HPARAM_METRICS = tuple(dict.fromkeys(
    (*HPARAM_METRICS_SHOWN, "grad_target_late",
     *(f for f, kind in SUMMARY_TYPES.items()
       if kind.startswith(("number", "integer")) and f not in _NOT_METRICS))))
#: Training settings logged as hparams besides the method's own (bookkeeping is left out).
_TRAINING = ("dataset", "model", "epochs", "batch_size", "drop_last", "lr", "momentum",
             "weight_decay", "lr_gamma", "augment", "compile", "seed", "split_seed",
             "val_fraction", "label_noise", "label_noise_kind", "label_noise_seed")
#: The per-epoch calibration figures the summary takes from the last epoch.
_LAST_EPOCH = ("test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
               "test_overconfidence")


def _finite(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _last(epochs: Any, column: str) -> float | None:
    if not len(epochs) or column not in epochs:
        return None
    value = float(epochs[column].iloc[-1])
    return None if math.isnan(value) else value


def run_summary(config: TrainConfig, run: Any, *, steps: int, seconds: float,
                device: torch.device, finished: bool, wall_seconds: float,
                stop_reason: str | None = None,
                final: dict[str, Any] | None = None) -> dict[str, Any]:
    """``summary.json`` of a run (its fields are :data:`satkit.schema.SUMMARY_FIELDS`, in order).

    Args:
        config: the run's resolved config.
        run: the run loaded from its directory (:func:`satkit.analysis.load_run`).
        steps, seconds: optimizer steps done and training time, over the whole run.
        device: the device it trained on.
        finished: every planned epoch ran.
        stop_reason: why an unfinished run stopped ("interrupted", "non-finite", "write
            error", "error"); None for a finished run.
        wall_seconds: wall time of this invocation (setup and writing included).
        final: the end-of-run calibration of a finished run
            (:func:`satkit.training.posthoc.final_calibration`); its fields are null without.
    """
    epochs = run.epochs
    errors = epochs["test_error"].tolist() if len(epochs) else []
    from satkit.analysis import saturation_summary

    saturation = saturation_summary(run, tau=config.thresholds[-1])
    summary = {
        "dataset": config.dataset, "model": config.model, "loss": config.method,
        "alpha2": config.effective_alpha2, "noise": config.effective_noise, "seed": config.seed,
        "label_noise": _corrupted_fraction(config, run.samples),
        "finished": finished, "stop_reason": None if finished else stop_reason,
        "epochs": len(epochs), "epochs_planned": config.epochs,
        "steps": steps,
        "test_error": _finite(float(errors[-1])) if errors else None,
        "best_test_error": _finite(float(min(errors))) if errors else None,
        "train_error": _finite(float(epochs["train_error"].iloc[-1])) if errors else None,
        **{name: _last(epochs, name) for name in _LAST_EPOCH},
        **{name: _finite(value) for name, value in (final or {}).items()},
        **saturation,
        "seconds": round(seconds, 3), "seconds_per_step": seconds / max(steps, 1),
        "wall_seconds": round(wall_seconds, 3), "device": str(device),
        "satkit_version": __version__,
    }
    return {field: summary.get(field) for field in SUMMARY_FIELDS}


def _corrupted_fraction(config: TrainConfig, samples: Any) -> float | None:
    """The fraction of labels the run trained on corrupted: counted in the samples table;
    without one (a run that wrote none), 0 when no noise was asked for, else unknown."""
    if "label_corrupted" in samples and len(samples):
        return float(samples["label_corrupted"].astype(bool).mean())
    return 0.0 if config.label_noise == 0 else None


def hparams(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The run's hyperparameters for TensorBoard's HPARAMS tab: the method as applied (with its
    effective alpha2 and noise family, and its own settings), the training settings and the
    resolved device; no bookkeeping (output paths, flush intervals, thresholds, ...)."""
    values: dict[str, Any] = {"method": config.method, "alpha2": config.effective_alpha2,
                              "noise": config.effective_noise}
    if config.method == NOISY:
        values["xi_per"] = config.xi_per
    values.update(setting_values(config.method, config.to_dict()))
    values.update({name: getattr(config, name) for name in _TRAINING})
    values["lr_milestones"] = ", ".join(f"{m:g}" for m in config.lr_milestones)
    values["amp"] = config.amp and device.type == "cuda"  # as applied: CUDA only
    values["device"] = str(device)
    return values


def hparams_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """Field -> value for :data:`HPARAM_METRICS` (None: unknown, an empty cell)."""
    return {name: summary.get(name) for name in HPARAM_METRICS}
