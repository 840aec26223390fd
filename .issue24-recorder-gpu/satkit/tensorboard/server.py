"""Serve satkit runs in TensorBoard (a subprocess that never outlives its parent).

:class:`TensorBoardServer` starts ``python -m tensorboard.main`` as a subprocess over one or
more run (or comparison) directories, bound to ``localhost`` by default, waits until it
answers HTTP, and always stops it (SIGTERM, then SIGKILL) when its ``with`` block ends.
:class:`TensorBoardClient` fetches runs, tags and values from a running server (what the
tests and notebooks use to check what is served). ``satkit tensorboard RUN_DIR...`` is the
command-line front end (:mod:`satkit.cli.tensorboard`); the plain equivalent for one
directory is ``tensorboard --logdir RUN_DIR --host localhost``.

Directories: one comparison directory is passed as ``--logdir`` itself (run names are
relative to it: ``softmax_seed=0``, ...). A run directory, or several directories, become a
temporary tree of symlinks named after them (``name``, ``name-1`` if two share a name),
passed as ``--logdir``: TensorBoard's own recommendation, and unlike ``--logdir_spec`` it
keeps run names clean (no ``name/.``) and accepts paths containing ``,`` or ``:``.
The server uses the pure-Python loader (``--load_fast=false``: no extra gRPC data server).

Lifetime: the TensorBoard process never outlives the process that started it. It runs under a
small launcher (``_CHILD``) that asks Linux to send it SIGHUP when its parent dies
(``prctl(PR_SET_PDEATHSIG)``; elsewhere a watchdog thread polls the parent pid) and, when it
exits for that reason, removes its temporary directory (otherwise the parent does). A directory
left by processes that were all killed with SIGKILL is removed by the next server that starts
(:func:`sweep_stale_workdirs`).

How to read each chart of a satkit run: ``docs/tensorboard.md``.

Example:
    >>> from satkit.tensorboard import server_command
    >>> cmd = server_command("runs/demo", port=0)
    >>> cmd[cmd.index("--host") + 1]
    'localhost'
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from satkit.tensorboard.addresses import WILDCARDS
from satkit.tensorboard.client import TensorBoardClient, TensorBoardError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TensorBoardError",
    "TensorBoardServer",
    "link_tree",
    "server_command",
    "sweep_stale_workdirs",
]

#: Where the server listens unless told otherwise: this machine only.
DEFAULT_HOST = "localhost"
#: TensorBoard's usual port, what ``satkit tensorboard`` asks for (0 = any free port).
DEFAULT_PORT = 6006

# TensorBoard prints "TensorBoard 2.x at http://HOST:PORT/ (Press CTRL+C to quit)" once bound;
# with --port 0 this line is the only place the chosen port appears.
_SERVING = re.compile(r"TensorBoard \S+ at http://\S+:(\d+)/\S* \(")
_WORKDIR_PREFIX = "satkit-tensorboard-"
_OWNERS = "owners"  # the pids (parent, TensorBoard) that use a work directory

# The launcher TensorBoard runs under: argv = [workdir, parent pid, tensorboard args...].
_CHILD = r"""
import atexit, os, runpy, shutil, signal, sys, threading, time
workdir, parent = sys.argv[1], int(sys.argv[2])
ORPHAN = getattr(signal, "SIGHUP", signal.SIGTERM)  # the parent-death signal
orphan = threading.Event()
def on_orphan(*_):
    # The kernel sends the parent-death signal again each time this process is handed to
    # another dying thread of the parent's: only the first counts, and none may interrupt
    # the clean-up (a second SystemExit inside the rmtree below would cut it short).
    signal.signal(ORPHAN, signal.SIG_IGN)
    if not orphan.is_set():
        orphan.set()
        sys.exit(0)
atexit.register(lambda: orphan.is_set() and shutil.rmtree(workdir, ignore_errors=True))
signal.signal(ORPHAN, on_orphan)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a normal stop; the parent cleans up
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(ORPHAN))  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), ORPHAN)
    threading.Thread(target=watch, daemon=True).start()
