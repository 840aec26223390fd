"""How a run reads in TensorBoard: its tags, the custom-scalars layout and the HPARAMS config.

Written for TensorBoard's defaults (2.x), so that what a user sees first reads right:

* **Tags** are ``<group>/<name>``, the groups numbered in story order
  (:data:`satkit.schema.TENSORBOARD_GROUPS`): TensorBoard sorts groups by name, numbers first,
  and its TIME SERIES tab opens the first two, the two views of saturation. A metrics column
  keeps its name (``2 saturation, training logits/p_target_noisy_median``); the group says the
  view. :func:`tag_for` maps a column to its tag.
* **Per-epoch series** (test error, learning rate, ...) are drawn as a staircase on the step
  axis: each epoch's value at up to :data:`EPOCH_POINTS` steps spread over the epoch
  (:func:`epoch_steps`). TensorBoard smooths every chart (0.6 by default) with an exponential
  moving average over *points*; with a single point per epoch the smoothed curve lags by epochs
  and can rank runs wrongly, while on a staircase the average catches up within each epoch
  (to 0.6**k after k points, k up to 50: no visible difference), so the chart reads the same
  smoothed or not, and the learning rate is a step function, not a ramp.
* **Custom scalars** (:func:`comparison_layout`): one quantity per chart, so each chart has one
  line per run; the two views as two categories with the same charts in the same order; the
  target-logit gradient also as its log10 (:func:`log10_tag`), where softmax's dying gradient
  and the noisy runs' multiple of it read without switching the axis to log scale (a layout
  cannot set log scale or outlier handling, see ``docs/tensorboard.md``).
* **HPARAMS** (:func:`hparam_columns`, :func:`default_columns`): TensorBoard shows the first
  five hyperparameters that are marked ``differs`` (sorted by name) and the first five metrics.
  satkit lists the same columns in every run (every method's settings), marks as ``differs``
  the method and what differs between the runs of a comparison, filled up to five with the
  seed and the data set, and puts the test error and the saturation figures of both views
  first among the metrics (:data:`satkit.training.summary.HPARAM_METRICS`).

Pure Python, no TensorBoard import: :mod:`satkit.sinks.tensorboard` builds the protos.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from satkit.columns import tensorboard_tag
from satkit.methods import METHODS
from satkit.schema import DEFAULT_THRESHOLDS, TENSORBOARD_GROUPS, view_column

__all__ = ["CLOSED_CATEGORIES", "DEFAULT_COLUMNS", "EPOCH_POINTS", "HISTOGRAM_TAGS",
           "LOG10_PREFIX", "SHOWN", "comparison_layout", "default_columns", "epoch_steps",
           "epoch_tag", "final_tag", "group_of", "hparam_columns", "log10_tag",
           "method_settings", "tag_for"]

#: Points per epoch of the per-epoch staircase (every step of a shorter epoch).
EPOCH_POINTS = 50
#: The name prefix of derived log10 series (not metrics columns).
LOG10_PREFIX = "log10 "
#: Columns also written as their log10 (the ratio between runs is the story).
_LOG10_COLUMNS = ("grad_target_mean",)
#: How many hyperparameter columns and metrics TensorBoard's HPARAMS table shows by default.
SHOWN = 5
#: Columns shown after the method when fewer than :data:`SHOWN` differ between the runs.
DEFAULT_COLUMNS = ("seed", "dataset", "model", "epochs")
#: Priority of the columns that differ: the run's identity first.
_PRIORITY = ("alpha2", "noise", "seed")

_G = TENSORBOARD_GROUPS
#: The per-sample histograms' tags (recorder name -> tag).
HISTOGRAM_TAGS: Mapping[str, str] = {"p_target": f"{_G['clean']}/p_target",
                                     "p_target_noisy": f"{_G['noisy']}/p_target_noisy",
                                     "noise": f"{_G['noise']}/noise"}
_QUANTITY_GROUPS = {"gradient": "gradient", "noise": "noise", "norms": "norms", "train": "loss",
                    "diagnostics": "diagnostics"}


def group_of(column: str) -> str | None:
    """The key of a metrics column's group in :data:`~satkit.schema.TENSORBOARD_GROUPS`
    (None for ``step``, aliases and columns satkit does not declare).

    Example:
        >>> group_of("p_target_median"), group_of("saturated_frac_noisy_0.99")
        ('clean', 'noisy')
        >>> group_of("logit_margin_mean"), group_of("loss"), group_of("saturated_frac")
        ('norms', 'loss', None)
    """
    tag = tensorboard_tag(column)
    if tag is None or tag.startswith("other/"):
        return None
    group = tag.partition("/")[0]
    if group != "saturation":
        return _QUANTITY_GROUPS[group]
    if column.startswith("logit_"):
        return "norms"
    return "noisy" if column.startswith(("p_target_noisy", "saturated_frac_noisy")) else "clean"


def tag_for(column: str) -> str | None:
    """The TensorBoard tag of a metrics column: ``<group>/<column>``; None for ``step`` and
    for aliases (``saturated_frac`` is ``saturated_frac_<last tau>``); ``other/<column>`` for
    a column satkit does not declare.

    Example:
        >>> tag_for("p_target_median")
        '1 saturation, clean/p_target_median'
        >>> tag_for("p_target_noisy_median")
        '2 saturation, training logits/p_target_noisy_median'
        >>> tag_for("grad_target_mean"), tag_for("loss"), tag_for("step")
        ('3 gradient/grad_target_mean', '6 training loss, per step/loss', None)
    """
    group = group_of(column)
    if group is not None:
        return f"{_G[group]}/{column}"
    return tensorboard_tag(column)  # None, or other/<column>


def log10_tag(column: str) -> str | None:
    """The tag of a column's log10 series, for the columns written as one (else None).

    Example:
        >>> log10_tag("grad_target_mean"), log10_tag("p_target_mean")
        ('3 gradient/log10 grad_target_mean', None)
    """
    if column not in _LOG10_COLUMNS:
        return None
    return f"{_G[group_of(column)]}/{LOG10_PREFIX}{column}"


def epoch_tag(name: str) -> str:
    """The tag of a per-epoch series (an ``epochs.csv`` column).

    Example:
        >>> epoch_tag("test_error")
        '5 learning curves, per epoch/test_error'
    """
    return f"{_G['epoch']}/{name}"


def final_tag(name: str) -> str:
    """The tag of a final figure (a ``summary.json`` field), an HPARAMS metric.

    Example:
        >>> final_tag("onset_step_noisy")
        '9 final figures/onset_step_noisy'
    """
    return f"{_G['hparams']}/{name}"


def epoch_steps(first: int, last: int, points: int = EPOCH_POINTS) -> list[int]:
    """The steps an epoch's value is written at: every step of ``[first, last]``, or
    ``points`` of them evenly spread, both ends included.

    Example:
        >>> epoch_steps(0, 4), epoch_steps(10, 10), epoch_steps(0, 999, points=3)
        ([0, 1, 2, 3, 4], [10], [0, 500, 999])
    """
    if last <= first:
        return [max(first, last)]
    if last - first + 1 <= points:
        return list(range(first, last + 1))
    return sorted({round(first + k * (last - first) / (points - 1)) for k in range(points)})


# -- the custom-scalars layout ---------------------------------------------------------------

def _exact(*tags: str) -> list[str]:
    """Regular expressions matching exactly these tags (custom-scalars charts match by regex)."""
    return [f"^{re.escape(t)}$" for t in tags]


def _chart(title: str, *tags: str) -> tuple[str, list[Any]]:
    return title, ["Multiline", _exact(*tags)]


def _view_charts(view: str, tau: float, label: str) -> dict[str, list[Any]]:
    col = view_column
    return dict([
        _chart(f"share of the batch with p_y >= {tau:g}, {label}",
               tag_for(col(f"saturated_frac_{tau:g}", view))),
        _chart(f"p_y, batch median, {label}", tag_for(col("p_target_median", view))),
        _chart(f"p_y, 10% quantile (the least fitted tenth of the batch), {label}",
               tag_for(col("p_target_q10", view))),
    ])


def comparison_layout(thresholds: Sequence[float] = DEFAULT_THRESHOLDS
                      ) -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout (category -> chart -> ``["Multiline", [regex, ...]]``).

    Every chart draws one quantity, one line per run of the log directory, so the runs of a
    comparison are compared chart by chart without telling lines apart by marker. Open by
    default: saturation in the clean view and under the training logits (the same three
    charts in the same order: the saturated share at the last threshold, the batch median and
    the 10% quantile of p_y), the gradient (as log10 and linear) and the noise, the learning
    curves; closed: the other thresholds and statistics, the gradient norms, norms and logits.

    Args:
        thresholds: the recorder's thresholds (the last one is the saturation threshold).
    """
    tau, others = thresholds[-1], thresholds[:-1]
    more: dict[str, list[Any]] = {}
    for view, label in (("clean", "clean"), ("noisy", "training logits")):
        for t in others:
            more.update([_chart(f"share of the batch with p_y >= {t:g}, {label}",
                                tag_for(view_column(f"saturated_frac_{t:g}", view)))])
        more.update([_chart(f"p_y, batch mean, {label}", tag_for(view_column("p_target_mean",
                                                                             view))),
                     _chart(f"p_y, 90% quantile, {label}", tag_for(view_column("p_target_q90",
                                                                               view)))])
    return {
        "saturation, clean p_y (the eval-mode logits)": _view_charts("clean", tau, "clean"),
        "saturation, p_y under the training logits (what the loss saw)":
            _view_charts("noisy", tau, "training logits"),
        "gradient and noise": dict([
            _chart("log10 |dL/df_y|, batch mean: -1 is 0.1, -2 is 0.01 (the gradient the target "
                   "logit still gets)", log10_tag("grad_target_mean")),
            _chart("|dL/df_y|, batch mean (linear)", tag_for("grad_target_mean")),
            _chart("noise on the target logit, batch mean", tag_for("noise_mean")),
        ]),
        "learning curves (per epoch, drawn over each epoch's steps)": dict([
            _chart("test error (%)", epoch_tag("test_error")),
            _chart("training error (%), from the training logits", epoch_tag("train_error")),
            _chart("learning rate", epoch_tag("lr")),
            _chart("test loss (clean logits)", epoch_tag("test_loss")),
            _chart("training loss (the loss trained on)", epoch_tag("train_loss")),
            _chart("training loss per step", tag_for("loss")),
        ]),
        "more saturation: other thresholds and statistics": more,
        "gradient norms and noise maximum": dict([
            _chart("||dL/df||, batch mean (all logits)", tag_for("grad_logits_norm_mean")),
            _chart("||dL/dX||, batch mean (sent back into the network)",
                   tag_for("grad_features_norm_mean")),
            _chart("||dL/dW|| of the head", tag_for("grad_weight_norm")),
            _chart("noise on the target logit, batch maximum", tag_for("noise_max")),
        ]),
        "norms and logits": dict([
            _chart("||X||, batch mean", tag_for("feature_norm_mean")),
            _chart("||W_y||, batch mean", tag_for("weight_norm_target_mean")),
            _chart("cos theta_y, batch mean", tag_for("cos_target_mean")),
            _chart("clean target logit f_y, batch mean", tag_for("logit_target_mean")),
            _chart("clean margin f_y - max other, batch mean", tag_for("logit_margin_mean")),
        ]),
    }


