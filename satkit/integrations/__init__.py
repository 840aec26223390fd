"""Record softmax saturation inside training frameworks, as callbacks.

* :mod:`satkit.integrations.lightning`: ``SaturationCallback`` for a PyTorch Lightning
  ``Trainer`` (``pip install 'satkit[lightning]'``);
* :mod:`satkit.integrations.transformers`: ``SaturationCallback`` for a Hugging Face
  ``Trainer`` (``pip install 'satkit[transformers]'``): sequence classification (N, C),
  causal language models and token classification (N, T, V).

Both take ``SaturationCallback(head, out, ...)``: the head module or its dotted path on the
model, and the run directory to create, in the format ``satkit train`` writes (config.json,
metrics.parquet, samples.parquet, summary.json, TensorBoard event files), so ``satkit report``,
``satkit plot``, ``satkit tensorboard`` and :func:`satkit.analysis.load_run` work on it.

Importing this package imports neither framework; each submodule imports its own, and its
callback raises an ``ImportError`` naming the extra to install when the framework is missing.
"""

from satkit.integrations.common import RecorderOptions, find_head

__all__ = ["RecorderOptions", "find_head"]
