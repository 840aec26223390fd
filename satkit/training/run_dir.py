"""Run directories: created without overwriting, JSON written atomically.

A run directory holds ``config.json``, ``metrics.parquet``, ``samples.parquet``,
``epochs.csv``, ``summary.json``, ``checkpoint.pt``, TensorBoard event files and ``figures/``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from satkit.schema import CHECKPOINT

__all__ = ["CHECKPOINT", "RunDirError", "atomic_write_text", "create_run_dir", "write_json"]


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists, or nothing to resume)."""


def create_run_dir(path: str | os.PathLike[str], *, resume: bool = False) -> Path:
    """Return a fresh directory for a run at ``path``, or the existing one to resume.

    A new run never overwrites: if ``path`` exists and is not empty, the first free
    ``path-1``, ``path-2``, ... is used instead.

    Raises:
        RunDirError: ``resume`` is set but ``path`` holds no checkpoint.
    """
    path = Path(path)
    if resume:
        if not (path / CHECKPOINT).is_file():
            raise RunDirError(f"--resume: {path} holds no {CHECKPOINT} to resume from")
        return path
    candidate, k = path, 0
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
