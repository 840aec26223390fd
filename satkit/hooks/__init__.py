"""Training hooks: the saturation recorder (per step and per sample, no host sync per step).

``options`` states what a recorder records (:class:`RecorderOptions`), ``quantities`` declares
what is measured (one declaration per metrics column), ``stats`` holds the maths (pure
functions), ``capture`` the PyTorch hook plumbing, ``buffer`` the device storage, ``samples``
the per-sample record, ``distributed`` the reduction across ranks, ``fanout`` and ``writer``
the way rows reach the sinks, and ``recorder`` ties them together.
"""

from satkit.hooks.options import RecorderOptions
from satkit.hooks.recorder import SaturationRecorder

__all__ = ["RecorderOptions", "SaturationRecorder"]