if os.getppid() != parent:
    on_orphan()  # the parent died before the signal was armed
sys.argv = ["tensorboard", *sys.argv[3:]]
runpy.run_module("tensorboard.main", run_name="__main__", alter_sys=True)
"""


def server_command(logdir: str | os.PathLike[str], *, host: str = DEFAULT_HOST,
                   port: int = DEFAULT_PORT, reload_interval: float = 5.0,
                   python: str = sys.executable) -> list[str]:
    """The argv that serves ``logdir`` with TensorBoard (no shell, no network beyond ``host``).

    Args:
        logdir: the directory passed as ``--logdir``.
        host: the address to bind; ``localhost`` keeps the server private to this machine.
        port: the port; 0 lets the operating system choose a free one.
        reload_interval: seconds between reloads of the event files; 0 loads once, and then
            the server answers only after everything is loaded (``--reload_task blocking``).
        python: the interpreter to run ``tensorboard.main`` with.

    Returns:
        The command as a list of strings for :class:`subprocess.Popen`.

    Raises:
        ValueError: a negative port or reload interval.
    """
    if port < 0 or reload_interval < 0:
        raise ValueError(f"port and reload_interval must be >= 0, got {port}, {reload_interval}")
    cmd = [python, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host,
           "--port", str(port), "--load_fast=false", f"--reload_interval={reload_interval:g}"]
    if reload_interval == 0:
        cmd.append("--reload_task=blocking")
    return cmd


def link_tree(run_dirs: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str]) -> Path:
    """Make ``root`` a directory of symlinks, one per run directory, named after it.

    Names are the directories' own names, made unique with ``-1``, ``-2``, ... in order.

    Returns:
        ``root``, to pass as ``--logdir``.

    Raises:
        TensorBoardError: a directory does not exist.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for d in run_dirs:
        target = Path(d).expanduser().resolve()
        if not target.is_dir():
            raise TensorBoardError(f"not a directory: {d}")
        base = target.name or "run"
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}-{k}"
        used.add(name)
        (root / name).symlink_to(target, target_is_directory=True)
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_stale_workdirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove the temporary directories of servers whose processes are all gone (killed with
    SIGKILL before they could clean up); returns them.

    Args:
        root: where they live (default: :func:`tempfile.gettempdir`).
    """
    removed = []
    for work in Path(root or tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            pids = [int(p) for p in (work / _OWNERS).read_text().split()]
        except (OSError, ValueError):
            continue  # not ours, or being set up
        if pids and not any(_alive(pid) for pid in pids):
            shutil.rmtree(work, ignore_errors=True)
            removed.append(work)
    return removed


class TensorBoardServer:
    """A TensorBoard subprocess over run directories; a context manager that always stops it.

    Args:
        run_dirs: one or more run or comparison directories (see the module docstring).
        host: the address to bind (default ``localhost``: this machine only).
        port: the port; 0 (the default) picks a free one, read back from TensorBoard.
        reload_interval: seconds between reloads; 0 loads once before answering (tests).
        startup_timeout: seconds to wait for the server to answer HTTP.

    Attributes:
        url: ``http://host:port/`` once started (wildcard hosts are reached via ``localhost``).
        port: the bound port once started.
        process: the :class:`subprocess.Popen`, or None before :meth:`start`.

    Raises:
        TensorBoardError: from :meth:`start`, when a directory is missing, TensorBoard exits
            early (e.g. the port is taken) or does not answer in time; the message ends with
            TensorBoard's own output. The process is stopped before raising.

    Example:
        >>> with TensorBoardServer(["runs/demo"]) as server:  # doctest: +SKIP
        ...     print(server.client().runs())
    """

    def __init__(self, run_dirs: Sequence[str | os.PathLike[str]], *, host: str = DEFAULT_HOST,
                 port: int = 0, reload_interval: float = 5.0,
                 startup_timeout: float = 60.0) -> None:
        if isinstance(run_dirs, (str, os.PathLike)):
            run_dirs = [run_dirs]
        if not run_dirs:
            raise ValueError("TensorBoardServer needs at least one directory")
        self.run_dirs = [Path(d) for d in run_dirs]
        self.host = host
        self.requested_port = port
        self.reload_interval = reload_interval
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.url: str | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None

    def start(self) -> TensorBoardServer:
        """Start TensorBoard and wait until it answers; returns ``self``."""
        if self.process is not None:
            raise TensorBoardError("this server was already started")
        try:
            sweep_stale_workdirs()
            self._workdir = tempfile.TemporaryDirectory(prefix=_WORKDIR_PREFIX,
                                                        ignore_cleanup_errors=True)
            work = Path(self._workdir.name)
            (work / _OWNERS).write_text(f"{os.getpid()}\n")
            logdir = self._logdir(work)
            self._log_path = work / "tensorboard.log"
            cmd = server_command(logdir, host=self.host, port=self.requested_port,
                                 reload_interval=self.reload_interval)
            # The launcher runs `tensorboard.main` in-process, tied to this process's life.
            cmd = [cmd[0], "-c", _CHILD, str(work), str(os.getpid()), *cmd[3:]]
            with open(self._log_path, "wb") as log:
                # The child keeps its own copy of the log's file descriptor.
                self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT)
            (work / _OWNERS).write_text(f"{os.getpid()} {self.process.pid}\n")
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _logdir(self, work: Path) -> Path:
        if len(self.run_dirs) == 1:
            only = self.run_dirs[0].expanduser()
            if not only.is_dir():
                raise TensorBoardError(f"not a directory: {only}")
            if any(only.glob("*/events.out.tfevents*")) or not any(
                    only.glob("events.out.tfevents*")):
                return only.resolve()  # a comparison directory: its runs are named already
        # A run directory holds its event files itself: link it so it shows under its name.
        return link_tree(self.run_dirs, work / "logdir")

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise TensorBoardError(f"TensorBoard exited with status "
                                       f"{self.process.returncode}:\n{self.log_text()}")
            if self.port is None:
                match = _SERVING.search(self.log_text())
                if match:
                    self.port = int(match.group(1))
                    # wildcard hosts listen on loopback too; clients connect there
                    host = "localhost" if self.host in WILDCARDS else self.host
                    if ":" in host and not host.startswith("["):
                        host = f"[{host}]"  # a literal IPv6 address
                    self.url = f"http://{host}:{self.port}/"
            if self.url is not None and self.client().ready():
                return
            if time.monotonic() > deadline:
                raise TensorBoardError(f"TensorBoard did not answer within "
                                       f"{self.startup_timeout:g} s:\n{self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        """What TensorBoard has printed so far (stdout and stderr), or ``""``."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(encoding="utf-8", errors="replace")

    def client(self, timeout: float = 10.0) -> TensorBoardClient:
        """A :class:`TensorBoardClient` for this server (after :meth:`start`)."""
        if self.url is None:
            raise TensorBoardError("the server is not started")
        return TensorBoardClient(self.url, timeout=timeout)

    def wait(self) -> int:
        """Block until TensorBoard exits (use Ctrl-C to stop); returns its exit status."""
        if self.process is None:
            raise TensorBoardError("the server is not started")
        return self.process.wait()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop TensorBoard (SIGTERM, then SIGKILL after ``timeout`` s) and clean up.

        Safe to call more than once, and after a failed start.

        Returns:
            The process's exit status, or None if it never started.
        """
        status = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
                finally:  # also when a second Ctrl-C interrupts the wait
                    if self.process.poll() is None:
                        self.process.kill()
                        self.process.wait()
            status = self.process.returncode
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return status

    def __enter__(self) -> TensorBoardServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
