"""What a finished run measures once, at its end: its test predictions, the calibration of the
samples it trained on, and post-hoc temperature scaling as the baseline a method must beat.

:func:`final_calibration` runs after the last epoch, on the main process only and with the
model unwrapped from DDP (no collective), over the whole test set, the samples trained on and
the validation split:

* ``test_predictions.parquet``: per test sample its label, predicted class, top-1 confidence and
  probability of its label (what a reliability diagram of the run draws; the float32 softmax
  of the same logits as the last evaluation, so its ECE is the last ``test_ece``);
* the calibration of the samples trained on, clean (eval-mode logits of the final model) and
  under the training logits (as the last epoch trained on them, :attr:`Trainer.train_calibration`);
* with a validation split (``val_fraction``): one temperature fitted on the validation logits
  by NLL (:func:`satkit.analysis.calibration.fit_temperature`) and the test ECE and NLL of the
  logits divided by it.

The logits are read to the host once per set; this is the end of the run, not its hot path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from satkit import schema
from satkit.run_dir import atomic_write_bytes

__all__ = ["FINAL_FIELDS", "final_calibration", "predictions_table"]

#: The summary fields :func:`final_calibration` fills (None where it cannot).
FINAL_FIELDS = ("temperature", "test_ece_ts", "test_nll_ts",
                *(f"train_{m}{v}" for v in ("", "_noisy")
                  for m in ("ece", "ece_adaptive", "brier", "confidence", "overconfidence")))


def predictions_table(logits: torch.Tensor, labels: torch.Tensor,
                     index: torch.Tensor | None = None) -> Any:
    """The rows of ``test_predictions.parquet`` (:data:`satkit.schema.TEST_PREDICTION_COLUMNS`)
    from clean logits: one ``DataFrame``, sorted by ``index`` (duplicates dropped)."""
    import pandas as pd

    probs = torch.softmax(logits.float(), dim=1)
    predicted = logits.argmax(dim=1)
    if index is None:
        index = torch.arange(len(labels), device=labels.device)
    columns = torch.stack([index.double(), labels.double(), predicted.double(),
                           probs.amax(dim=1).double(),
                           probs.gather(1, labels[:, None]).squeeze(1).double()]).cpu().numpy()
    frame = pd.DataFrame({"index": columns[0].astype("int64"), "label": columns[1].astype("int64"),
                          "predicted": columns[2].astype("int64"), "confidence": columns[3],
                          "p_label": columns[4]})
    frame = frame.drop_duplicates("index").sort_values("index", ignore_index=True)
    return frame.astype({c: dtype for c, (dtype, _) in schema.TEST_PREDICTION_COLUMNS.items()})


def final_calibration(trainer: Any, parts: Any, run_dir: Path, *,
                      batch_size: int = 512) -> dict[str, float | None]:
    """Write ``test_predictions.parquet`` and return the end-of-run calibration figures.

    Args:
        trainer: the :class:`~satkit.training.Trainer` that finished training.
        parts: the run's :class:`~satkit.training.compose.RunParts` (its data set and
            validation split).
        run_dir: where to write the predictions.
        batch_size: evaluation batch size.

    Returns:
        ``{field: value}`` for :data:`FINAL_FIELDS`: ``temperature``, ``test_ece_ts``,
        ``test_nll_ts`` (None without a validation split) and the five calibration figures of
        the samples trained on, clean (``train_ece``, ...) and under the training logits
        (``train_ece_noisy``, ...; None when the last epoch's were not kept).

    Raises:
        OSError: the predictions could not be written.
    """
    from satkit.analysis.calibration import calibration, fit_temperature, nll, softmax
    from satkit.data import DeviceLoader

    def loader(x: torch.Tensor, y: torch.Tensor) -> DeviceLoader:
        return DeviceLoader(x, y, batch_size=batch_size, shuffle=False)

    data = parts.data
    logits, labels, index = trainer.predict(loader(data.test_x, data.test_y))
    buffer = io.BytesIO()
    predictions_table(logits, labels, index).to_parquet(buffer, index=False)
    atomic_write_bytes(run_dir / schema.TEST_PREDICTIONS, buffer.getvalue())

    out: dict[str, float | None] = dict.fromkeys(FINAL_FIELDS)
    out.update(trainer.evaluate(loader(data.train_x, data.train_y),
                                reduce=False).calibration("train_"))
    if trainer.train_calibration is not None:
        out.update({f"train_{k}_noisy": v for k, v in trainer.train_calibration.items()})
    if parts.validation is not None:
        val_logits, val_labels, _ = trainer.predict(loader(*parts.validation))
        temperature = fit_temperature(val_logits.double().cpu().numpy(),
                                      val_labels.cpu().numpy())
        z, y = logits.double().cpu().numpy(), labels.cpu().numpy()
        out.update(temperature=temperature,
                   test_ece_ts=calibration(softmax(z, temperature), y)["ece"],
                   test_nll_ts=nll(z, y, temperature))
    return out
