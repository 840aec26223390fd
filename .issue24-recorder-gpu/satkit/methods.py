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

__all__ = [
    "DEFAULT_ALPHA2",
    "METHODS",
    "METHOD_NAMES",
    "NOISE_FAMILIES",
    "Method",
    "NoiseFamily",
    "Setting",
    "effective_alpha2",
    "effective_noise",
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
        doc: one line for ``--help``.
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


@dataclass(frozen=True)
class Method:
    """One method of the catalogue.

    Attributes:
        name: the ``--loss`` value and the ``method`` of a run's config.
        label: the display name in tables and legends.
        description: one line: what it does, with its reference.
        head: the head that builds it: ``"linear"`` (a plain :class:`satkit.NoisySoftmax`
            with alpha2 = 0), ``"noisy"``, ``"temperature"``, ``"cosface"``, ``"arcface"``.
        loss: the training loss: ``"cross-entropy"`` or a loss of :mod:`satkit.losses`
            (``"label-smoothing"``, ``"confidence-penalty"``, ``"disturb-label"``, ``"focal"``).
        settings: the method's numeric settings (its "main parameters" in tables).
        training_logits: how the training logits differ from the clean ones: ``"none"``,
            ``"noise"``, ``"margin"`` or ``"temperature"`` (see the module docstring).
    """

    name: str
    label: str
    description: str
    head: str
    loss: str
    settings: tuple[Setting, ...] = ()
    training_logits: str = "none"

    def setting(self, field: str) -> Setting:
        """The setting called ``field`` (KeyError if the method has none)."""
        for s in self.settings:
            if s.field == field:
                return s
        raise KeyError(f"{self.name} has no setting {field!r}")


_SCALE = Setting("scale", "s", "s", 30.0, lo=0.0, lo_open=True,
                 doc="cosface/arcface: the logit scale s")

_CATALOGUE = (
    Method("softmax", "softmax", "plain softmax cross-entropy (NoisySoftmax with alpha2=0)",
           head="linear", loss="cross-entropy"),
    Method("noisy", "Noisy Softmax",
           "Noisy Softmax: annealed noise on the target logit (Chen et al., CVPR 2017)",
           head="noisy", loss="cross-entropy", training_logits="noise"),
    Method("label-smoothing", "label smoothing",
           "cross-entropy to (1-epsilon) onehot + epsilon/C (Szegedy et al., 2016)",
           head="linear", loss="label-smoothing",
           settings=(Setting("epsilon", "epsilon", "ε", 0.1, hi=1.0, hi_open=True,
                             doc="label-smoothing: the smoothing epsilon"),)),
    Method("confidence-penalty", "confidence penalty",
           "cross-entropy minus beta * entropy (Pereyra et al., 2017)",
           head="linear", loss="confidence-penalty",
           settings=(Setting("beta", "beta", "β", 0.1,
                             doc="confidence-penalty: weight of the entropy bonus"),)),
    Method("disturb-label", "DisturbLabel",
           "labels redrawn uniformly with probability alpha (Xie et al., 2016)",
           head="linear", loss="disturb-label",
           settings=(Setting("disturb_alpha", "disturb_alpha", "α", 0.1, hi=1.0,
                             doc="disturb-label: probability of redrawing a label"),)),
    Method("focal", "focal loss", "-(1 - p_y)^gamma log p_y (Lin et al., 2017)",
           head="linear", loss="focal",
           settings=(Setting("gamma", "gamma", "γ", 2.0, doc="focal: the focusing exponent"),)),
    Method("temperature", "temperature", "training logits divided by a temperature T",
           head="temperature", loss="cross-entropy", training_logits="temperature",
           settings=(Setting("temperature", "temperature", "T", 2.0, lo=0.0, lo_open=True,
                             doc="temperature: training logits are divided by it"),)),
    Method("cosface", "CosFace",
           "normalised logits s cos theta, target s (cos theta_y - m) (Wang et al., 2018)",
           head="cosface", loss="cross-entropy", training_logits="margin",
           settings=(_SCALE, Setting("margin", "m", "m", 0.35, hi=1.0,
                                     doc="cosface: the cosine margin m"))),
    Method("arcface", "ArcFace",
           "normalised logits s cos theta, target s cos(theta_y + m) (Deng et al., 2019)",
           head="arcface", loss="cross-entropy", training_logits="margin",
           settings=(_SCALE, Setting("margin", "m", "m", 0.5, hi=math.pi / 2,
                                     doc="arcface: the angular margin m in radians"))),
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
    if loss is None or loss == "noisy":
        return "softmax" if alpha2 is not None and alpha2 == 0 else "noisy"
    return loss


def effective_alpha2(loss: str | None, alpha2: float | None) -> float:
    """alpha^2 as applied: the run's alpha2 for Noisy Softmax, 0 for every other method
    (NaN when the method is Noisy Softmax and alpha2 is unknown)."""
    if resolve_method(loss, alpha2) != "noisy":
        return 0.0
    return math.nan if alpha2 is None else float(alpha2)


def effective_noise(loss: str | None, alpha2: float | None, noise: str | None) -> str:
    """The noise family as applied: ``"none"`` unless the method is Noisy Softmax."""
    if resolve_method(loss, alpha2) != "noisy":
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
