"""``TensorBoardSink``: the metrics as described TensorBoard scalars, histograms and layouts.

Every metrics column is a scalar ``<group>/<column>`` (its group and its one-line description,
which TensorBoard shows on hover, come from the recorder's declarations,
:data:`satkit.hooks.quantities.QUANTITIES`): ``saturation/`` (p_y in both views, saturated
fractions, target logit), ``gradient/``, ``noise/``, ``norms/``, ``train/loss``, and
``diagnostics/`` (batch size, the non-finite flag) kept out of the main charts. Aliases
(``saturated_frac`` = ``saturated_frac_<last tau>``) are not written twice. The trainer adds
``epoch/...`` learning curves (:meth:`TensorBoardSink.write_scalars`) and ``hparams/...``
final figures (:meth:`TensorBoardSink.write_hparams`).

A custom-scalars layout (:func:`comparison_layout`) puts the clean and the training-logit view
of p_y side by side, with learning-curve, gradient, noise and norm charts; TensorBoard draws
every run of a log directory in each chart, so runs written side by side under one directory
are compared chart by chart. TensorBoard picks the runs' colours itself.

TensorBoard is imported when a sink is constructed, never when satkit is imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from satkit.hooks.quantities import describe, tensorboard_tag
from satkit.schema import EPOCH_COLUMNS, SUMMARY_FIELDS
from satkit.sinks.base import Histogram, check_utf8_path, ensure_writable_dir
from satkit.validation import check_int

__all__ = ["TensorBoardSink", "comparison_layout", "tag_for", "write_comparison_layout"]

_HISTOGRAM_TAGS = {"p_target": "saturation/p_target",
                   "p_target_noisy": "saturation/p_target_noisy", "noise": "noise/noise"}
# p_y histograms on 40 equal buckets of [0, 1]: TensorBoard's default buckets grow
# geometrically, so its last one below 1 would span 0.92-1.0 and hide saturation at 0.99.
_P_BINS = [i / 40 for i in range(41)]


def tag_for(column: str) -> str | None:
    """The TensorBoard tag of a metrics column (None for ``step`` and for aliases).

    Example:
        >>> tag_for("p_target_mean"), tag_for("grad_target_mean"), tag_for("loss")
        ('saturation/p_target_mean', 'gradient/grad_target_mean', 'train/loss')
    """
    return tensorboard_tag(column)


def _description(tag: str) -> str:
    group, _, name = tag.partition("/")
    if group == "epoch":
        return EPOCH_COLUMNS.get(name, "")
    if group == "hparams":
        return SUMMARY_FIELDS.get(name, "")
    return describe(name)


def _exact(*columns: str) -> list[str]:
    # Custom-scalars charts match tags by regular expression; anchor them to match one tag.
    tags = [tensorboard_tag(c) or c for c in columns]
    return [f"^{t}$" for t in tags]


def comparison_layout() -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout: saturation in both views side by side, learning curves,
    gradient, noise and norms.

    Each chart is a ``Multiline`` chart, which TensorBoard draws for every run of the log
    directory, so runs are overlaid chart by chart.
    """
    return {
        "saturation: clean p_y vs p_y under the training logits": {
            "p_y median, q10, q90: clean": [
                "Multiline", _exact("p_target_median", "p_target_q10", "p_target_q90")],
            "p_y median, q10, q90: training logits (what the loss saw)": [
                "Multiline", _exact("p_target_noisy_median", "p_target_noisy_q10",
                                    "p_target_noisy_q90")],
            "saturated fraction p_y >= tau, clean": [
                "Multiline", ["^saturation/saturated_frac_[0-9]"]],
            "saturated fraction p_y >= tau, training logits": [
                "Multiline", ["^saturation/saturated_frac_noisy_[0-9]"]],
            "mean p_y, clean and training logits": [
                "Multiline", _exact("p_target_mean", "p_target_noisy_mean")],
            "target logit and margin (clean)": [
                "Multiline", _exact("logit_target_mean", "logit_margin_mean")],
        },
        "learning curves": {
            "test and train error (%)": ["Multiline", ["^epoch/test_error$",
                                                       "^epoch/train_error$"]],
            "test and train loss": ["Multiline", ["^epoch/test_loss$", "^epoch/train_loss$"]],
            "training loss per step": ["Multiline", _exact("loss")],
            "learning rate": ["Multiline", ["^epoch/lr$"]],
        },
        "gradient": {
            "|dL/df_y| (target-logit gradient)": ["Multiline", _exact("grad_target_mean")],
            "gradient norms": ["Multiline", _exact(
                "grad_logits_norm_mean", "grad_features_norm_mean", "grad_weight_norm")],
        },
        "noise": {
            "noise on the target logit (mean, max)": [
                "Multiline", _exact("noise_mean", "noise_max")],
        },
        "norms": {
            "||X||, ||W_y||": ["Multiline", _exact("feature_norm_mean",
                                                   "weight_norm_target_mean")],
            "cos theta_y": ["Multiline", _exact("cos_target_mean")],
        },
    }


