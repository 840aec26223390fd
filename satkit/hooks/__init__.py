"""Training hooks: the saturation recorder (per step and per sample, no host sync per step).

``stats`` holds the maths (pure functions), ``samples`` the per-sample record, ``distributed``
the reduction across ranks, ``recorder`` the PyTorch hook plumbing that ties them together.
"""

from satkit.hooks.recorder import SaturationRecorder

__all__ = ["SaturationRecorder"]
