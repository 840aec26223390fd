"""satkit: measure softmax saturation and postpone it with Noisy Softmax (CVPR 2017).

``import satkit`` only defines names: no backend flags, no downloads, no TensorBoard import.
"""

from satkit._version import __version__
from satkit.functional import noisy_logits, target_probability
from satkit.heads import NoisySoftmax

__all__ = ["NoisySoftmax", "__version__", "noisy_logits", "target_probability"]
