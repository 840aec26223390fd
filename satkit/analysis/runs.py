"""Reading run directories written by satkit's trainer into pandas.

A run directory holds ``config.json``, ``metrics.parquet`` (one row per recorded step),
``samples.parquet`` (one row per training sample), ``epochs.csv``, ``summary.json`` and
TensorBoard event files. A *comparison directory* holds several run directories.

What is required, what is optional (an interrupted run still loads):

* ``config.json`` -- required; when it is missing, ``summary.json`` stands in for it (it holds
  the same labels). Neither present: :class:`RunError`.
* ``metrics.parquet`` -- required; when it is missing but event files are present the metrics
  are rebuilt from TensorBoard (:func:`satkit.analysis.from_tensorboard`). An empty table is
  allowed (the run recorded nothing yet) and gives empty results downstream.
* ``samples.parquet``, ``epochs.csv``, ``summary.json``, ``test_predictions.parquet`` --
  optional: an empty DataFrame with the documented columns (or ``{}``) stands in.

Any file that exists but cannot be parsed, or holds a column or field of the wrong type (text
where a number belongs: :mod:`satkit.analysis.checks`), raises :class:`RunError` naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from satkit import methods, schema
from satkit.analysis.checks import check_columns, check_fields, check_metrics, require_columns
from satkit.analysis.errors import RunError
from satkit.analysis.finding import find_run_dirs, not_a_directory
from satkit.analysis.labels import method_label, method_setting

__all__ = [
    "EPOCH_COLUMNS",
    "LONG_COLUMNS",
    "SAMPLE_COLUMNS",
    "Run",
    "as_runs",
    "find_run_dirs",
    "load_run",
]

SAMPLE_COLUMNS = tuple(schema.SAMPLE_COLUMNS)
EPOCH_COLUMNS = tuple(schema.EPOCH_COLUMNS)
LONG_COLUMNS = ("run", "alpha2", "seed", "loss", "setting", "noise", "step", "metric",
                "value")


@dataclass(eq=False)
class Run:
    """One loaded run directory.

    Attributes:
        path: the run directory.
        name: a short unique label (the directory name; ``parent/name`` when
            :func:`load_runs` meets two runs with the same directory name).
        config: the resolved config (``config.json``; ``summary.json`` when it is missing).
        metrics: one row per recorded step, sorted by ``step`` (may be empty).
        samples: one row per training sample (empty when the run kept no per-sample record).
            ``first_saturated_step`` is nullable ``Int64``: ``<NA>`` = never saturated.
        epochs: one row per epoch (empty when none finished).
        summary: ``summary.json`` (``{}`` for an unfinished run).
        test_predictions: one row per test sample, the final model's top-1 prediction
            (empty for an unfinished run or one written before satkit kept them).
    """

    path: Path
    name: str
    config: dict
    metrics: pd.DataFrame
    samples: pd.DataFrame = field(repr=False)
    epochs: pd.DataFrame = field(repr=False)
    summary: dict = field(repr=False)
    test_predictions: pd.DataFrame = field(
        repr=False, default_factory=lambda: _empty_typed(schema.TEST_PREDICTION_COLUMNS))

    @property
    def alpha2(self) -> float:
        """Noisy Softmax's alpha^2 as applied: 0 for plain softmax and every other method
        (config.json's ``effective_alpha2``; NaN when unknown)."""
        return _as_float(self.config.get("effective_alpha2"))

    @property
    def seed(self) -> int | None:
        value = self.config.get("seed", self.summary.get("seed"))
        return None if value is None else int(value)

    @property
    def noise(self) -> str:
        """The noise variant as applied; ``"none"`` unless the run is Noisy Softmax with
        alpha2 > 0 (config.json's ``effective_noise``)."""
        return str(self.config.get("effective_noise", "none"))

    @property
    def loss(self) -> str:
        """The method as applied (config.json's ``method``): ``"softmax"`` for Noisy Softmax at
        alpha2 = 0."""
        return str(self.config["method"])

    @property
    def setting(self) -> str:
        """The method's main parameter as text (``"ε=0.1"``); ``""`` for softmax and Noisy
        Softmax (see :func:`satkit.analysis.method_setting`)."""
        return method_setting(self.loss, self.config)

    @property
    def label(self) -> str:
        """The method's legend / table name (:func:`satkit.analysis.method_label`)."""
        return method_label(self.alpha2, self.noise, self.loss, self.setting)

    @property
    def seconds_per_step(self) -> float:
        """Training wall time per step from summary.json (``seconds_per_step``, else
        ``seconds / steps``); NaN for an unfinished run."""
        value = self.summary.get("seconds_per_step")
        if value is None and self.summary.get("steps"):
            value = _as_float(self.summary.get("seconds")) / float(self.summary["steps"])
        return _as_float(value)

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", self.summary.get("dataset", "")))

    @property
    def finished(self) -> bool:
        """Whether every planned epoch ran: summary.json's ``finished``. A run without
        summary.json (the trainer writes it at the end) is unfinished; a summary.json written
        before the field existed was written only by finished runs."""
        if not self.summary:
            return False
        return bool(self.summary.get("finished", True))

    @property
    def epochs_done(self) -> int | None:
        """Epochs finished: summary.json's ``epochs``, else the rows of epochs.csv."""
        if self.summary.get("epochs") is not None:
            return int(self.summary["epochs"])
        return len(self.epochs) if "epoch" in self.epochs else None

    @property
    def epochs_planned(self) -> int | None:
        """Epochs the config asked for: summary.json's ``epochs_planned``, else config.json's
        ``epochs`` (None when only summary.json stands in for the config: its ``epochs`` are
        the finished ones)."""
        if self.summary.get("epochs_planned") is not None:
            return int(self.summary["epochs_planned"])
        if (self.path / schema.CONFIG).exists() and self.config.get("epochs") is not None:
            return int(self.config["epochs"])
        return None

    @property
    def last_step(self) -> int | None:
        """The last recorded step (metrics; else ``summary['steps'] - 1``, steps counting from
        0); None if unknown."""
        if len(self.metrics):
            return int(self.metrics["step"].iloc[-1])
        steps = self.summary.get("steps")
        return None if not steps else int(steps) - 1


def _as_float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def normalise_config(config: dict, summary: dict) -> dict:
    """A run's config with the method as applied, whatever satkit version wrote it.

    Adds (when missing) ``method``, ``effective_alpha2`` and ``effective_noise``, derived by the
    catalogue's rules (:mod:`satkit.methods`) from the raw ``loss``/``alpha2``/``noise`` of the
    config, else of summary.json (which older runs wrote with the method already resolved).
    Runs are normalised once, here, so nothing downstream re-derives them.

    Example:
        >>> normalise_config({"alpha2": 0.0}, {})["method"]
        'softmax'
        >>> c = normalise_config({"loss": "focal", "alpha2": 0.1}, {})
        >>> c["method"], c["effective_alpha2"], c["effective_noise"]
        ('focal', 0.0, 'none')
    """
    config = dict(config)
    loss = config.get("loss", summary.get("loss"))
    alpha2 = _as_float(config.get("alpha2", summary.get("alpha2")))
    alpha2 = None if math.isnan(alpha2) else alpha2
    noise = config.get("noise", summary.get("noise"))
    config.setdefault("method", methods.resolve_method(loss, alpha2))
    config.setdefault("effective_alpha2", methods.effective_alpha2(loss, alpha2))
    config.setdefault("effective_noise", methods.effective_noise(
        loss, alpha2, None if noise == "none" else noise))
    return config


def _read_json(path: Path, types: Mapping[str, str]) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object, got {type(data).__name__}")
    check_fields(data, types, path)
    return data


def _read_parquet(path: Path, required: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
        raise RunError(f"{path}: cannot read Parquet ({type(exc).__name__}: {exc})") from None
    require_columns(frame, required, path)
    return frame


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})


