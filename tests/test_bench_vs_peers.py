"""benchmarks/bench_vs_peers.py runs at tiny sizes and says what it skipped; its install lists
(script, Makefile, pyproject's `bench` extra) agree. No timing is asserted."""

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_vs_peers.py"
CONFIGS = ("satkit recorder", "hand logging", "cockpit economy", "cockpit business")


def _script_list(name: str) -> list[str]:
    for node in ast.parse(SCRIPT.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{name} not in {SCRIPT.name}")


def _makefile_list(name: str) -> list[str]:
    match = re.search(rf"^{name}\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"{name} not in the Makefile"
    return shlex.split(match.group(1))


def test_install_lists_agree():
    peers, deps = _script_list("PEERS"), _script_list("PEER_DEPS")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bench"]
    assert _makefile_list("BENCH_PEERS") == peers
    assert _makefile_list("BENCH_PEER_DEPS") == deps
    assert extra == [*peers, *deps]
    assert "--no-deps $(BENCH_PEERS)" in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_tiny_run_prints_the_table_and_what_it_skipped(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--steps", "1", "--warmup", "1",
         "--batch-size", "4", "--models", "cnn"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert "bare ms/step" in header and all(c in header for c in CONFIGS)
    row = next(line for line in out.splitlines() if line.startswith("cnn ("))
    cells = row.split(")", 1)[1].split()  # bare ms/step, then one ratio (or n/a) per column
    assert len(cells) == 1 + len(CONFIGS) and all(float(c) > 0 for c in cells[:3])
    assert "2 steps per configuration" in out
    assert "satkit recorder 2 rows in its Parquet table" in out
    assert "hand logging 6 scalars to TensorBoard" in out
    if importlib.util.find_spec("cockpit") is None or importlib.util.find_spec("backpack") is None:
        assert cells[3:] == ["n/a", "n/a"]
        assert "Skipped columns: cockpit economy, cockpit business" in out
        assert "make bench-peers" in out and "pip install --no-deps" in out
    else:  # a venv where `make bench-peers` installed them
        assert "n/a" not in cells and "Skipped columns" not in out
        assert "cockpit economy 2 steps in its output" in out
