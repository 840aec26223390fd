"""The run directory's format: its file names, the columns of its tables, its summary fields.

A run directory (what ``satkit train`` writes, and what :func:`satkit.analysis.load_run`
reads) holds:

============================  ==========================================================
``config.json``               the resolved :class:`satkit.training.TrainConfig`, plus the
                              method as applied, versions, device and data sizes
``metrics.parquet``           one row per recorded step (the columns are the recorder's
                              quantities, :data:`satkit.columns.QUANTITIES`)
``samples.parquet``           one row per training sample (:data:`SAMPLE_COLUMNS`, then
                              :data:`SAMPLE_LABEL_COLUMNS`)
``epochs.csv``                one row per finished epoch (:data:`EPOCH_COLUMNS`)
``summary.json``              the run's summary figures (:data:`SUMMARY_FIELDS`)
``test_predictions.parquet``  one row per test sample at the end of a finished run
                              (:data:`TEST_PREDICTION_COLUMNS`)
``checkpoint.pt``             the state to ``--resume`` from
``events.out.tfevents.*``     TensorBoard event files (tags ``<group>/<name>``, the groups
                              :data:`TENSORBOARD_GROUPS`)
``figures/dashboard.png``     the run's dashboard figure
============================  ==========================================================

``docs/run-directory.md`` describes each file for users; a test checks that it names every
column and field listed here. Pure Python; no torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from satkit.methods import METHODS

__all__ = [
    "CALIBRATION_BINS",
    "CHECKPOINT",
    "COMPARE",
    "CONFIG",
    "CONFIG_TYPES",
    "DASHBOARD",
    "DEFAULT_TAU",
    "DEFAULT_THRESHOLDS",
    "EPOCHS",
    "EPOCH_COLUMNS",
    "EPOCH_DTYPES",
    "FIGURES",
    "METRICS",
    "SAMPLES",
    "SAMPLE_COLUMNS",
    "SAMPLE_LABEL_COLUMNS",
    "SUMMARY",
    "SUMMARY_FIELDS",
    "SUMMARY_TYPES",
    "TEST_PREDICTIONS",
    "TEST_PREDICTION_COLUMNS",
    "TENSORBOARD_GROUPS",
    "TENSORBOARD_NOT_METRICS",
    "VIEWS",
    "view_column",
]

CONFIG = "config.json"
METRICS = "metrics.parquet"
SAMPLES = "samples.parquet"
EPOCHS = "epochs.csv"
SUMMARY = "summary.json"
TEST_PREDICTIONS = "test_predictions.parquet"
CHECKPOINT = "checkpoint.pt"
#: A comparison directory's plan (the base config and the grid), what ``compare --resume`` reads.
COMPARE = "compare.json"
FIGURES = "figures"
DASHBOARD = f"{FIGURES}/dashboard.png"

#: Equal-width confidence bins of the expected calibration error (ECE), as Guo et al. 2017.
CALIBRATION_BINS = 15

#: The saturation threshold tau when none is given: a sample is saturated at p_y >= 0.99.
DEFAULT_TAU = 0.99
#: The thresholds the recorder reports by default; the last one is the per-sample record's.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.9, DEFAULT_TAU)

#: The two views of saturation. ``"clean"``: p_y of the eval-mode (clean) logits;
#: ``"noisy"``: p_y of the logits the loss was computed on (Noisy Softmax's noise, a margin, a
#: temperature; identical to clean for plain softmax and the loss regularisers).
VIEWS: tuple[str, ...] = ("clean", "noisy")


def view_column(column: str, saturation: str) -> str:
    """The name of ``column`` in a view: unchanged for ``"clean"``, ``_noisy`` inserted for
    ``"noisy"``.

    Raises:
        ValueError: ``saturation`` is not a view.

    Example:
        >>> view_column("first_saturated_step", "noisy"), view_column("p_target_median", "noisy")
        ('first_saturated_step_noisy', 'p_target_noisy_median')
        >>> view_column("saturated_frac_0.99", "noisy"), view_column("onset_step", "clean")
        ('saturated_frac_noisy_0.99', 'onset_step')
    """
    if saturation not in VIEWS:
        raise ValueError(f"saturation must be one of {', '.join(VIEWS)}; got {saturation!r}")
    if saturation == "clean":
        return column
    for stem in ("p_target", "saturated_frac"):
        if column.startswith(stem + "_"):
            return f"{stem}_noisy_{column[len(stem) + 1:]}"
        if column == stem:
            return f"{stem}_noisy"
    return f"{column}_noisy"


#: The samples table, one row per training sample: column -> (pandas dtype, meaning).
#: Steps are optimizer-step indices from 0. A view's "saturated" is p_y >= tau, tau being the
#: recorder's last threshold. Int64 columns are nullable: <NA> = did not happen / not seen.
SAMPLE_COLUMNS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "index": ("int64", "the sample's position in the training set"),
    "first_saturated_step": ("Int64", "first step at which the sample was seen saturated "
                                      "(clean view); <NA>: never"),
    "first_saturated_step_noisy": ("Int64", "the same under the training logits (noisy view)"),
    "settled_step": ("Int64", "step of the first visit from which on the sample was never again "
                              "seen below tau (clean view); <NA> when its last visit was below "
                              "tau (censored: it had not settled by the end)"),
    "settled_step_noisy": ("Int64", "the same under the training logits (noisy view)"),
    "desaturations": ("int64", "times the sample was seen below tau after having been seen "
                               "saturated (clean view)"),
    "desaturations_noisy": ("int64", "the same under the training logits (noisy view)"),
    "last_p_target": ("float64", "clean p_y at its last visit; NaN: never seen"),
    "last_p_target_noisy": ("float64", "p_y under the training logits at its last visit"),
    "last_seen_step": ("Int64", "the step of its last visit; <NA>: never seen"),
    "visits": ("int64", "recorded training steps that saw the sample (a sample listed twice in "
                        "a step: two visits)"),
    "confidence": ("float64", "mean clean p_y over its visits (Data Maps' confidence); NaN: "
                              "never seen"),
    "variability": ("float64", "population standard deviation of the clean p_y over its "
                               "visits (Data Maps' variability; 0 after one visit)"),
    "confidence_noisy": ("float64", "the same mean of p_y under the training logits"),
    "variability_noisy": ("float64", "the same standard deviation under the training logits"),
    "correctness": ("float64", "fraction of its visits predicted right: clean margin > 0, the "
                               "label trained on strictly above every other clean logit (a "
                               "tie is wrong); a sequence: mean of its token accuracy"),
    "forgetting_events": ("int64", "visits predicted wrong right after a visit predicted right "
                                   "(Toneva et al.); a never-learned sample has 0 and "
                                   "first_learned_step <NA>"),
    "first_learned_step": ("Int64", "first step at which it was predicted right; <NA>: never"),
    "aum": ("float64", "area under the margin: mean over its visits of the clean margin "
                       "f_y - max_{j != y} f_j (Pleiss et al.); NaN: never seen"),
})

#: Columns ``satkit train`` adds to its samples table (the recorder alone cannot know them).
SAMPLE_LABEL_COLUMNS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "label": ("int64", "the label the sample was trained on (after --label-noise)"),
    "true_label": ("int64", "the data set's own label"),
    "label_corrupted": ("bool", "label != true_label: --label-noise changed it"),
})

#: The epochs table (``epochs.csv``), one row per finished epoch. Errors are in %.
EPOCH_COLUMNS: Mapping[str, str] = MappingProxyType({
    "epoch": "epoch index, from 0",
    "step": "optimizer steps done at the end of the epoch",
    "train_loss": "mean training loss over the epoch (the loss the method trains on)",
    "train_error": "training error % over the epoch, from the training logits",
    "test_loss": "mean cross-entropy of the clean logits on the test set",
    "test_error": "test error % (clean logits)",
    "lr": "learning rate during the epoch",
    "seconds": "wall time of the epoch, evaluation included",
    "test_ece": "expected calibration error of the clean test logits' top-1 confidence, "
                f"{CALIBRATION_BINS} equal-width bins (0 to 1)",
    "test_ece_adaptive": "the same over equal-mass bins (tied confidences kept together)",
    "test_brier": "mean over the test set of sum_j (p_j - 1{j = y})^2 (0 to 2)",
    "test_confidence": "mean top-1 probability over the test set",
    "test_overconfidence": "test_confidence minus the test accuracy (signed; > 0: "
                           "overconfident)",
})

#: ``test_predictions.parquet``, one row per test sample, written at the end of a finished run
#: from the final model's clean logits: column -> (pandas dtype, meaning).
TEST_PREDICTION_COLUMNS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "index": ("int64", "the sample's position in the test set"),
    "label": ("int64", "its label"),
    "predicted": ("int64", "the predicted class (the first of largest logit)"),
    "confidence": ("float64", "the top-1 softmax probability (of the float32 logits)"),
    "p_label": ("float64", "the softmax probability of its label"),
})

#: The dtype of each epochs-table column (a column of whole numbers may also be read back as
#: float64, e.g. from a CSV with a blank cell).
EPOCH_DTYPES: Mapping[str, str] = MappingProxyType({
    column: "int64" if column in ("epoch", "step") else "float64" for column in EPOCH_COLUMNS})

#: ``summary.json``: field -> meaning. Saturation figures are computed from the whole run's
#: tables (also after ``--resume``).
SUMMARY_FIELDS: Mapping[str, str] = MappingProxyType({
    "dataset": "the data set",
    "model": "the model preset",
    "loss": "the method as applied (softmax for Noisy Softmax at alpha2 = 0)",
    "alpha2": "Noisy Softmax's alpha^2 as applied (0 for every other method)",
    "noise": "the noise family as applied (none unless Noisy Softmax)",
    "seed": "the training seed",
    "label_noise": "fraction of the training labels actually corrupted by --label-noise (0: "
                   "none), counted in the samples table's label_corrupted",
    "finished": "true when every epoch ran; false for a run stopped early",
    "stop_reason": "why an unfinished run stopped: interrupted (Ctrl-C, SIGTERM), non-finite "
                   "(the loss diverged), write error, error, stopped early (a framework's "
                   "early stopping); null for a finished run",
    "epochs": "epochs finished",
    "epochs_planned": "epochs the config asked for",
    "steps": "optimizer steps done",
    "test_error": "test error % after the last finished epoch",
    "best_test_error": "lowest test error % over the finished epochs",
    "train_error": "training error % of the last finished epoch",
    "test_ece": "test_ece of the last finished epoch",
    "test_ece_adaptive": "test_ece_adaptive of the last finished epoch",
    "test_brier": "test_brier of the last finished epoch",
    "test_confidence": "test_confidence of the last finished epoch",
    "test_overconfidence": "test_overconfidence of the last finished epoch",
    "temperature": "the temperature T fitted on the validation split by NLL at the end of a "
                   "finished run; null without a validation split",
    "test_ece_ts": "test ECE of the final logits divided by temperature (post-hoc temperature "
                   "scaling); null without a validation split",
    "test_nll_ts": "test NLL of the final logits divided by temperature; null without a "
                   "validation split",
    "train_ece": "ECE of the samples trained on, final model, clean logits (end of a finished "
                 "run)",
    "train_ece_adaptive": "the same over equal-mass bins",
    "train_brier": "Brier score of the samples trained on, final model, clean logits",
    "train_confidence": "mean top-1 probability of the samples trained on, clean logits",
    "train_overconfidence": "train_confidence minus their accuracy, clean logits",
    "train_ece_noisy": "ECE of the training logits over the last epoch (each sample as trained "
                       "on)",
    "train_ece_adaptive_noisy": "the same over equal-mass bins",
    "train_brier_noisy": "Brier score of the training logits over the last epoch",
    "train_confidence_noisy": "mean top-1 probability of the training logits, last epoch",
    "train_overconfidence_noisy": "train_confidence_noisy minus the accuracy of the training "
                                  "logits, last epoch",
    "onset_step": "first step at which the batch median of the clean p_y reached tau; null: never",
    "onset_step_noisy": "the same under the training logits (noisy view)",
    "median_sample_onset": "Kaplan-Meier median of the samples' first_saturated_step; null: "
                           "fewer than half saturated",
    "median_sample_onset_noisy": "the same under the training logits (noisy view)",
    "grad_target_late": "mean |dL/df_y| over the last quarter of the recorded steps",
    "seconds": "training wall time (evaluation included)",
    "seconds_per_step": "seconds / steps",
    "wall_seconds": "wall time of the whole run, setup and writing included",
    "device": "the device it trained on",
    "satkit_version": "the satkit version that wrote it",
})

# The JSON types of the fields of config.json and summary.json, which load_run checks (a field
# that is absent is not an error; one that is present must have its type). A type is "string",
# "integer" (a whole number), "number", "boolean" or "list of numbers", optionally followed by
# " or null".
_NUMBER_OR_NULL = "number or null"

#: ``summary.json``: field -> JSON type (the fields of :data:`SUMMARY_FIELDS`).
SUMMARY_TYPES: Mapping[str, str] = MappingProxyType({
    "dataset": "string or null", "model": "string or null", "loss": "string or null",
    "alpha2": _NUMBER_OR_NULL, "noise": "string or null", "seed": "integer or null",
    "label_noise": _NUMBER_OR_NULL,
    "finished": "boolean", "stop_reason": "string or null", "epochs": "integer",
    "epochs_planned": "integer or null", "steps": "integer", "test_error": _NUMBER_OR_NULL,
    "best_test_error": _NUMBER_OR_NULL,
    "train_error": _NUMBER_OR_NULL, "onset_step": "integer or null",
    "onset_step_noisy": "integer or null", "median_sample_onset": "integer or null",
    "median_sample_onset_noisy": "integer or null", "grad_target_late": _NUMBER_OR_NULL,
    "seconds": _NUMBER_OR_NULL, "seconds_per_step": _NUMBER_OR_NULL,
    "wall_seconds": _NUMBER_OR_NULL, "device": "string or null", "satkit_version": "string",
    # the calibration figures (issue 23)
    **dict.fromkeys(("test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
                     "test_overconfidence", "temperature", "test_ece_ts", "test_nll_ts",
                     *(f"train_{m}{v}" for v in ("", "_noisy") for m in (
                         "ece", "ece_adaptive", "brier", "confidence", "overconfidence"))),
                    _NUMBER_OR_NULL),
})

#: ``config.json``: field -> JSON type: every field of ``satkit.training.TrainConfig``, then
#: what the trainer adds. The framework callbacks (:mod:`satkit.integrations`) write some of
#: them as null (a seed or an epoch count they do not know).
CONFIG_TYPES: Mapping[str, str] = MappingProxyType({
    "dataset": "string", "model": "string or null", "loss": "string or null",
    "alpha2": _NUMBER_OR_NULL, "noise": "string or null", "xi_per": "string",
    # the methods' settings (epsilon, beta, ..., margin), from the catalogue
    **{s.field: _NUMBER_OR_NULL for m in METHODS.values() for s in m.settings},
    "epochs": "integer or null", "batch_size": "integer or null",
    "lr": _NUMBER_OR_NULL, "momentum": _NUMBER_OR_NULL, "weight_decay": _NUMBER_OR_NULL,
    "lr_milestones": "list of numbers", "lr_gamma": _NUMBER_OR_NULL, "augment": "boolean",
    "device": "string or null", "amp": "boolean", "compile": "boolean",
    "seed": "integer or null", "split_seed": "integer", "val_fraction": "number",
    "label_noise": "number", "label_noise_kind": "string", "label_noise_seed": "integer",
    "data_dir": "string or null",
    "out": "string or null", "resume": "boolean", "thresholds": "list of numbers",
    "every": "integer", "flush_every": "integer", "histogram_every": "integer or null",
    "opt_in": "list of strings",
    "drop_last": "boolean",
    "quiet": "boolean", "figures": "boolean",
    # added by the trainer
    "lr_milestone_epochs": "list of numbers", "method": "string",
    "effective_alpha2": _NUMBER_OR_NULL, "effective_noise": "string",
    "satkit_version": "string", "torch_version": "string", "threads": "integer",
    "world_size": "integer", "train_size": "integer or null", "val_size": "integer or null",
    "test_size": "integer or null",
    "num_classes": "integer or null",
})

#: TensorBoard's tag groups (a tag is ``<group>/<name>``): key -> the group's name. TensorBoard
#: lists groups sorted by name, numbers first and by value, so the numbers put them in this
#: order: the saturation story first, bookkeeping last. ``epoch`` holds the per-epoch learning
#: curves, ``hparams`` the final figures the HPARAMS tab reads; every other group holds metrics
#: columns, under their own names (``2 saturation, training logits/p_target_noisy_median``).
TENSORBOARD_GROUPS: Mapping[str, str] = MappingProxyType({
    "clean": "1 saturation, clean",
    "noisy": "2 saturation, training logits",
    "gradient": "3 gradient",
    "noise": "4 noise",
    "epoch": "5 learning curves, per epoch",
    "loss": "6 training loss, per step",
    "norms": "7 norms and logits",
    "diagnostics": "8 diagnostics",
    "hparams": "9 final figures",
})
#: The groups whose tags are not metrics columns (and tag prefixes of older runs that were not).
TENSORBOARD_NOT_METRICS: tuple[str, ...] = (
    f"{TENSORBOARD_GROUPS['epoch']}/", f"{TENSORBOARD_GROUPS['hparams']}/", "epoch/",
    "hparams/", "final/")
