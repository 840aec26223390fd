"""Finding run directories: a run directory, a comparison directory (the runs it holds) or a
glob pattern, expanded to the run directories it names. Reads no file, only what exists."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from satkit import schema
from satkit.analysis.errors import RunError

__all__ = ["find_run_dirs", "not_a_directory"]

#: A directory holding one of these files is a run directory.
_MARKERS = (schema.CONFIG, schema.METRICS, schema.SUMMARY)


def _is_run_dir(path: Path) -> bool:
    return any((path / marker).exists() for marker in _MARKERS)


def find_run_dirs(paths_or_glob: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand run directories, comparison directories and glob patterns into run directories.

    A path that is a run directory is kept; a directory that is not one but holds run
    directories (a comparison directory) is replaced by them, sorted by name; a string with
    glob characters is expanded first.

    Raises:
        RunError: a path does not exist, or nothing resolves to a run directory.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, str | Path) else list(paths_or_glob)
    found: list[Path] = []
    for item in items:
        matches = sorted(glob.glob(str(item))) if glob.has_magic(str(item)) else [str(item)]
        if not matches:
            raise RunError(f"{item}: the pattern matches nothing")
        for match in map(Path, matches):
            if not match.exists():
                raise RunError(f"{match}: no such run directory")
            if not match.is_dir():
                raise RunError(not_a_directory(match))
            if _is_run_dir(match):
                found.append(match)
                continue
            children = sorted(p for p in match.iterdir() if p.is_dir() and _is_run_dir(p))
            if not children:
                raise RunError(f"{match}: neither a run directory (no config.json, "
                               "metrics.parquet or summary.json) nor a directory of runs")
            found.extend(children)
    return list(dict.fromkeys(found))  # drop duplicates, keep order


def not_a_directory(path: Path) -> str:
    """What to say when a file is given where a run directory is expected."""
    hint = (f"; give the run directory that holds it, {path.parent}"
            if path.name in (*_MARKERS, schema.SAMPLES, schema.EPOCHS) else "")
    return f"{path}: a file, not a run directory or a directory of runs{hint}"
