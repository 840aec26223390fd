"""Training hooks: the saturation recorder (per step and per sample, no host sync per step).

What is measured is declared in :mod:`satkit.columns` (one declaration per metrics column);
``options`` states what a recorder records (:class:`RecorderOptions`), ``stats`` holds the
maths (pure functions), ``capture`` the PyTorch hook plumbing, ``reduce`` the one way from
captured forwards to packed per-position vectors, ``buffer`` the device storage, ``samples``
the per-sample record, ``distributed`` the reduction across ranks, ``fanout`` and ``writer``
the way rows reach the sinks, and ``recorder`` ties them together.

``RecorderOptions`` needs no torch (a config can state it anywhere); ``SaturationRecorder`` is
loaded on first use.
"""

from typing import TYPE_CHECKING, Any

from satkit.hooks.options import RecorderOptions

if TYPE_CHECKING:
    from satkit.hooks.recorder import SaturationRecorder

__all__ = ["RecorderOptions", "SaturationRecorder"]


def __getattr__(name: str) -> Any:
    if name == "SaturationRecorder":
        from satkit.hooks.recorder import SaturationRecorder

        return SaturationRecorder
    raise AttributeError(f"module 'satkit.hooks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
