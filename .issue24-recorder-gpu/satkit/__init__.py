"""satkit: measure softmax saturation and postpone it with Noisy Softmax (CVPR 2017).

``import satkit`` only defines names: no backend flags, no downloads, no TensorBoard import.
The training entry points (``train``, ``compare``, ``TrainConfig``, ``Trainer``) are loaded on
first use, so importing satkit does not import pandas or the data and training stack.
"""

from typing import TYPE_CHECKING, Any

from satkit._version import __version__
from satkit.functional import noisy_logits, target_probability
from satkit.heads import NoisySoftmax

if TYPE_CHECKING:
    from satkit.training import TrainConfig, Trainer, compare, train

__all__ = ["NoisySoftmax", "TrainConfig", "Trainer", "__version__", "compare", "noisy_logits",
           "target_probability", "train"]

_LAZY = {"train": "satkit.training", "compare": "satkit.training",
         "TrainConfig": "satkit.training", "Trainer": "satkit.training"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'satkit' has no attribute {name!r}")
