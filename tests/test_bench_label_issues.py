"""benchmarks/bench_label_issues.py runs at a tiny size and prints its table (cleanlab rows
when cleanlab is installed, n/a otherwise); its install lists (script, Makefile, pyproject's
`bench-labels` extra) agree. No timing is asserted."""

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
SCRIPT = ROOT / "benchmarks" / "bench_label_issues.py"


def test_install_lists_agree():
    script = next(ast.literal_eval(node.value) for node in ast.parse(SCRIPT.read_text()).body
                  if isinstance(node, ast.Assign) and [t.id for t in node.targets]
                  == ["LABEL_PEERS"])
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^BENCH_LABELS\s*:=(.*)$", makefile, re.MULTILINE)
    assert match and shlex.split(match.group(1)) == list(script)
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["bench-labels"]
    assert extra == list(script)
    assert "benchmarks/bench_label_issues.py" in makefile


@pytest.mark.slow
def test_tiny_run_prints_the_table(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--epochs", "1", "--folds", "2", "--noise",
         "pairs:0.2", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 20% pairs")]
    scores = [row.split("|")[3].strip() for row in rows]
    assert scores[:5] == ["confidence", "aum", "forgetting", "variability", "never_saturated"]
    if importlib.util.find_spec("cleanlab") is not None:
        assert scores[5:] == ["get_label_quality_scores", "find_label_issues"]
        assert "vs cleanlab" in proc.stdout and "1 vs 2 trainings" in proc.stdout
    else:
        assert "cleanlab: n/a" in proc.stdout
    assert out.read_text().startswith("| noise |")
