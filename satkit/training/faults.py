"""Fault injection for the test suite: stop the process at a named point so a test can kill it
exactly there (e.g. with SIGKILL), without guessing a delay.

Set ``SATKIT_FAULT_PAUSE=POINT:N:FLAG`` in a training process's environment. When the process
reaches the N-th occurrence of POINT, it creates the file FLAG and waits while FLAG exists:

* ``step``: just before optimizer step N (steps count from 0);
* ``checkpoint``: halfway through writing the N-th checkpoint of this process (from 1),
  with half of the temporary file on disk.

The test waits for FLAG, then kills the process, or deletes FLAG to let it go on. Unset (the
default), the trainer pays one ``None`` check per step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "Pause", "pause_from_env"]

#: The environment variable read by :func:`pause_from_env`.
ENV = "SATKIT_FAULT_PAUSE"
_POINTS = ("step", "checkpoint")


@dataclass(frozen=True)
class Pause:
    """Wait at the ``n``-th occurrence of ``point`` while ``flag`` exists (see the module)."""

    point: str
    n: int
    flag: Path

    def at(self, point: str, n: int, before: Callable[[], None] | None = None) -> None:
        """Pause here if this is the configured point and occurrence (after ``before()``,
        e.g. letting writes already under way finish, so a kill tests what is promised)."""
        if point != self.point or n != self.n:
            return
        if before is not None:
            before()
        self.flag.touch()
        while self.flag.exists():
            time.sleep(0.01)


def pause_from_env() -> Pause | None:
    """The :class:`Pause` that ``$SATKIT_FAULT_PAUSE`` asks for, or None when it is unset.

    Raises:
        ValueError: the variable is set but not ``POINT:N:FLAG``.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return None
    point, _, rest = spec.partition(":")
    n, _, flag = rest.partition(":")
    if point not in _POINTS or not n.isdigit() or not flag:
        raise ValueError(f"{ENV} must be POINT:N:FLAG with POINT in {_POINTS}, got {spec!r}")
    return Pause(point, int(n), Path(flag))
