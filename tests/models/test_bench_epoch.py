"""benchmarks/bench_epoch.py runs (a tiny epoch) and prints its figures; no timing asserted."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_epoch_runs_a_tiny_epoch():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_epoch.py"), "--samples", "64",
         "--batch-size", "32", "--device", "cpu"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "small-cnn on cpu" in out and "64 images, 2 steps" in out
    assert "per 60,000 MNIST images" in out and "steps/s" in out
    assert "target: small-cnn <= 180 s per MNIST epoch on 2 CPU cores" in out
