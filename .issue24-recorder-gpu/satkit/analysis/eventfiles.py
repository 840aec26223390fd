"""Reading TensorBoard event files (for runs that have no Parquet tables).

The recorder's TensorBoard sink writes each metric as a scalar tag ``<group>/<column>``
(``1 saturation, clean/p_target_median``, ``3 gradient/grad_target_mean``, ...; older runs:
``saturation/p_target_median``) and, every few steps, histograms of the per-sample p_target in
both views. TensorBoard is imported here, lazily, inside the functions: importing
:mod:`satkit.analysis` does not import it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from satkit.analysis.errors import RunError
from satkit.analysis.views import check_view
from satkit.schema import TENSORBOARD_NOT_METRICS

__all__ = ["from_tensorboard", "histograms_from_tensorboard"]

# Not recorder rows: end-of-run figures, the trainer's per-epoch learning curves (which
# epochs.csv holds), derived log10 series.
_SKIPPED = TENSORBOARD_NOT_METRICS
_DERIVED = "log10 "


def _accumulator(log_dir: str | Path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    path = Path(log_dir)
    if not path.is_dir() or not any(path.glob("events.out.tfevents.*")):
        raise RunError(f"{path}: no TensorBoard event files (events.out.tfevents.*)")
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    try:
        acc.Reload()
    except Exception as exc:  # a truncated record surfaces as several error types
        raise RunError(f"{path}: cannot read event files ({type(exc).__name__}: {exc})") from None
    return acc


def from_tensorboard(log_dir: str | Path) -> pd.DataFrame:
    """Rebuild a metrics table (one row per step) from the scalar tags of event files.

    Args:
        log_dir: the directory holding ``events.out.tfevents.*`` files (a run directory).

    Returns:
        A frame with a ``step`` column and one float column per scalar tag, named after the
        part of the tag after the last slash (``1 saturation, clean/p_target_median`` ->
        ``p_target_median``); sorted by step. A step at which a tag was not written holds
        NaN there; when the same step was written twice the last value wins. The groups of
        :data:`satkit.schema.TENSORBOARD_NOT_METRICS` (end-of-run figures, per-epoch curves,
        which ``epochs.csv`` holds) and derived ``log10 ...`` series are not per-step
        metrics and are skipped. No scalar tags: an empty frame with only ``step``.

    Raises:
        RunError: the directory has no event files or they cannot be read.
    """
    acc = _accumulator(log_dir)
    columns: dict[str, pd.Series] = {}
    for tag in acc.Tags().get("scalars", []):
        if tag.startswith(_SKIPPED) or tag.rsplit("/", 1)[-1].startswith(_DERIVED):
            continue
        events = acc.Scalars(tag)
        series = pd.Series([e.value for e in events], index=[e.step for e in events],
                           dtype="float64")
        columns[tag.rsplit("/", 1)[-1]] = series[~series.index.duplicated(keep="last")]
    if not columns:
        return pd.DataFrame({"step": pd.Series(dtype="int64")})
    frame = pd.DataFrame(columns).sort_index()
    frame.index = frame.index.astype("int64")
    return frame.rename_axis("step").reset_index()


def histograms_from_tensorboard(log_dir: str | Path, tag: str | None = None, *,
                                saturation: str = "clean") -> pd.DataFrame:
    """Read one histogram tag of the event files as tidy buckets.

    Args:
        log_dir: the directory holding the event files.
        tag: the histogram tag; default: the first tag whose name contains ``p_target`` --
            and ``noisy`` when ``saturation="noisy"``, not ``noisy`` when ``"clean"``.
        saturation: the view whose histogram ``tag=None`` picks.

    Returns:
        Columns ``step, left, right, count`` (one row per non-empty bucket); empty when the
        files hold no matching histogram.

    Raises:
        RunError: no event files, or unreadable ones.
    """
    acc = _accumulator(log_dir)
    tags = acc.Tags().get("histograms", [])
    if tag is None:
        noisy = check_view(saturation) == "noisy"
        tag = next((t for t in tags if "p_target" in t and ("noisy" in t) == noisy), None)
    if tag is None or tag not in tags:
        return pd.DataFrame({"step": [], "left": [], "right": [], "count": []})
    rows = []
    for event in acc.Histograms(tag):
        h = event.histogram_value
        right = np.asarray(h.bucket_limit, dtype="float64")
        left = np.maximum(np.concatenate([[h.min], right[:-1]]), h.min)
        count = np.asarray(h.bucket, dtype="float64")
        keep = count > 0
        rows.append(pd.DataFrame({"step": event.step, "left": left[keep],
                                  "right": np.minimum(right[keep], h.max),
                                  "count": count[keep]}))
    return pd.concat(rows, ignore_index=True)
