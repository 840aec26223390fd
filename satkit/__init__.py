"""satkit: measure softmax saturation and postpone it with Noisy Softmax (CVPR 2017).

``import satkit`` only defines names: no backend flags, no downloads, no TensorBoard import,
and no torch import. Every top-level name is loaded on first use (PEP 562), so ``import
satkit.analysis`` or ``satkit.sinks.table`` works where torch is not installed.
"""

from typing import TYPE_CHECKING, Any

from satkit._version import __version__

if TYPE_CHECKING:
    from satkit.functional import noisy_logits, target_probability
    from satkit.heads import NoisySoftmax
    from satkit.training import TrainConfig, Trainer, compare, train

__all__ = ["NoisySoftmax", "TrainConfig", "Trainer", "__version__", "compare", "noisy_logits",
           "target_probability", "train"]

_LAZY = {"train": "satkit.training", "compare": "satkit.training",
         "TrainConfig": "satkit.training", "Trainer": "satkit.training",
         "NoisySoftmax": "satkit.heads", "noisy_logits": "satkit.functional",
         "target_probability": "satkit.functional"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'satkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
