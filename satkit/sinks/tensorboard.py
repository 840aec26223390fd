"""``TensorBoardSink``: the metrics as described TensorBoard scalars, histograms and layouts.

Every metrics column is a scalar ``<group>/<column>``; the groups are numbered in story order
(:data:`satkit.schema.TENSORBOARD_GROUPS`: the two views of saturation, the gradient, the noise,
the learning curves, the training loss, norms and logits, diagnostics, the final figures) and
each tag carries its one-line description, which TensorBoard shows on hover
(:data:`satkit.columns.QUANTITIES`). Aliases (``saturated_frac`` =
``saturated_frac_<last tau>``) are not written twice; the target-logit gradient is also
written as its log10. The trainer adds the per-epoch learning curves
(:meth:`TensorBoardSink.write_epoch`, a staircase over each epoch's steps) and the final
figures with the run's hyperparameters (:meth:`TensorBoardSink.write_hparams`).
:mod:`satkit.sinks.tensorboard_layout` says why each is written the way it is.

A custom-scalars layout (:func:`comparison_layout`) draws one quantity per chart, the clean
and the training-logit view of saturation as two categories of the same charts; TensorBoard
draws every run of a log directory in each chart, so runs written side by side under one
directory are compared chart by chart. TensorBoard picks the runs' colours itself.

TensorBoard is imported when a sink is constructed, never when satkit is imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from satkit.columns import describe
from satkit.schema import DEFAULT_THRESHOLDS, EPOCH_COLUMNS, SUMMARY_FIELDS, TENSORBOARD_GROUPS
from satkit.sinks.base import Histogram, check_utf8_path, ensure_writable_dir
from satkit.sinks.tensorboard_layout import (
    CLOSED_CATEGORIES,
    HISTOGRAM_TAGS,
    LOG10_PREFIX,
    comparison_layout,
    default_columns,
    epoch_steps,
    epoch_tag,
    final_tag,
    hparam_columns,
    log10_tag,
    method_settings,
    tag_for,
)
from satkit.validation import check_int

__all__ = ["TensorBoardSink", "comparison_layout", "tag_for", "write_comparison_layout"]

# p_y histograms on 40 equal buckets of [0, 1]: TensorBoard's default buckets grow
# geometrically, so its last one below 1 would span 0.92-1.0 and hide saturation at 0.99.
_P_BINS = [i / 40 for i in range(41)]


def _description(tag: str) -> str:
    group, _, name = tag.rpartition("/")
    if group in (TENSORBOARD_GROUPS["epoch"], "epoch"):
        text = EPOCH_COLUMNS.get(name, "")
        return f"{text} (each epoch's value drawn over the epoch's steps)" if text else ""
    if group in (TENSORBOARD_GROUPS["hparams"], "hparams"):
        return SUMMARY_FIELDS.get(name, "")
    if name.startswith(LOG10_PREFIX):
        return f"log10 of: {describe(name.removeprefix(LOG10_PREFIX))}"
    return describe(name)


def _layout_summary(layout: Mapping[str, Mapping[str, list[Any]]]) -> Any:
    """The custom-scalars config as a Summary (like ``SummaryWriter.add_custom_scalars``, with
    the categories of :data:`CLOSED_CATEGORIES` closed)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2

    categories = [layout_pb2.Category(
        title=title, closed=title in CLOSED_CATEGORIES,
        chart=[layout_pb2.Chart(title=chart, multiline=layout_pb2.MultilineChartContent(
            tag=tags)) for chart, (_kind, tags) in charts.items()])
        for title, charts in layout.items()]
    tensor = TensorProto(dtype="DT_STRING", tensor_shape=TensorShapeProto(),
                         string_val=[layout_pb2.Layout(category=categories).SerializeToString()])
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="custom_scalars"))
    return Summary(value=[Summary.Value(tag="custom_scalars__config__", tensor=tensor,
                                        metadata=meta)])


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
                            run_names: Sequence[str] | None = None, *,
                            thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
    """Write the custom-scalars layout for a directory whose subdirectories are runs.

    TensorBoard merges the layouts of all runs (charts with the same definition once), so this
    is only needed when the runs were written without one (``layout=False``) or by other tools.

    Args:
        log_dir: the comparison directory (``tensorboard --logdir log_dir``).
        run_names: if given, the runs expected under ``log_dir``; a missing one raises.
        thresholds: the runs' thresholds (the last is the saturation threshold).

    Raises:
        FileNotFoundError: a run in ``run_names`` has no directory under ``log_dir``.
    """
    missing = [r for r in run_names or () if not (Path(log_dir) / r).is_dir()]
    if missing:
        raise FileNotFoundError(f"runs {missing} not found under {log_dir}")
    writer = _writer(log_dir)
    try:
        writer._get_file_writer().add_summary(_layout_summary(comparison_layout(thresholds)))
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
        thresholds: the recorder's thresholds, for the layout's charts.

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
                 layout: bool = True,
                 thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
        check_int("histogram_every", histogram_every, minimum=1, optional=True)
        self.log_dir = Path(log_dir)
        self.histogram_every = histogram_every
        self._writer = _writer(self.log_dir)
        self._described: set[str] = set()
        self._closed = False
        if layout:
            self._add(_layout_summary(comparison_layout(tuple(thresholds))))

    def _add(self, summary: Any, step: int | None = None) -> None:
        self._writer._get_file_writer().add_summary(summary, step)

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
            self._add(Summary(value=entries), step)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Log each row's columns as scalars at its ``step`` (NaN values are skipped), and
        the log10 of the columns :func:`~satkit.sinks.tensorboard_layout.log10_tag` names
        (where positive)."""
        for row in rows:
            values = []
            for column, value in row.items():
                tag = tag_for(column)
                if tag is None or value is None:
                    continue
                value = float(value)
                if math.isnan(value):
                    continue
                values.append((tag, value))
                if (log_tag := log10_tag(column)) is not None and value > 0:
                    values.append((log_tag, math.log10(value)))
            self._scalars(values, int(row["step"]))
        self._writer.flush()

    def write_histograms(self, histograms: list[Histogram]) -> None:
        """Log the per-sample distributions (the clean p_y and p_y under the training logits
        on 40 equal buckets of [0, 1]; the noise), each under its view's group."""
        import numpy as np

        for h in histograms:
            if self.histogram_every is not None and h.step % self.histogram_every:
                continue
            if len(h.values):
                tag = HISTOGRAM_TAGS.get(h.name, f"other/{h.name}")
                bins = np.asarray(_P_BINS) if h.name.startswith("p_target") else "tensorflow"
                self._writer.add_histogram(tag, h.values, h.step, bins=bins)
        self._writer.flush()

    def write_scalars(self, step: int, values: Mapping[str, float], *, group: str) -> None:
        """Log ``values`` as scalars ``<group>/<name>`` at ``step`` (NaN and None skipped);
        ``group`` is a key of :data:`~satkit.schema.TENSORBOARD_GROUPS` (its numbered name is
        used) or any other group name."""
        group = TENSORBOARD_GROUPS.get(group, group)
        self._scalars([(f"{group}/{name}", float(value)) for name, value in values.items()
                       if value is not None and not math.isnan(float(value))], int(step))
        self._writer.flush()

    def write_epoch(self, first_step: int, last_step: int, values: Mapping[str, float]) -> None:
        """Log one epoch's figures (``epochs.csv`` columns: ``test_error``, ``lr``, ...) as a
        staircase: each value at the steps of :func:`~satkit.sinks.tensorboard_layout.
        epoch_steps` over ``[first_step, last_step]``, the epoch's steps, so that
        TensorBoard's smoothing settles on the value within the epoch (NaN and None skipped).
        """
        kept = {epoch_tag(k): float(v) for k, v in values.items()
                if v is not None and not math.isnan(float(v))}
        for step in epoch_steps(int(first_step), int(last_step)):
            self._scalars(list(kept.items()), step)
        self._writer.flush()

    def write_hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, float], *,
                      step: int = 0, runs: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Log the run's hyperparameters with its final figures (TensorBoard's HPARAMS tab).

        Written into this run's directory (unlike ``SummaryWriter.add_hparams``, which makes a
        new sub-run), so the hparams row links to the run's scalars. The config (columns and
        metrics) is the same for every run of a comparison, whichever TensorBoard reads: the
        columns of :func:`~satkit.sinks.tensorboard_layout.hparam_columns` (and any other
        name ``hparams`` holds), their domains over ``runs``, the five of
        :func:`~satkit.sinks.tensorboard_layout.default_columns` marked ``differs`` (shown by
        default), and the metrics in the order given.

        Args:
            hparams: name -> value; bool, int, float and str are kept as they are (booleans
                stay booleans), anything else (None, tuples, ...) is logged as its ``str``.
            metrics: summary field -> final value, e.g. ``{"test_error": 0.07}``, written as
                the scalar ``9 final figures/<field>``; None and NaN values are left out
                (TensorBoard shows an empty cell), the metric stays a column.
            step: the step the metric scalars are logged at (the run's last step, so they sit
                at the end of the run's step axis).
            runs: the hyperparameters of every run of the comparison this run belongs to
                (default: this run alone).
        """
        clean = _clean(hparams)
        peers = [_clean(r) for r in runs] if runs else [clean]
        if clean not in peers:
            peers.append(clean)
        values = {final_tag(k): float(v) for k, v in metrics.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and not math.isnan(float(v))}
        for summary in _hparams_summaries(clean, peers, list(metrics)):
            self._add(summary)
        self._scalars(list(values.items()), int(step))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        if not self._closed:
            self._writer.close()
            self._closed = True

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.log_dir)!r})"


def _clean(hparams: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in hparams.items()}


def _hparams_summaries(hparams: dict[str, Any], runs: list[dict[str, Any]],
                       metrics: list[str]) -> list[Any]:
    """The experiment config, this run's session start and its end, as Summaries."""
    from google.protobuf import struct_pb2
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    def value(v: Any) -> Any:
        if isinstance(v, bool):
            return struct_pb2.Value(bool_value=v)
        if isinstance(v, (int, float)):
            return struct_pb2.Value(number_value=float(v))
        return struct_pb2.Value(string_value=str(v))

    def summary(tag: str, data: Any) -> Any:
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()))
        return Summary(value=[Summary.Value(tag=tag, metadata=meta)])

    shown = set(default_columns(runs))
    settings = method_settings()  # every method's, also those no run here has (numbers)
    names = [n for n in hparam_columns() if n in settings or any(n in r for r in runs)]
    names += [n for r in runs for n in r if n not in names]
    infos = []
    for name in dict.fromkeys(names):
        seen = [r[name] for r in runs if name in r]
        info = api_pb2.HParamInfo(name=name, differs=name in shown)
        if not seen:
            info.type = api_pb2.DATA_TYPE_FLOAT64
        elif all(isinstance(v, bool) for v in seen):
            info.type = api_pb2.DATA_TYPE_BOOL
            info.domain_discrete.extend(sorted(set(seen)))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
            info.type = api_pb2.DATA_TYPE_FLOAT64
            finite = [float(v) for v in seen if math.isfinite(float(v))]
            if finite:
                info.domain_interval.min_value = min(finite)
                info.domain_interval.max_value = max(finite)
        else:
            info.type = api_pb2.DATA_TYPE_STRING
            info.domain_discrete.extend(sorted({str(v) for v in seen}))
        infos.append(info)
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=final_tag(m)), display_name=m,
                                       description=SUMMARY_FIELDS.get(m, ""))
                    for m in metrics]
    experiment = plugin_data_pb2.HParamsPluginData(
        version=metadata.PLUGIN_DATA_VERSION,
        experiment=api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos))
    start = plugin_data_pb2.HParamsPluginData(
        version=metadata.PLUGIN_DATA_VERSION,
        session_start_info=plugin_data_pb2.SessionStartInfo(
            hparams={k: value(v) for k, v in hparams.items()}))
    end = plugin_data_pb2.HParamsPluginData(
        version=metadata.PLUGIN_DATA_VERSION,
        session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS))
    return [summary(metadata.EXPERIMENT_TAG, experiment),
            summary(metadata.SESSION_START_INFO_TAG, start),
            summary(metadata.SESSION_END_INFO_TAG, end)]