#: Categories of :func:`comparison_layout` closed when TensorBoard opens the tab.
CLOSED_CATEGORIES = ("more saturation: other thresholds and statistics",
                     "gradient norms and noise maximum", "norms and logits")


# -- the HPARAMS config ----------------------------------------------------------------------

def method_settings() -> list[str]:
    """Every method setting of the catalogue, once, in catalogue order."""
    return list(dict.fromkeys(s.field for m in METHODS.values() for s in m.settings))


def hparam_columns() -> tuple[str, ...]:
    """The HPARAMS columns every run lists (the same in every run, so that whichever run's
    config TensorBoard reads, every run's settings have a column): the method as applied,
    Noisy Softmax's alpha2, noise family and xi draw, every method's settings, then the
    training settings and the seed."""
    return ("method", "alpha2", "noise", "xi_per", *method_settings(), "dataset", "model", "epochs",
            "batch_size", "drop_last", "lr", "momentum", "weight_decay", "lr_milestones",
            "lr_gamma", "augment", "compile", "amp", "device", "seed", "split_seed")


def _key(value: Any) -> Any:
    return ("nan",) if isinstance(value, float) and math.isnan(value) else value


def default_columns(runs: Sequence[Mapping[str, Any]], shown: int = SHOWN) -> list[str]:
    """The hyperparameter columns the HPARAMS table shows by default for these runs: the
    method, then the columns whose values differ between the runs that have them (alpha2,
    noise and seed first), filled up with :data:`DEFAULT_COLUMNS`, ``shown`` in all.

    Args:
        runs: each run's hyperparameters (name -> value; a setting a run's method does not
            have is absent).
        shown: how many columns (TensorBoard shows five).

    Example:
        >>> runs = [{"method": "softmax", "alpha2": 0.0, "noise": "none", "seed": 0},
        ...         {"method": "noisy", "alpha2": 0.1, "noise": "annealed", "seed": 0}]
        >>> default_columns(runs)
        ['method', 'alpha2', 'noise', 'seed', 'dataset']
    """
    names = [n for n in hparam_columns() if any(n in r for r in runs)]
    differ = [n for n in names if len({_key(r[n]) for r in runs if n in r}) > 1]
    differ.sort(key=lambda n: _PRIORITY.index(n) if n in _PRIORITY else len(_PRIORITY))
    columns = ["method"]
    for name in [*differ, *DEFAULT_COLUMNS]:
        if name not in columns and len(columns) < shown:
            columns.append(name)
    return columns
