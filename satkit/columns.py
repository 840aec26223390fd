"""What the recorder measures: one declaration per metrics column.

A step's *positions* are its samples (classification, logits (N, C)) or its non-ignored tokens
(sequence models, logits (N, T, C)). For every position the recorder computes a few values
from the captured tensors once (:data:`VALUES`: each a formula over the packed per-position
vectors of :data:`satkit.hooks.layout.PACKED`, documented with its maths), and every column of
the ``metrics`` table is a :class:`Quantity`: a name, the value it reduces, how it reduces it
over the step's positions, its TensorBoard group and a one-line description. The table's
columns, the raw per-step row kept on the device, the reduction across ranks, the TensorBoard
tags, their hover descriptions and the glossary test all derive from :data:`QUANTITIES`.

Adding a column is one declaration here, plus its test. Example: the largest |dL/df_y| of a
step would be
``Quantity("grad_target_max", "max", "grad_target", "gradient", "largest |dL_i/df_y|")``.
A column whose per-position value needs the logits themselves declares its own ``kernel`` (a
function of the (P, C) log-softmax of the training logits, run in the pass that computes it
anyway, its result packed in a slot named by ``value``); one that costs another pass over
positions x classes is ``opt_in`` (recorded only when the recorder's ``opt_in`` names its
value), e.g. ``entropy_mean`` below.

Pure Python (the kernels are tensor methods, called by :mod:`satkit.hooks.stats`); no torch
import, so the sinks and the analysis read these declarations without the recorder.

Two views of saturation (``satkit.schema.VIEWS``): *clean* p_y is the softmax of the eval-mode
logits; *noisy* p_y the softmax of the logits the loss was computed on (Noisy Softmax's Eq. 5
noise, a margin, a temperature applied; the same as clean for plain softmax).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from types import MappingProxyType
from typing import Any

__all__ = ["GROUPS", "QUANTILES", "QUANTITIES", "REDUCTIONS", "VALUES", "Quantity",
           "check_opt_in", "column_dtypes", "column_names", "describe", "kernel_quantities",
           "opt_in_names", "recorded", "tensorboard_tag", "threshold_column"]

#: How a quantity reduces its per-position value over a step:
#: ``mean``/``max`` over the finite positions; ``q10``/``median``/``q90`` quantiles of the
#: finite positions; ``fraction``: the share of finite positions with value >= tau, one column
#: per threshold; ``loss``: the loss given to ``step()`` (else the mean cross-entropy of the
#: training logits); ``count``: the number of positions; ``scalar``: one value per step;
#: ``flag``: any position non-finite.
REDUCTIONS = ("mean", "max", "q10", "median", "q90", "fraction", "loss", "count", "scalar",
              "flag")
#: The quantile reductions and their levels.
QUANTILES: Mapping[str, float] = MappingProxyType({"q10": 0.1, "median": 0.5, "q90": 0.9})
#: TensorBoard groups, in the order of the dashboards.
GROUPS = ("saturation", "gradient", "noise", "norms", "train", "diagnostics")


@dataclass(frozen=True)
class Quantity:
    """One column of the ``metrics`` table.

    Attributes:
        name: the column (for ``fraction``: the stem, the columns are ``<name>_<tau>``).
        reduce: one of :data:`REDUCTIONS`.
        value: the per-position value it reduces (a key of :data:`VALUES`), or None for
            ``loss``, ``count``, ``scalar`` and ``flag``.
        group: its TensorBoard group (:data:`GROUPS`).
        description: one line, with the formula; TensorBoard shows it on hover.
        alias_of_last: for ``fraction``: also write ``<name>`` = the column of the last
            (the per-sample record's) threshold; the alias is kept out of TensorBoard.
        kernel: for a value of its own (``value`` not in :data:`VALUES`): ``kernel(logp)``
            of ``logp``, the (P, C) log-softmax of the training logits, -> (P,); computed
            where the recorder computes ``logp`` anyway and packed in slot ``value``.
        opt_in: recorded only when the recorder's ``opt_in`` names ``value`` (a costly one:
            another pass over positions x classes); absent from the table otherwise.
    """

    name: str
    reduce: str
    value: str | None
    group: str
    description: str
    alias_of_last: bool = False
    kernel: Callable[[Any], Any] | None = None
    opt_in: bool = False


#: Per-position values computed from the packed slots: name -> (formula, meaning). The
#: formulas see (:data:`satkit.hooks.layout.PACKED`): ``logp_train``/``logp_clean`` (log p_y of
#: the training / clean logits), ``f_y``, ``max_other`` (clean target logit, largest other),
#: ``noise``, ``feature_norm``, ``weight_norm``, ``dot`` (W_y.X), ``grad_target``,
#: ``grad_norm``, ``grad_features_norm`` (gradients of the step's mean loss), ``scale`` (the
#: number of positions: makes those gradients per position) and ``tiny``.
_FORMULAS: Mapping[str, tuple[Callable[[Any], Any], str]] = MappingProxyType({
    "p_target": (lambda c: c.logp_clean.exp(), "clean p_y = softmax(f)_y"),
    "p_target_noisy": (lambda c: c.logp_train.exp(),
                       "p_y under the training logits, softmax(f~)_y"),
    "ce": (lambda c: -c.logp_train, "cross-entropy of the training logits, -log softmax(f~)_y"),
    "grad_target": (lambda c: c.grad_target * c.scale, "|dL_i/df_y|, per position"),
    "grad_logits_norm": (lambda c: c.grad_norm * c.scale, "||dL_i/df||, per position"),
    "grad_features_norm": (lambda c: c.grad_features_norm * c.scale,
                           "||dL_i/dX||, per position (NaN when X has no gradient)"),
    "noise": (lambda c: c.noise, "clean f_y minus training f_y (Eq. 5's noise, a margin)"),
    "cos_target": (lambda c: c.dot / (c.weight_norm * c.feature_norm).clamp_min(c.tiny),
                   "cos theta_y = W_y.X / (||W_y|| ||X||)"),
    "feature_norm": (lambda c: c.feature_norm, "||X||, the head's input"),
    "weight_norm_target": (lambda c: c.weight_norm, "||W_y||"),
    "logit_target": (lambda c: c.f_y, "clean f_y"),
    "logit_margin": (lambda c: c.f_y - c.max_other, "clean f_y minus the largest other logit"),
})

_Q = Quantity
#: Every column of the ``metrics`` table but ``step``, in table order.
QUANTITIES: tuple[Quantity, ...] = (
    _Q("batch_size", "count", None, "diagnostics",
       "positions recorded in the step (samples; tokens for sequence logits)"),
    _Q("loss", "loss", None, "train",
       "the step's training loss (given to step(), else the mean cross-entropy)"),
    _Q("p_target_mean", "mean", "p_target", "saturation", "batch mean of the clean p_y"),
    _Q("p_target_median", "median", "p_target", "saturation", "batch median of the clean p_y"),
    _Q("p_target_q10", "q10", "p_target", "saturation", "10% quantile of the clean p_y"),
    _Q("p_target_q90", "q90", "p_target", "saturation", "90% quantile of the clean p_y"),
    _Q("p_target_noisy_mean", "mean", "p_target_noisy", "saturation",
       "batch mean of p_y under the training logits (what the loss saw)"),
    _Q("p_target_noisy_median", "median", "p_target_noisy", "saturation",
       "batch median of p_y under the training logits"),
    _Q("p_target_noisy_q10", "q10", "p_target_noisy", "saturation",
       "10% quantile of p_y under the training logits"),
    _Q("p_target_noisy_q90", "q90", "p_target_noisy", "saturation",
       "90% quantile of p_y under the training logits"),
    _Q("saturated_frac", "fraction", "p_target", "saturation",
       "share of the batch with clean p_y >= tau", alias_of_last=True),
    _Q("saturated_frac_noisy", "fraction", "p_target_noisy", "saturation",
       "share of the batch with p_y >= tau under the training logits", alias_of_last=True),
    _Q("grad_target_mean", "mean", "grad_target", "gradient",
       "batch mean of |dL_i/df_y| = 1 - P_y for cross-entropy: how much the target still teaches"),
    _Q("grad_logits_norm_mean", "mean", "grad_logits_norm", "gradient",
       "batch mean of ||dL_i/df||"),
    _Q("grad_features_norm_mean", "mean", "grad_features_norm", "gradient",
       "batch mean of ||dL_i/dX||, the gradient the head sends back"),
    _Q("grad_weight_norm", "scalar", None, "gradient", "||dL/dW|| of the head's weight"),
    _Q("noise_mean", "mean", "noise", "noise",
       "batch mean of the amount the target logit was lowered (Eq. 5's noise, a margin)"),
    _Q("noise_max", "max", "noise", "noise", "largest amount the target logit was lowered"),
    _Q("cos_target_mean", "mean", "cos_target", "norms", "batch mean of cos theta_y"),
    _Q("feature_norm_mean", "mean", "feature_norm", "norms", "batch mean of ||X||"),
    _Q("weight_norm_target_mean", "mean", "weight_norm_target", "norms",
       "batch mean of ||W_y||"),
    _Q("logit_target_mean", "mean", "logit_target", "saturation", "batch mean of the clean f_y"),
    _Q("logit_margin_mean", "mean", "logit_margin", "saturation",
       "batch mean of f_y minus the largest other logit (clean)"),
    _Q("entropy_mean", "mean", "entropy", "train",
       "batch mean of the entropy of the training softmax, H = -sum_j p~_j log p~_j (nats); "
       "opt-in: opt_in=(\"entropy\",)",
       kernel=lambda logp: -(logp.exp() * logp).where(logp > -math.inf, 0.0).sum(dim=1),
       opt_in=True),
    _Q("nonfinite", "flag", None, "diagnostics",
       "true when some position had NaN/Inf logits, noise, features or gradients (left out "
       "of every mean), or the loss was not finite"),
)


#: Every per-position value: name -> (formula over the step's packed vectors, meaning); a
#: value with a kernel of its own is read from its packed slot.
VALUES: Mapping[str, tuple[Callable[[Any], Any], str]] = MappingProxyType({
    **_FORMULAS, **{q.value: (attrgetter(q.value), q.description)
                    for q in QUANTITIES if q.kernel is not None}})


def threshold_column(tau: float, stem: str = "saturated_frac") -> str:
    """The metrics column of a ``fraction`` quantity at ``tau``.

    Example:
        >>> threshold_column(0.99), threshold_column(0.9, "saturated_frac_noisy")
        ('saturated_frac_0.99', 'saturated_frac_noisy_0.9')
    """
    return f"{stem}_{tau:g}"


def opt_in_names() -> tuple[str, ...]:
    """The names an ``opt_in`` may hold: the values of the opt-in quantities."""
    return tuple(dict.fromkeys(q.value for q in QUANTITIES if q.opt_in))


def check_opt_in(opt_in: Iterable[str]) -> tuple[str, ...]:
    """``opt_in`` as a tuple of known names (:func:`opt_in_names`), without repeats.

    Raises:
        ValueError: a name that is not an opt-in quantity's value, or a bare string.
    """
    if isinstance(opt_in, str):
        raise ValueError(f"opt_in must be a collection of names, e.g. ({opt_in!r},), got the "
                         f"string {opt_in!r}")
    names = tuple(dict.fromkeys(opt_in))
    known = opt_in_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"opt_in: unknown quantities {unknown}; expected some of {list(known)}")
    return names


def recorded(opt_in: Iterable[str] = ()) -> tuple[Quantity, ...]:
    """The quantities a recorder with this ``opt_in`` records, in table order."""
    chosen = set(opt_in)
    return tuple(q for q in QUANTITIES if not q.opt_in or q.value in chosen)


def kernel_quantities(opt_in: Iterable[str] = ()) -> tuple[Quantity, ...]:
    """The recorded quantities with a kernel of their own, one per value (its packed slot)."""
    return tuple({q.value: q for q in recorded(opt_in) if q.kernel is not None}.values())


def column_names(thresholds: Sequence[float], opt_in: Iterable[str] = ()) -> list[str]:
    """The columns of the metrics table, in order, for the given thresholds (and opt-in
    quantities).

    Example:
        >>> column_names([0.99])[:3], column_names([0.99])[-1]
        (['step', 'batch_size', 'loss'], 'nonfinite')
        >>> [n for n in column_names([0.9], ["entropy"]) if n not in column_names([0.9])]
        ['entropy_mean']
    """
    names = ["step"]
    for q in recorded(opt_in):
        if q.reduce == "fraction":
            names += [q.name] if q.alias_of_last else []
            names += [threshold_column(t, q.name) for t in thresholds]
        else:
            names.append(q.name)
    return names


def column_dtypes(thresholds: Sequence[float], opt_in: Iterable[str] = ()) -> dict[str, str]:
    """The pandas dtype of every metrics column: int64 for ``step`` and counts, bool for
    flags, float64 for the rest."""
    kinds = {"count": "int64", "flag": "bool"}
    out = {"step": "int64"}
    for name in column_names(thresholds, opt_in)[1:]:
        q = _declaration(name)
        out[name] = kinds.get(q.reduce if q else "", "float64")
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _declaration(column: str) -> Quantity | None:
    for q in QUANTITIES:
        if column == q.name or (q.reduce == "fraction" and column.startswith(q.name + "_")
                                and _is_number(column[len(q.name) + 1:])):
            return q
    return None


def tensorboard_tag(column: str) -> str | None:
    """The TensorBoard tag of a metrics column: ``<group>/<column>``; None for ``step`` and
    for aliases (``saturated_frac`` duplicates ``saturated_frac_<last tau>``).

    Example:
        >>> tensorboard_tag("p_target_mean"), tensorboard_tag("batch_size")
        ('saturation/p_target_mean', 'diagnostics/batch_size')
        >>> tensorboard_tag("saturated_frac"), tensorboard_tag("saturated_frac_noisy_0.99")
        (None, 'saturation/saturated_frac_noisy_0.99')
    """
    q = _declaration(column)
    if q is None:
        return None if column == "step" else f"other/{column}"
    if q.reduce == "fraction" and column == q.name:
        return None
    return f"{q.group}/{column}"


def describe(column: str) -> str:
    """The one-line description of a metrics column (``""`` for an unknown one).

    Example:
        >>> describe("saturated_frac_0.9")
        'share of the batch with clean p_y >= tau (tau = 0.9)'
    """
    q = _declaration(column)
    if q is None:
        return "the optimizer step index, from 0" if column == "step" else ""
    if q.reduce == "fraction" and column != q.name:
        return f"{q.description} (tau = {column[len(q.name) + 1:]})"
    if q.reduce == "fraction":
        return f"{q.description} (tau = the last threshold; an alias kept for the table)"
    return q.description
