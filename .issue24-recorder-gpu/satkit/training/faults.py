"""Fault injection for the test suite: stop the process at a named point so a test can kill it
exactly there (e.g. with SIGKILL), without guessing a delay.

Set ``SATKIT_FAULT_PAUSE=POINT:N:FLAG`` in a training process's environment. When the process
reaches the N-th occurrence of POINT, it creates the file FLAG and waits while FLAG exists.
Occurrences are counted over the whole process (every run of a ``compare``):

* ``step``: just before the process's optimizer step N, counted from 0 (in a fresh single
  run, step N);
* ``checkpoint``: halfway through writing the process's N-th checkpoint (from 1), with half
  of the temporary file on disk;
* ``run``: before a comparison starts its N-th run (from 1);
* ``figures``: before the N-th dashboard figure is drawn (from 1), after the run (or every run
  of a comparison) was written.

The test waits for FLAG, then kills the process or sends it a signal, or deletes FLAG to let it
go on. Unset (the default), the trainer pays one ``None`` check per step.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "Pause", "pause_from_env"]

#: The environment variable read by :func:`pause_from_env`.
ENV = "SATKIT_FAULT_PAUSE"
_POINTS = ("step", "checkpoint", "run", "figures")
#: Occurrences of each point so far in this process (counted only while a pause is set).
_REACHED: Counter[str] = Counter()


@dataclass(frozen=True)
class Pause:
    """Wait at the ``n``-th occurrence of ``point`` while ``flag`` exists (see the module)."""

    point: str
    n: int
    flag: Path

    def at(self, point: str, before: Callable[[], None] | None = None) -> None:
        """Count an occurrence of ``point``; pause here if it is the configured one (after
        ``before()``, e.g. letting writes already under way finish, so a kill tests what is
        promised)."""
        n = _REACHED[point] + (point != "step")  # steps from 0, the other points from 1
        _REACHED[point] += 1
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
