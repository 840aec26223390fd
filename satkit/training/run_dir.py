"""Run directories: claimed atomically, named once, written atomically with the umask's modes.

A run directory holds ``config.json``, ``metrics.parquet``, ``samples.parquet``,
``epochs.csv``, ``summary.json``, ``checkpoint.pt``, TensorBoard event files and ``figures/``
(:mod:`satkit.schema`), plus the hidden claim file :data:`CLAIM`.

Claiming: a new run never shares a directory with another run. :func:`create_run_dir` creates
the directory (or takes an empty one) and claims it by creating :data:`CLAIM` with ``O_EXCL``,
which exactly one process can do; a directory claimed by another run, or holding anything else,
is skipped for the next free ``path-1``, ``path-2``, ... So two ``satkit train --out X``
started together get ``X`` and ``X-1``.

Writing: :func:`atomic_write_bytes` writes a temporary sibling (``.NAME.PID.RANDOM.tmp``,
created with mode 0666 so the umask applies, as for every other file of the run), fsyncs it and
renames it over ``NAME``: a reader sees the old file or the complete new one, never half of it.
A process killed mid-write leaves only the hidden temporary file, which :func:`sweep_temporary`
removes when the run is resumed.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from satkit.schema import CHECKPOINT
from satkit.sinks.base import fsync_dir
from satkit.training.config import TrainConfig

__all__ = ["CHECKPOINT", "CLAIM", "NOISY_SOFTMAX", "RunDirError", "RunWriteError",
           "atomic_write_bytes", "atomic_write_text", "create_run_dir", "default_run_dir",
           "describe_os_error", "release_run_dir", "run_name", "sweep_temporary", "write_json"]

#: The hidden file that marks a directory as claimed by one run (it holds the claimer's pid).
CLAIM = ".satkit-run"

_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOTDIR: "not a directory",
            errno.EISDIR: "is a directory"}


class RunDirError(ValueError):
    """The run directory cannot be used as asked (e.g. ``--resume`` with nothing to resume)."""


class RunWriteError(OSError):
    """Writing a run's files failed (disk full, read-only, no permission).

    ``str()`` is one line naming the problem and the path; ``errno`` is the original one.
    """

    def __init__(self, message: str, errno_: int | None = None) -> None:
        super().__init__(errno_, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def describe_os_error(exc: OSError, where: str | os.PathLike[str] | None = None) -> str:
    """One line for an I/O error: the reason in words and the path it concerns.

    Args:
        exc: the error; its ``filename``, when set, is the path named.
        where: the path to name when ``exc`` carries none (e.g. the run directory).

    Example:
        >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device"), "runs/a")
        'no space left on device while writing runs/a'
    """
    if isinstance(exc, RunWriteError):
        return exc.message
    path = exc.filename if exc.filename is not None else where
    return f"{_reason(exc)} while writing {path}" if path is not None else _reason(exc)


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or str(exc.strerror or exc).rstrip(".").lower()


#: How a run name spells Noisy Softmax (its ``--loss`` value is ``noisy``).
NOISY_SOFTMAX = "noisy-softmax"


def run_name(config: TrainConfig) -> str:
    """The name of a run (its directory in a comparison, its run in TensorBoard, its trial in
    the HPARAMS table): the method as applied (:attr:`TrainConfig.method`) first.

    ``noisy-softmax_alpha2=0.1_seed=0`` for Noisy Softmax (``_noise=<family>`` before the seed
    unless the noise is annealed), ``<method>_seed=0`` for every other method, the alpha2 = 0
    baseline (softmax) included.

    Example:
        >>> run_name(TrainConfig(alpha2=0.1)), run_name(TrainConfig(alpha2=0, noise="free"))
        ('noisy-softmax_alpha2=0.1_seed=0', 'softmax_seed=0')
        >>> run_name(TrainConfig(alpha2=1, noise="amplitude")), run_name(TrainConfig(loss="focal"))
        ('noisy-softmax_alpha2=1_noise=amplitude_seed=0', 'focal_seed=0')
    """
    if config.method != "noisy":
        return f"{config.method}_seed={config.seed}"
    noise = "" if config.effective_noise == "annealed" else f"_noise={config.effective_noise}"
    return f"{NOISY_SOFTMAX}_alpha2={config.effective_alpha2:g}{noise}_seed={config.seed}"


def default_run_dir(config: TrainConfig) -> Path:
    """Where a run goes without ``out``: ``runs/<dataset>_<run_name>``."""
    return Path("runs") / f"{config.dataset}_{run_name(config)}"


def _claim(directory: Path) -> bool:
    """Create ``directory`` (or take it if empty) and create its claim file exclusively."""
    try:
        directory.mkdir()
    except FileExistsError:
        if not directory.is_dir() or any(p.name != CLAIM for p in directory.iterdir()):
            return False  # a file, or a directory another run (or anything else) uses
    try:
        fd = os.open(directory / CLAIM, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False  # another run claimed it first
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True


def create_run_dir(path: str | os.PathLike[str], *, resume: bool = False) -> Path:
    """Claim a fresh directory for a run at ``path``, or return the existing one to resume.

    A new run never shares or overwrites: ``path`` is used when it does not exist or is an
    empty directory nobody claimed; otherwise the first such ``path-1``, ``path-2``, ...
    The claim is atomic (see the module docstring), so concurrent runs get distinct
    directories.

    Raises:
        RunDirError: ``resume`` is set but ``path`` holds no checkpoint.
        RunWriteError: the directory cannot be created (read-only, no permission, disk full).
    """
    path = Path(path)
    if resume:
        if not (path / CHECKPOINT).is_file():
            raise RunDirError(f"--resume: {path} holds no {CHECKPOINT} to resume from")
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for k in count():
            candidate = path if k == 0 else path.with_name(f"{path.name}-{k}")
            if _claim(candidate):
                return candidate
    except OSError as exc:
        raise RunWriteError(f"cannot create the run directory {path}: {_reason(exc)}",
                            exc.errno) from exc
    raise AssertionError("unreachable")  # count() never ends


def release_run_dir(path: Path) -> None:
    """Remove a directory this process claimed and wrote nothing else into (an aborted start)."""
    try:
        if {p.name for p in path.iterdir()} <= {CLAIM}:
            (path / CLAIM).unlink(missing_ok=True)
            path.rmdir()
    except OSError:
        pass  # best effort: never hide the error that aborted the start


def sweep_temporary(run_dir: Path) -> list[Path]:
    """Delete the hidden temporary files killed writers left in ``run_dir`` (and its table
    parts); returns them. Call only on a directory this process owns (``--resume``)."""
    stale = [p for p in [*run_dir.glob(".*.tmp"), *run_dir.glob(".*.parts/.*.tmp")]
             if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *,
                       midway: Callable[[Path], None] | None = None) -> None:
    """Write ``data`` to ``path`` atomically: temporary sibling, fsync, ``os.replace``.

    The file gets mode ``0666 & ~umask``, like any file the process creates.

    Args:
        path: the destination.
        data: its new content.
        midway: called with the temporary file's path after half of ``data`` is written and
            flushed (a fault-injection point for tests; see :mod:`satkit.training.faults`).

    Raises:
        OSError: from the file system (e.g. ``ENOSPC``, with ``filename`` set to ``path``);
            the temporary file is removed and ``path`` is unchanged.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            if midway is not None:
                f.flush()
                midway(tmp)
            f.write(data[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if exc.filename is None or Path(exc.filename) == tmp:
            exc.filename = str(path)
        raise
    except BaseException:
        _discard(tmp)
        raise
    fsync_dir(path.parent)


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass  # e.g. a read-only file system, where it was never created


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: dict[str, Any]) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
