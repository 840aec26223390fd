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
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

__all__ = ["PINNED_ENV", "QUICK", "STEPS", "assert_same_run", "assert_same_settings", "kill_at",
           "one_line_error", "resume", "satkit_process", "satkit_run", "wait_for"]

#: A small run: 2 epochs of the embedded digits; flushes every 4 steps, a checkpoint per epoch.
QUICK = ["--epochs", "2", "--batch-size", "128", "--lr", "0.05", "--device", "cpu", "--quiet",
         "--flush-every", "4", "--no-figures"]
STEPS = 2 * 11  # 1437 digits in full batches of 128 (drop_last)
TIMINGS = ("seconds", "seconds_per_step", "wall_seconds")

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


def wait_for(flag: Path, proc: subprocess.Popen) -> None:
    """Wait until the process reached its pause point (it creates ``flag`` there)."""
    deadline = time.monotonic() + 600  # generous: the machine may be busy
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pause point was never reached"
        time.sleep(0.05)


def kill_at(point: str, out: Path, flag: Path, *args: str) -> None:
    """Start ``satkit train QUICK ARGS --out OUT``, SIGKILL it at ``point`` (``POINT:N``)."""
    proc = satkit_process("train", *QUICK, *args, "--out", str(out), pause=f"{point}:{flag}")
    wait_for(flag, proc)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    flag.unlink(missing_ok=True)


def one_line_error(err: str, *needles: str) -> str:
    """The last line of ``err`` is satkit's one-line message and holds every needle."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("satkit"), err
    for needle in needles:
        assert needle in last, (needle, err)
    return last


def assert_same_run(a: Path, b: Path, steps: int = STEPS) -> None:
    """Run ``b`` equals run ``a`` (timings aside), both made under the same settings."""
    assert_same_settings(a, b)
    pd.testing.assert_frame_equal(pd.read_parquet(a / "metrics.parquet"),
                                  pd.read_parquet(b / "metrics.parquet"),
                                  check_exact=False, rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(pd.read_parquet(a / "samples.parquet"),
                                  pd.read_parquet(b / "samples.parquet"),
                                  check_exact=False, rtol=1e-5)
    ea, eb = (pd.read_csv(p / "epochs.csv").drop(columns="seconds") for p in (a, b))
    pd.testing.assert_frame_equal(ea, eb, check_exact=False, rtol=1e-5)
    sa, sb = ({k: v for k, v in json.loads((p / "summary.json").read_text()).items()
               if k not in TIMINGS} for p in (a, b))
    assert sb == pytest.approx(sa)
    assert sb["finished"] is True and sb["steps"] == steps
    assert not list(b.glob(".*.tmp")) and not list(b.glob(".*/.*.tmp"))


def resume(out: Path, *args: str) -> None:
    """``satkit train QUICK ARGS --out OUT --resume`` in a pinned child; it must succeed."""
    proc = satkit_process("train", *QUICK, *args, "--out", str(out), "--resume")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
