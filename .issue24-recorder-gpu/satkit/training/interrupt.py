"""Turn SIGINT/SIGTERM into a flag the training loop polls, so it can save before exiting."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

__all__ = ["GracefulStop", "Interrupted", "StopRequested"]


class StopRequested(Exception):
    """Raised by the trainer after it saved its state, when a stop signal arrived.

    Attributes:
        signum: the signal.
        run_dir: the run directory holding the saved state (set by
            :func:`satkit.training.train`; None from a bare :class:`Trainer`).
    """

    def __init__(self, signum: int, run_dir: Path | None = None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.run_dir = run_dir


class Interrupted(Exception):
    """A stop outside the trainer's own (a second Ctrl-C, one between the runs of a
    comparison or while figures are drawn); ``str()`` says what was saved and how to continue.

    Attributes:
        run_dir: the run (or comparison) directory concerned, or None.
    """

    def __init__(self, message: str, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class GracefulStop:
    """Context manager: while active, SIGINT/SIGTERM set :attr:`signum` instead of killing.

    The first signal is acknowledged on stderr; a second one of the same kind restores the
    default behaviour (so a user can still force-quit). Outside the main thread it does
    nothing (signals can't be caught there).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        again = "press Ctrl-C again" if signum == signal.SIGINT else "send it again"
        notice = (f"\nsatkit: {signal.Signals(signum).name}: stopping after this step and "
                  f"saving the state ({again} to stop at once)\n")
        try:  # a raw write: the main thread may be inside a print to stderr right now
            os.write(2, notice.encode())
        except OSError:
            pass

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
