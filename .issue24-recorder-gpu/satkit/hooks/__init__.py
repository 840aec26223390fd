"""Training hooks: the saturation recorder (per step and per sample, no host sync per step).

What is measured is declared in :mod:`satkit.columns` (one declaration per metrics column);
``stats`` holds the maths (pure functions), ``capture`` the PyTorch hook plumbing, ``reduce``
the one way from captured forwards to packed per-position vectors, ``buffer`` the device
storage, ``samples`` the per-sample record, ``distributed`` the reduction across ranks,
``fanout`` and ``writer`` the way rows reach the sinks, and ``recorder`` ties them together.
"""

from satkit.hooks.recorder import SaturationRecorder

__all__ = ["SaturationRecorder"]