class _SynchronousEvents:
    """Stands in for TensorBoard's ``_AsyncWriter``: each event is written at once, on the
    caller's thread, and an error (a full or read-only disk) is raised to the caller there.

    TensorBoard's own writer thread would die with the error, print its traceback from the
    thread, raise the same error at every later call and drop what ``close`` could not write
    without a word. The sink needs no thread of its own: the recorder already writes it from
    its writer thread (:mod:`satkit.hooks.writer`), which hands errors to the training thread.
    """

    def __init__(self, record_writer: Any) -> None:
        self._records = record_writer
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._closed:
            raise OSError("the TensorBoard event file is closed")
        self._records.write(data)

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._records.flush()
            finally:
                self._records.close()


def _writer(log_dir: str | os.PathLike) -> Any:
    """A ``SummaryWriter`` over ``log_dir`` whose events are written synchronously
    (:class:`_SynchronousEvents`)."""
    from torch.utils.tensorboard import SummaryWriter  # lazy: TensorBoard is heavy

    check_utf8_path(log_dir, "log_dir")
    path = ensure_writable_dir(log_dir, "TensorBoardSink")
    writer = SummaryWriter(log_dir=str(path))
    events = writer._get_file_writer().event_writer
    queued = getattr(events, "_async_writer", None)
    if hasattr(queued, "_worker") and hasattr(queued, "_writer"):  # TensorBoard's layout
        queued._worker.stop()  # after the file's first event; the record writer stays open
        events._async_writer = _SynchronousEvents(queued._writer)
    return writer


def write_comparison_layout(log_dir: str | os.PathLike,
                            run_names: Sequence[str] | None = None) -> None:
    """Write the custom-scalars layout for a directory whose subdirectories are runs.

    TensorBoard merges the layouts of all runs (charts with the same definition once), so this
    is only needed when the runs were written without one (``layout=False``) or by other tools.

    Args:
        log_dir: the comparison directory (``tensorboard --logdir log_dir``).
        run_names: if given, the runs expected under ``log_dir``; a missing one raises.

    Raises:
        FileNotFoundError: a run in ``run_names`` has no directory under ``log_dir``.
    """
    missing = [r for r in run_names or () if not (Path(log_dir) / r).is_dir()]
    if missing:
        raise FileNotFoundError(f"runs {missing} not found under {log_dir}")
    writer = _writer(log_dir)
    try:
        writer.add_custom_scalars(comparison_layout())
    finally:
        writer.close()