def _empty_typed(columns) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtype) for c, (dtype, _) in columns.items()})


def _load_test_predictions(run_dir: Path) -> pd.DataFrame:
    path = run_dir / schema.TEST_PREDICTIONS
    if not path.exists():
        return _empty_typed(schema.TEST_PREDICTION_COLUMNS)
    frame = _read_parquet(path, list(schema.TEST_PREDICTION_COLUMNS))
    check_columns(frame, {c: dtype for c, (dtype, _) in schema.TEST_PREDICTION_COLUMNS.items()},
                  path)
    return frame


def _load_metrics(run_dir: Path) -> pd.DataFrame:
    """The metrics table, with the rows of part files a killed run left beside it."""
    from satkit.sinks.table import parts_dir, read_table

    path = run_dir / schema.METRICS
    if path.exists() or parts_dir(path).is_dir():
        try:
            metrics = read_table(path)
        except Exception as exc:  # pyarrow raises several types for truncated/corrupt files
            raise RunError(f"{path}: cannot read Parquet ({type(exc).__name__}: {exc})") from None
        if not len(metrics.columns):
            metrics = pd.DataFrame({"step": pd.Series(dtype="int64")})
        require_columns(metrics, ["step"], path)
        check_metrics(metrics, path)
    elif any(run_dir.glob("events.out.tfevents.*")):
        from satkit.analysis.eventfiles import from_tensorboard

        metrics = from_tensorboard(run_dir)
    else:
        raise RunError(f"{path}: missing (and no TensorBoard event files in {run_dir})")
    if len(metrics) and not metrics["step"].is_monotonic_increasing:
        metrics = metrics.sort_values("step", kind="stable", ignore_index=True)
    return metrics


