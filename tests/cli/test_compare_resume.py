"""``satkit compare --resume`` continues a comparison where it stopped: finished runs kept
untouched, the interrupted one resumed, the missing ones trained, and the same tables as an
uninterrupted comparison (timings aside). Every run compared is made in a pinned child."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
from child_runs import assert_same_run, one_line_error, satkit_process, satkit_run, wait_for

# Four runs of one epoch, five steps each (1437 digits in full batches of 256).
GRID = ["compare", "--alpha2", "0", "0.1", "--seeds", "0", "1", "--epochs", "1",
        "--batch-size", "256", "--lr", "0.05", "--device", "cpu", "--quiet", "--flush-every", "2",
        "--no-figures"]
RUNS = ["softmax_seed=0", "noisy-softmax_alpha2=0.1_seed=0", "softmax_seed=1",
        "noisy-softmax_alpha2=0.1_seed=1"]
TIMINGS = ("seconds", "seconds_per_step", "wall_seconds", "cost")


def _stop(out: Path, tmp_path: Path, pause: str, how: signal.Signals,
          *args: str) -> tuple[int, str]:
    flag = tmp_path / "paused"
    proc = satkit_process(*GRID, *args, "--out", str(out), pause=f"{pause}:{flag}")
    wait_for(flag, proc)
    proc.send_signal(how)
    if how != signal.SIGKILL:
        flag.unlink()  # it stops after this step, saved
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def _without_timings(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table.drop(columns=[c for c in table.columns if c in TIMINGS or "second" in c])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "cmp"
    done = satkit_run(*GRID, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_compare_resume_keeps_resumes_and_trains_to_the_uninterrupted_tables(uninterrupted,
                                                                             tmp_path):
    out = tmp_path / "cmp"
    # 1. Ctrl-C in the third run (process step 12 = its step 2): it is saved, two are complete
    code, err = _stop(out, tmp_path, "step:12", signal.SIGINT)
    assert code == 130, err
    one_line_error(err, "2 of the comparison's 4 runs are complete", f"--out {out} --resume")
    kept = {name: (out / name / "summary.json").read_bytes() for name in RUNS[:2]}
    mtimes = {name: (out / name / "metrics.parquet").stat().st_mtime_ns for name in RUNS[:2]}
    # 2. the same command again, without --resume: a new comparison, and the hint
    flag = tmp_path / "paused"
    proc = satkit_process(*GRID, "--out", str(out), pause=f"step:0:{flag}")
    note = proc.stderr.readline()
    assert "holds an earlier comparison" in note and "--resume" in note, note
    proc.kill()
    proc.communicate(timeout=60)
    # 3. --resume with another grid is refused, naming it
    other = GRID.copy()
    other[other.index("--seeds") + 2] = "2"
    refused = satkit_run(*other, "--out", str(out), "--resume")
    assert refused.returncode == 2
    one_line_error(refused.stderr, "another grid", "seeds: [0, 1]", "[0, 2]")
    # 4. --resume, killed in the fourth run before its first checkpoint (process step 2 + 3)
    code, err = _stop(out, tmp_path, "step:5", signal.SIGKILL, "--resume")
    assert code == -signal.SIGKILL, err
    assert not (out / RUNS[3] / "checkpoint.pt").exists()
    # 5. --resume again: the fourth run is trained again from the start, the comparison written
    done = satkit_run(*GRID, "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert f"{out / RUNS[3]} was stopped before its first checkpoint" in done.stderr
    for name in RUNS[:2]:  # untouched
        assert (out / name / "summary.json").read_bytes() == kept[name]
        assert (out / name / "metrics.parquet").stat().st_mtime_ns == mtimes[name]
    for name in RUNS:
        assert_same_run(uninterrupted / name, out / name, steps=5)
    for table in ("comparison.csv",):
        pd.testing.assert_frame_equal(_without_timings(uninterrupted / table),
                                      _without_timings(out / table), check_exact=False,
                                      rtol=1e-5)
    assert json.loads((out / "compare.json").read_text())["runs"] == RUNS
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("cmp")) == \
        ["cmp", "cmp-1"]  # step 2's new comparison went beside it


def test_resume_of_a_directory_without_a_comparison_exits_2(tmp_path):
    (tmp_path / "cmp").mkdir()
    done = satkit_run(*GRID, "--out", str(tmp_path / "cmp"), "--resume")
    assert done.returncode == 2
    one_line_error(done.stderr, "--resume", "holds no compare.json")


@pytest.mark.parametrize(("point", "says"), [
    ("run:2", "between runs; 1 of its 2 runs are complete"),
    # with --figures each run draws its dashboard (figures 1 and 2), then the comparison (3)
    ("figures:3", "while writing its tables and figure; every run is complete"),
])
def test_ctrl_c_outside_a_run_says_what_the_comparison_kept(tmp_path, point, says):
    out, flag = tmp_path / "cmp", tmp_path / "paused"
    two_runs = ["compare", "--alpha2", "0", "0.1", "--epochs", "1", "--batch-size", "512",
                "--device", "cpu", "--quiet", "--figures"]
    proc = satkit_process(*two_runs, "--out", str(out), pause=f"{point}:{flag}")
    wait_for(flag, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    one_line_error(err, f"comparison {out} interrupted {says}", f"--out {out} --resume")
    assert "nothing was saved" not in err
