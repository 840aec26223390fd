"""Fixtures of the command-line tests: the uninterrupted reference run."""

from __future__ import annotations

from pathlib import Path

import pytest
from child_runs import QUICK, satkit_run


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted QUICK run, made under the settings of the runs compared with it (a
    pinned child process)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = satkit_run("train", *QUICK, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out