class TensorBoardSink:
    """Write rows as TensorBoard scalars (and histograms, hparams) to event files in ``log_dir``.

    Args:
        log_dir: the run's directory; event files are written directly in it.
        histogram_every: write only the histograms of steps that are multiples of this
            (None: every histogram the recorder passes; it samples every
            ``histogram_every`` steps itself).
        layout: write the custom-scalars layout (:func:`comparison_layout`) into the run.

    Raises:
        ValueError: ``log_dir`` is not UTF-8 text (TensorBoard cannot write there).
        OSError: ``log_dir`` cannot be created or written; later, from a write (a full or
            read-only disk), raised to the caller of that write.

    Example:
        >>> import tempfile
        >>> sink = TensorBoardSink(tempfile.mkdtemp())
        >>> sink.write([{"step": 0, "p_target_mean": 0.5}])
        >>> sink.close()
    """

    def __init__(self, log_dir: str | os.PathLike, *, histogram_every: int | None = None,
                 layout: bool = True) -> None:
        check_int("histogram_every", histogram_every, minimum=1, optional=True)
        self.log_dir = Path(log_dir)
        self.histogram_every = histogram_every
        self._writer = _writer(self.log_dir)
        self._described: set[str] = set()
        self._closed = False
        if layout:
            self._writer.add_custom_scalars(comparison_layout())

    def _scalars(self, values: list[tuple[str, float]], step: int) -> None:
        """One event holding the scalars ``(tag, value)`` of ``step`` (one event per step,
        not per scalar: a fraction of the writing cost); the first value of each tag carries
        its description (hover text)."""
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

        entries = []
        for tag, value in values:
            entry = Summary.Value(tag=tag, simple_value=value)
            if tag not in self._described:
                self._described.add(tag)
                entry.metadata.CopyFrom(SummaryMetadata(
                    display_name=tag, summary_description=_description(tag),
                    plugin_data=SummaryMetadata.PluginData(plugin_name="scalars")))
            entries.append(entry)
        if entries:
            self._writer._get_file_writer().add_summary(Summary(value=entries), step)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Log each row's columns as scalars at its ``step`` (NaN values are skipped)."""
        for row in rows:
            values = []
            for column, value in row.items():
                tag = tag_for(column)
                if tag is None or value is None:
                    continue
                value = float(value)
                if not math.isnan(value):
                    values.append((tag, value))
            self._scalars(values, int(row["step"]))
        self._writer.flush()

    def write_histograms(self, histograms: list[Histogram]) -> None:
        """Log the per-sample distributions (``saturation/p_target``,
        ``saturation/p_target_noisy`` on 40 equal buckets of [0, 1]; ``noise/noise``)."""
        import numpy as np

        for h in histograms:
            if self.histogram_every is not None and h.step % self.histogram_every:
                continue
            if len(h.values):
                tag = _HISTOGRAM_TAGS.get(h.name, f"other/{h.name}")
                bins = np.asarray(_P_BINS) if h.name.startswith("p_target") else "tensorflow"
                self._writer.add_histogram(tag, h.values, h.step, bins=bins)
        self._writer.flush()

    def write_scalars(self, step: int, values: Mapping[str, float], *, group: str) -> None:
        """Log ``values`` as scalars ``<group>/<name>`` at ``step`` (NaN and None skipped).

        For figures that are not recorder rows, e.g. the per-epoch learning curves
        (``group="epoch"``: ``epoch/train_loss``, ``epoch/test_error``, ...) on the step axis.
        """
        self._scalars([(f"{group}/{name}", float(value)) for name, value in values.items()
                       if value is not None and not math.isnan(float(value))], int(step))
        self._writer.flush()

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], *,
                      step: int = 0) -> None:
        """Log the run's hyperparameters with its final metrics (TensorBoard's HPARAMS tab).

        Written into this run's directory (unlike ``SummaryWriter.add_hparams``, which makes a
        new sub-run), so the hparams row links to the run's scalars.

        Args:
            hparams: name -> value; bool, int, float and str are kept as they are (booleans
                stay booleans), anything else (None, tuples, ...) is logged as its ``str``.
            metrics: tag -> final value, e.g. ``{"hparams/test_error": 0.07}``; None and NaN
                values are left out (TensorBoard shows an empty cell).
            step: the step the metric scalars are logged at (the run's last step, so they sit
                at the end of the run's step axis).
        """
        from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {k: v if isinstance(v, (bool, int, float, str)) else str(v)
                 for k, v in hparams.items()}
        values = {k: float(v) for k, v in metrics.items()
                  if v is not None and not math.isnan(float(v))}
        experiment, start, end = hparams_summary(clean, values)
        # torch's helper has no metric descriptions, and stores booleans as numbers (it tests
        # int before bool): set both right in the plugin data.
        booleans = {k for k, v in clean.items() if isinstance(v, bool)}
        meta = experiment.value[0].metadata.plugin_data
        data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
        for info in data.experiment.metric_infos:
            info.display_name = info.name.tag.rpartition("/")[2]
            info.description = _description(info.name.tag)
        for info in data.experiment.hparam_infos:
            if info.name in booleans:
                info.type = api_pb2.DATA_TYPE_BOOL
        meta.content = data.SerializeToString()
        meta = start.value[0].metadata.plugin_data
        data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
        for name in booleans:
            data.session_start_info.hparams[name].bool_value = clean[name]
        meta.content = data.SerializeToString()
        file_writer = self._writer._get_file_writer()
        for summary in (experiment, start, end):
            file_writer.add_summary(summary)
        self._scalars(list(values.items()), int(step))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        if not self._closed:
            self._writer.close()
            self._closed = True

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.log_dir)!r})"