def _load_samples(run_dir: Path) -> pd.DataFrame:
    """The samples table with the schema's dtypes (older runs lack the noisy-view and settled
    columns: they stay absent, and the analysis says so when asked for them)."""
    path = run_dir / schema.SAMPLES
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype=dtype)
                             for c, (dtype, _) in schema.SAMPLE_COLUMNS.items()})
    frame = _read_parquet(path, ["first_saturated_step"])
    declared = {**schema.SAMPLE_COLUMNS, **schema.SAMPLE_LABEL_COLUMNS}
    check_columns(frame, {c: dtype for c, (dtype, _) in declared.items()}, path)
    for column, (dtype, _) in schema.SAMPLE_COLUMNS.items():
        if column in frame.columns and dtype == "Int64":
            frame[column] = frame[column].astype("Int64")
    return frame


def _load_epochs(run_dir: Path) -> pd.DataFrame:
    path = run_dir / schema.EPOCHS
    if not path.exists():
        return _empty(EPOCH_COLUMNS)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return _empty(EPOCH_COLUMNS)
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot read CSV ({exc})") from None
    require_columns(frame, ["epoch", "test_error"], path)
    check_columns(frame, schema.EPOCH_DTYPES, path)
    return frame


def load_run(path: str | Path) -> Run:
    """Load one run directory.

    Args:
        path: a run directory written by satkit's trainer (see the module docstring for
            which files are required).

    Returns:
        A :class:`Run`; ``metrics`` sorted by step.

    Raises:
        RunError: the directory or a required file is missing, or a file is corrupt or holds
            a column or field of the wrong type (:mod:`satkit.analysis.checks`); the message
            names the file (and the column or field).

    Example:
        >>> run = load_run(run_dir)          # doctest: +SKIP
        >>> run.alpha2, len(run.metrics)     # doctest: +SKIP
        (0.1, 500)
    """
    run_dir = Path(path)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(not_a_directory(run_dir))
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory")
    config_path, summary_path = run_dir / schema.CONFIG, run_dir / schema.SUMMARY
    summary = _read_json(summary_path, schema.SUMMARY_TYPES) if summary_path.exists() else {}
    if config_path.exists():
        config = _read_json(config_path, schema.CONFIG_TYPES)
    elif summary:
        config = dict(summary)
    else:
        raise RunError(f"{config_path}: missing (and no summary.json); not a satkit run")
    return Run(
        path=run_dir,
        name=run_dir.name,
        config=normalise_config(config, summary),
        metrics=_load_metrics(run_dir),
        samples=_load_samples(run_dir),
        epochs=_load_epochs(run_dir),
        summary=summary,
        test_predictions=_load_test_predictions(run_dir),
    )


def _unique_names(runs: list[Run]) -> list[Run]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    for run in runs:
        if counts[run.name] > 1:
            run.name = f"{run.path.parent.name}/{run.path.name}"
    return runs


def as_runs(runs) -> list[Run]:
    """Coerce a :class:`Run`, a sequence of them, or path(s)/glob(s) to a list of runs.

    Runs given as objects come first, then the loaded directories in the order
    :func:`find_run_dirs` gives.

    Raises:
        RunError: via :func:`find_run_dirs` / :func:`load_run`; also when nothing is given.
    """
    if isinstance(runs, Run):
        return [runs]
    items = [runs] if isinstance(runs, str | Path) else list(runs)
    if not items:
        raise RunError("no runs given")
    if all(isinstance(r, Run) for r in items):
        return items
    given = [r for r in items if isinstance(r, Run)]
    paths = [r for r in items if not isinstance(r, Run)]
    return _unique_names(given + [load_run(p) for p in find_run_dirs(paths)])

