"""satkit.analysis and the table sink need no torch, for real: imported in a fresh interpreter
where torch cannot be imported (a meta-path finder refuses it), with the package's
``__init__`` files and everything they import included."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_BLOCK_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this test (importing {name})")
        return None

sys.meta_path.insert(0, NoTorch())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK_TORCH + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_blocker_blocks_torch():
    # the other direction: the same interpreter set-up does refuse torch
    result = _run("import satkit.functional")
    assert result.returncode != 0
    assert "torch is blocked" in result.stderr


def test_analysis_and_table_sink_import_and_work_without_torch(tmp_path):
    path = str(tmp_path / "metrics.parquet")
    result = _run(
        "import satkit, satkit.analysis, satkit.sinks, satkit.sinks.table\n"
        "from satkit.analysis import load_run, load_runs, report, saturation_summary\n"
        "from satkit.sinks import TableSink, read_table\n"
        "from satkit.hooks import RecorderOptions\n"
        "assert RecorderOptions(every=2).every == 2\n"
        f"sink = TableSink({path!r})\n"
        "sink.write([{'step': 0, 'loss': 1.5}, {'step': 1, 'loss': 0.5}])\n"
        "sink.close()\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules)\n"
        f"print(read_table({path!r})['loss'].tolist())\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[1.5, 0.5]"
