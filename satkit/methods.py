"""The method catalogue: every training method satkit knows, stated once.

A *method* is what a run trains with: plain softmax, Noisy Softmax (Chen, Deng, Du, CVPR 2017,
arXiv 1708.03769), or one of the softmax regularisers it is compared with. Each entry says
its name (the CLI's ``--loss``), its display label, which head and which loss build it, its
settings (with their defaults, valid ranges and the symbol tables use), and what it does to
the *training logits* -- the logits the loss is computed on, whose softmax is the "noisy"
view of saturation:

* ``"none"``: the training logits are the clean ones (softmax and the loss/label regularisers);
* ``"noise"``: Eq. 5's annealed noise lowers the target logit (Noisy Softmax);
* ``"margin"``: a fixed margin lowers the target logit (CosFace, ArcFace);
* ``"temperature"``: every logit is divided by T.

Everything that needs the list of methods reads it from here: the trainer's config and CLI,
the head registry (:func:`satkit.heads.make_head_and_loss`), the analysis' labels and the
plots' colours. This module imports nothing heavy (no torch), so the analysis can use it.

Example:
    >>> METHODS["label-smoothing"].label, METHODS["label-smoothing"].settings[0].default
    ('label smoothing', 0.1)
    >>> resolve_method("noisy", 0.0), resolve_method("cosface", 0.1)
    ('softmax', 'cosface')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

from satkit.validation import check_real

__all__ = [
    "ARCFACE_MARGIN",
    "BETA",
    "COSFACE_MARGIN",
    "DEFAULT_ALPHA2",
    "DISTURB_ALPHA",
    "DISTURB_LABEL",
    "EPSILON",
    "GAMMA",
    "METHODS",
    "METHOD_NAMES",
    "NOISE_FAMILIES",
    "NOISY",
    "Method",
    "NoiseFamily",
    "SCALE",
    "SOFTMAX",
    "Setting",
    "TEMPERATURE",
    "effective_alpha2",
    "effective_noise",
    "field_doc",
    "method_order",
    "resolve_method",
    "setting_values",
]

#: Noisy Softmax's alpha^2 when none is given: the paper's best (Table 2-4).
DEFAULT_ALPHA2 = 0.1
#: Noise families of the paper's ablation; "annealed" is the method (Eq. 5).
NoiseFamily = Literal["annealed", "amplitude", "free", "negative"]
NOISE_FAMILIES: tuple[str, ...] = get_args(NoiseFamily)


@dataclass(frozen=True)
class Setting:
    """One numeric setting of a method.

    Attributes:
        field: its name in :class:`satkit.training.TrainConfig` and in a run's ``config.json``.
        kwarg: the keyword of the head or loss constructor that takes it.
        symbol: how tables and legends write it (``"ε"``).
        default: its default value.
        lo, hi, lo_open, hi_open: the valid interval (None: unbounded).
        doc: one line for ``--help`` (:func:`field_doc`) and the config's documentation.

    The heads and losses check their arguments with :meth:`check`, and the config its fields:
    a setting's range is stated here only.
    """

    field: str
    kwarg: str
    symbol: str
    default: float
    lo: float | None = 0.0
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    doc: str = ""

    def check(self, value: object, name: str | None = None, **error: Any) -> float:
        """``value`` as a float, or an error naming ``name`` (default: :attr:`field`) and the
        valid interval; ``error=`` picks the exception class (default ValueError).

        Example:
            >>> EPSILON.check(0.2)
            0.2
            >>> EPSILON.check(1, "smoothing")
            Traceback (most recent call last):
            ...
            ValueError: smoothing must be a finite number in [0, 1), got 1
        """
        return check_real(name or self.field, value, lo=self.lo, hi=self.hi,
                          lo_open=self.lo_open, hi_open=self.hi_open, **error)


@dataclass(frozen=True)
class Method:
    """One method of the catalogue.

    Attributes:
        name: the ``--loss`` value and the ``method`` of a run's config.
        label: the display name in tables and legends.
        description: one line: what it does, with its reference.
        head: the class of the head that builds it (:mod:`satkit.heads`): ``"Linear"`` (a
            plain :class:`satkit.NoisySoftmax` with alpha2 = 0), ``"NoisySoftmax"``,
            ``"TemperatureSoftmax"``, ``"CosFace"``, ``"ArcFace"``.
        loss: the class of the training loss: ``"CrossEntropyLoss"`` (PyTorch's) or a loss
            of :mod:`satkit.losses` (``"LabelSmoothingCrossEntropy"``, ...).
        settings: the method's numeric settings (its "main parameters" in tables).
        training_logits: how the training logits differ from the clean ones: ``"none"``,
            ``"noise"``, ``"margin"`` or ``"temperature"`` (see the module docstring).
        color: its fixed colour in figures; None: coloured by alpha2
            (:func:`satkit.plots.palette.method_color`).
    """

    name: str
    label: str
    description: str
    head: str
    loss: str
    settings: tuple[Setting, ...] = ()
    training_logits: str = "none"
    color: str | None = None

    def setting(self, field: str) -> Setting:
        """The setting called ``field`` (KeyError if the method has none)."""
        for s in self.settings:
            if s.field == field:
                return s
        raise KeyError(f"{self.name} has no setting {field!r}")


#: The settings of the catalogue's methods (each stated once; a head or loss checks its
#: argument with :meth:`Setting.check` and takes its default from here).
EPSILON = Setting("epsilon", "epsilon", "ε", 0.1, hi=1.0, hi_open=True,
                  doc="label smoothing: the smoothing epsilon, in [0, 1)")
BETA = Setting("beta", "beta", "β", 0.1,
               doc="confidence penalty: weight of the entropy bonus, >= 0")
DISTURB_ALPHA = Setting("disturb_alpha", "disturb_alpha", "α", 0.1, hi=1.0,
                        doc="DisturbLabel: probability of redrawing a label, in [0, 1]")
GAMMA = Setting("gamma", "gamma", "γ", 2.0, doc="focal loss: the focusing exponent, >= 0")
TEMPERATURE = Setting("temperature", "temperature", "T", 2.0, lo=0.0, lo_open=True,
                      doc="temperature: the training logits are divided by it, > 0")
SCALE = Setting("scale", "s", "s", 30.0, lo=0.0, lo_open=True,
                doc="CosFace/ArcFace: the logit scale s, > 0")
#: An additive cosine margin above 1 and an angular margin above a right angle cannot be met
#: by well-separated classes (cosines lie in [-1, 1]).
COSFACE_MARGIN = Setting("margin", "m", "m", 0.35, hi=1.0,
                         doc="CosFace: the cosine margin m, in [0, 1]")
ARCFACE_MARGIN = Setting("margin", "m", "m", 0.5, hi=math.pi / 2,
                         doc="ArcFace: the angular margin m in radians, in [0, pi/2]")

#: The names other modules must single out: the plain-softmax baseline, the paper's method
#: (the ``--loss`` default; at alpha2 = 0 it is the baseline) and DisturbLabel (a row of the
#: paper's tables).
SOFTMAX = "softmax"
NOISY = "noisy"
DISTURB_LABEL = "disturb-label"

_CATALOGUE = (
    Method(SOFTMAX, "softmax", "plain softmax cross-entropy (NoisySoftmax with alpha2=0)",
           head="Linear", loss="CrossEntropyLoss"),
    Method(NOISY, "Noisy Softmax",
           "Noisy Softmax: annealed noise on the target logit (Chen et al., CVPR 2017)",
           head="NoisySoftmax", loss="CrossEntropyLoss", training_logits="noise"),
    Method("label-smoothing", "label smoothing",
           "cross-entropy to (1-epsilon) onehot + epsilon/C (Szegedy et al., 2016)",
           head="Linear", loss="LabelSmoothingCrossEntropy", settings=(EPSILON,),
           color="#009E73"),  # Okabe-Ito bluish green
    Method("confidence-penalty", "confidence penalty",
           "cross-entropy minus beta * entropy (Pereyra et al., 2017)",
           head="Linear", loss="ConfidencePenaltyLoss", settings=(BETA,),
           color="#CC79A7"),  # Okabe-Ito reddish purple
    Method(DISTURB_LABEL, "DisturbLabel",
           "labels redrawn uniformly with probability alpha (Xie et al., 2016)",
           head="Linear", loss="DisturbLabelLoss", settings=(DISTURB_ALPHA,),
           color="#882255"),  # Tol wine
    Method("focal", "focal loss", "-(1 - p_y)^gamma log p_y (Lin et al., 2017)",
           head="Linear", loss="FocalLoss", settings=(GAMMA,), color="#999933"),  # Tol olive
    Method("temperature", "temperature", "training logits divided by a temperature T",
           head="TemperatureSoftmax", loss="CrossEntropyLoss", training_logits="temperature",
           settings=(TEMPERATURE,), color="#332288"),  # Tol indigo
    Method("cosface", "CosFace",
           "normalised logits s cos theta, target s (cos theta_y - m) (Wang et al., 2018)",
           head="CosFace", loss="CrossEntropyLoss", training_logits="margin",
           settings=(SCALE, COSFACE_MARGIN), color="#44AA99"),  # Tol teal (dashed)
    Method("arcface", "ArcFace",
           "normalised logits s cos theta, target s cos(theta_y + m) (Deng et al., 2019)",
           head="ArcFace", loss="CrossEntropyLoss", training_logits="margin",
           settings=(SCALE, ARCFACE_MARGIN), color="#CC6677"),  # Tol rose (dashed)
)

#: The methods by name, in the order tables and legends list them (softmax first).
METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in _CATALOGUE})
#: Their names: the CLI's ``--loss`` choices.
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def resolve_method(loss: str | None, alpha2: float | None) -> str:
    """The method a run actually trained with.

    ``loss="noisy"`` with ``alpha2 == 0`` is plain softmax (the same head with the noise off);
    ``loss=None`` (runs written before other methods existed) means softmax or Noisy Softmax,
    decided by alpha2.
    """
    if loss is None or loss == NOISY:
        return SOFTMAX if alpha2 is not None and alpha2 == 0 else NOISY
    return loss


def effective_alpha2(loss: str | None, alpha2: float | None) -> float:
    """alpha^2 as applied: the run's alpha2 for Noisy Softmax, 0 for every other method
    (NaN when the method is Noisy Softmax and alpha2 is unknown)."""
    if resolve_method(loss, alpha2) != NOISY:
        return 0.0
    return math.nan if alpha2 is None else float(alpha2)


def effective_noise(loss: str | None, alpha2: float | None, noise: str | None) -> str:
    """The noise family as applied: ``"none"`` unless the method is Noisy Softmax."""
    if resolve_method(loss, alpha2) != NOISY:
        return "none"
    return noise or "annealed"


def setting_values(method: str, config: Mapping[str, Any]) -> dict[str, float]:
    """The method's settings as a run used them, for the settings ``config`` records; a None
    value takes the method's default (``margin=None`` means the method's own margin). A
    setting the config does not record is left out: it is unknown, not the default.

    Example:
        >>> setting_values("cosface", {"scale": 30.0, "margin": None})
        {'scale': 30.0, 'margin': 0.35}
        >>> setting_values("focal", {})
        {}
    """
    entry = METHODS.get(method)
    if entry is None:
        return {}
    return {s.field: s.default if config[s.field] is None else config[s.field]
            for s in entry.settings if s.field in config}


def method_order(method: str) -> int:
    """Position of a method in tables and legends (softmax first; unknown names last)."""
    return METHOD_NAMES.index(method) if method in METHODS else len(METHOD_NAMES)


def field_doc(field: str) -> str:
    """The ``--help`` line of a config field that is a method setting: its
    :attr:`Setting.doc` (and default), once per method that has it; "" for other fields.

    Example:
        >>> field_doc("gamma")
        'focal loss: the focusing exponent, >= 0 (default 2)'
        >>> field_doc("margin").split("; ")[1]
        'ArcFace: the angular margin m in radians, in [0, pi/2] (default 0.5)'
    """
    docs = dict.fromkeys(f"{s.doc} (default {s.default:g})" for m in _CATALOGUE
                         for s in m.settings if s.field == field)
    return "; ".join(docs)
