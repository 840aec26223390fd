"""Teaching saturation without training: one toy sample whose geometry is set by hand.

:mod:`satkit.teaching.toy` computes (pure functions returning pandas frames, through the same
:mod:`satkit.functional` code the ``NoisySoftmax`` head runs); :mod:`satkit.teaching.figures`
draws them (axes-level, matplotlib imported on use). Notebook 01 is built on these.
"""

from satkit.teaching.toy import (
    MEAN_ABS_XI,
    fitting_path,
    noise_by_angle,
    noisy_response,
    saturation_by_margin,
    sigmoid_saturation,
    toy_layer,
)

__all__ = ["MEAN_ABS_XI", "fitting_path", "noise_by_angle", "noisy_response",
           "saturation_by_margin", "sigmoid_saturation", "toy_layer"]
