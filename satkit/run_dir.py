"""Run directories: claimed atomically, named once, written atomically with the umask's modes.

A run directory holds ``config.json``, ``metrics.parquet``, ``samples.parquet``,
``epochs.csv``, ``summary.json``, ``checkpoint.pt``, TensorBoard event files and ``figures/``
(:mod:`satkit.schema`), plus the hidden claim file :data:`CLAIM`.

Claiming: a new run never shares a directory with another run. :func:`claim_run_dir` creates
the directory (or takes an empty one) and claims it by creating :data:`CLAIM` with ``O_EXCL``,
which exactly one process can do; a directory claimed by another run, or holding anything else,
is skipped for the next free ``path-1``, ``path-2``, ... So two ``satkit train --out X``
started together get ``X`` and ``X-1``.

Locking: the process writing a run directory holds an exclusive ``flock`` on its :data:`CLAIM`
file for as long as it writes (:class:`RunDirLock`), and writes its pid into it. A second
process that would write the same directory (``--resume`` twice at once, a ``compare
--resume`` beside a running compare) is refused with :class:`RunLockedError` naming the
holder's pid. The operating system drops the lock when the holder exits, however it exits, so
a process killed with SIGKILL leaves no stale lock behind.

Writing: :func:`atomic_write_bytes` writes a temporary sibling (``.NAME.PID.RANDOM.tmp``,
created with mode 0666 so the umask applies, as for every other file of the run), fsyncs it and
renames it over ``NAME``: a reader sees the old file or the complete new one, never half of it.
A process killed mid-write leaves only the hidden temporary file, which :func:`sweep_temporary`
removes when the run is resumed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from satkit.schema import CHECKPOINT
from satkit.sinks.base import check_utf8_path, fsync_dir

__all__ = ["CHECKPOINT", "CLAIM", "RunDirError", "RunDirLock", "RunLockedError",
           "RunWriteError", "atomic_write_bytes", "atomic_write_text", "claim_run_dir",
           "describe_os_error", "lock_run_dir", "release_run_dir", "sweep_temporary",
           "write_json"]

#: The hidden file that marks a directory as claimed by one run (it holds the claimer's pid).
CLAIM = ".satkit-run"

_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.ENOTDIR: "not a directory",
            errno.EISDIR: "is a directory"}


class RunDirError(ValueError):
    """The run directory cannot be used as asked (e.g. ``--resume`` with nothing to resume)."""


class RunLockedError(RuntimeError):
    """Another live process holds the run directory's lock (:class:`RunDirLock`).

    Attributes:
        path: the run directory.
        pid: the holder's process id, as it wrote it into the claim file (None if unreadable).
    """

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"{path} is in use by another satkit process ({holder}); wait for it "
                         "to end (or stop it), then run this again")
        self.path, self.pid = path, pid


class RunDirLock:
    """This process's exclusive hold on a run directory: an ``flock`` on its claim file.

    Made by :func:`claim_run_dir` and :func:`lock_run_dir`; :meth:`release` (or leaving the
    ``with`` block) lets another process take it. The OS releases it when the process ends.

    Attributes:
        path: the run directory.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunDirLock({str(self.path)!r}, held={self.held})"


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def _take(directory: Path, fd: int) -> RunDirLock:
    """Lock the open claim file ``fd`` of ``directory`` and write our pid into it; closes
    ``fd`` on failure."""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(directory, _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(fd)
        raise
    return RunDirLock(directory, fd)


def lock_run_dir(path: str | os.PathLike[str]) -> RunDirLock:
    """Lock an existing run directory for this process (to resume it, or to remove it).

    The claim file is created when missing (a directory from an older satkit).

    Raises:
        RunLockedError: another live process holds it.
        RunWriteError: the claim file cannot be opened for writing (read-only, permission).
    """
    path = Path(path)
    try:
        fd = os.open(path / CLAIM, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise RunWriteError(f"cannot lock the run directory {path}: {_reason(exc)}",
                            exc.errno) from exc
    return _take(path, fd)


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
    if isinstance(path, bytes):  # TensorBoard's file layer reports paths as bytes
        path = os.fsdecode(path)
    return f"{_reason(exc)} while writing {path}" if path is not None else _reason(exc)


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0) or str(exc.strerror or exc).rstrip(".").lower()


def _claim(directory: Path) -> RunDirLock | None:
    """Create ``directory`` (or take it if empty), create its claim file exclusively and lock
    it; None when the directory is taken."""
    try:
        directory.mkdir()
    except FileExistsError:
        if not directory.is_dir() or any(p.name != CLAIM for p in directory.iterdir()):
            return None  # a file, or a directory another run (or anything else) uses
    try:
        fd = os.open(directory / CLAIM, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return None  # another run claimed it first
    return _take(directory, fd)  # nobody else can hold a file created a moment ago


def claim_run_dir(path: str | os.PathLike[str], *, resume: bool = False,
                  requires: str | None = CHECKPOINT) -> RunDirLock:
    """Claim and lock a fresh directory for a run at ``path``, or lock the existing one to
    resume it.

    A new run never shares or overwrites: ``path`` is used when it does not exist or is an
    empty directory nobody claimed; otherwise the first such ``path-1``, ``path-2``, ...
    The claim is atomic (see the module docstring), so concurrent runs get distinct
    directories. The returned lock is held until released (or the process ends).

    Args:
        path: where the run goes.
        resume: lock ``path`` itself, which must exist and hold ``requires``.
        requires: the file a directory to resume must hold (a run's checkpoint by default).

    Raises:
        RunDirError: ``path`` is not UTF-8 text (TensorBoard cannot write there; refused
            before anything is created), or ``resume`` is set but ``path`` holds no
            ``requires``.
        RunLockedError: ``resume`` is set and another process holds ``path``.
        RunWriteError: the directory cannot be created (read-only, no permission, disk full).
    """
    path = Path(path)
    try:
        check_utf8_path(path, "--out")
    except ValueError as exc:
        raise RunDirError(str(exc)) from None
    if resume:
        if requires is not None and not (path / requires).is_file():
            if not path.exists():
                raise RunDirError(f"--resume: {path} does not exist")
            raise RunDirError(f"--resume: {path} holds no {requires} to resume from")
        return lock_run_dir(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for k in count():
            candidate = path if k == 0 else path.with_name(f"{path.name}-{k}")
            lock = _claim(candidate)
            if lock is not None:
                return lock
    except OSError as exc:
        raise RunWriteError(f"cannot create the run directory {path}: {_reason(exc)}",
                            exc.errno) from exc
    raise AssertionError("unreachable")  # count() never ends


def release_run_dir(lock: RunDirLock) -> None:
    """Give up a directory this process claimed: remove it when nothing but the claim was
    written into it (an aborted start), then release the lock."""
    try:
        if {p.name for p in lock.path.iterdir()} <= {CLAIM}:
            (lock.path / CLAIM).unlink(missing_ok=True)
            lock.path.rmdir()
    except OSError:
        pass  # best effort: never hide the error that aborted the start
    finally:
        lock.release()


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
