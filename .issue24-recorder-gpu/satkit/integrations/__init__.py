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
Its samples table holds every sample's training dynamics (Data Maps confidence and
variability, correctness, forgetting events, AUM; ``docs/glossary.md``, "Samples columns"),
so ``satkit label-issues RUN`` ranks your own training samples by how likely they are
mislabeled. The label columns (``label``, ``true_label``, ``label_corrupted``) come only from
``satkit train`` and its ``--label-noise``, which knows which labels it corrupted: with a
known answer of your own, add a ``label_corrupted`` column (one bool per dataset index) to
``load_run(out).samples`` and :func:`satkit.analysis.detection_quality` measures the scores.

Importing this package imports neither framework; each submodule imports its own, and its
callback raises an ``ImportError`` naming the extra to install when the framework is missing.
"""

from satkit.integrations.common import RecorderOptions, find_head

__all__ = ["RecorderOptions", "find_head"]
