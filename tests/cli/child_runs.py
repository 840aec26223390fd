"""``satkit`` as a user runs it, in a child process whose floats are pinned.

Two runs compared float for float must be made under the same settings: the same device, the
same deterministic flags and the same number of threads (a reduction split over two threads
adds in another order than over one: by step 20 the loss differs in its 4th digit). Every run a
test compares is therefore made here, in a child process with one intra-op and one inter-op
thread, whatever the machine's core count or the test process's own settings; each side of a
comparison records its thread count in ``config.json`` (``threads``), and
:func:`assert_same_settings` checks it before any float is compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["PINNED_ENV", "assert_same_settings", "satkit_process", "satkit_run"]

#: What decides a CPU run's floats besides its config: one thread for every thread pool.
PINNED_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "PYTHONUNBUFFERED": "1"}


def satkit_process(*args: str, pause: str | None = None, **kw) -> subprocess.Popen:
    """Start ``python -m satkit ARGS`` with :data:`PINNED_ENV` (and ``SATKIT_FAULT_PAUSE``)."""
    env = {**os.environ, **PINNED_ENV, **kw.pop("env", {})}
    env.pop("SATKIT_FAULT_PAUSE", None)
    if pause is not None:
        env["SATKIT_FAULT_PAUSE"] = pause
    return subprocess.Popen([sys.executable, "-m", "satkit", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def satkit_run(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m satkit ARGS`` to its end in a pinned child process."""
    proc = satkit_process(*args, **kw)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_same_settings(*runs: Path) -> None:
    """The runs were made on the same device with the same thread count (``config.json``)."""
    seen = {(c["device"], c["threads"]) for c in
            (json.loads((Path(r) / "config.json").read_text()) for r in runs)}
    assert len(seen) == 1, f"runs made under different settings (device, threads): {seen}"
