"""Fault injection: every failure path of ``satkit`` ends in its exit status and one clear line
(no traceback), and leaves the run directory as promised: nothing half-written looks complete,
what was flushed stays readable, and ``--resume`` reproduces the uninterrupted run.

Kill points are reached deterministically through ``SATKIT_FAULT_PAUSE`` (the process waits at
the point until the test kills it); a full disk is a small tmpfs when this machine lets us
mount one (else an injected ``ENOSPC``), a read-only directory a read-only tmpfs (else an
injected ``EROFS``: root ignores permission bits).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from child_runs import (
    QUICK,
    STEPS,
    assert_same_run,
    kill_at,
    one_line_error,
    resume,
    satkit_process,
    wait_for,
)

from satkit.analysis import load_run
from satkit.cli import main
from satkit.training.checkpoint import load_checkpoint
from satkit.training.compare import unfinished_runs

_satkit = satkit_process  # a child process with one thread: every compared run is made so
_one_line_error, _assert_same_run, _resume = one_line_error, assert_same_run, resume


def _kill_at(point: str, out: Path, tmp_path: Path) -> None:
    kill_at(point, out, tmp_path / "paused")


def _visible(run: Path) -> set[str]:
    return {p.name for p in run.iterdir() if not p.name.startswith(".")}


# -- SIGKILL, SIGTERM ---------------------------------------------------------------------------

def test_sigkill_before_the_first_flush(tmp_path, capsys):
    out = tmp_path / "run"
    _kill_at("step:2", out, tmp_path)
    assert json.loads((out / "config.json").read_text())["epochs"] == 2  # complete, valid
    assert "summary.json" not in _visible(out) and "checkpoint.pt" not in _visible(out)
    assert load_run(out).metrics.empty  # readable: nothing recorded yet
    assert unfinished_runs([out]) == ["run (no summary.json)"]
    assert main(["plot", str(out)]) == 1
    _one_line_error(capsys.readouterr().err, "nothing recorded yet", str(out))
    assert main(["train", *QUICK, "--out", str(out), "--resume"]) == 2
    _one_line_error(capsys.readouterr().err, "holds no checkpoint.pt")


def test_sigkill_mid_epoch_keeps_the_flushed_rows_and_resume_reproduces(tmp_path, reference,
                                                                        capsys):
    out = tmp_path / "run"
    _kill_at("step:18", out, tmp_path)  # epoch 1; flushes at steps 4, 8, 11 (epoch end), 15
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 11
    assert load_run(out).metrics["step"].tolist() == list(range(15))
    assert len(pd.read_csv(out / "epochs.csv")) == 1
    assert "summary.json" not in _visible(out)
    assert main(["plot", str(out), "--out", str(tmp_path / "partial.png")]) == 0
    capsys.readouterr()
    _resume(out)
    _assert_same_run(reference, out)


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, reference):
    out = tmp_path / "run"
    _kill_at("checkpoint:2", out, tmp_path)  # halfway through the end-of-run checkpoint
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 11  # the previous one, whole
    assert [p.name.startswith(".checkpoint.pt.") for p in out.glob(".*.tmp")] == [True]
    assert "summary.json" not in _visible(out)  # not finished, and does not look it
    _resume(out)
    _assert_same_run(reference, out)


def test_sigterm_saves_says_unfinished_and_resume_reproduces(tmp_path, reference):
    out, flag = tmp_path / "run", tmp_path / "paused"
    proc = _satkit("train", *QUICK, "--out", str(out), pause=f"step:18:{flag}")
    wait_for(flag, proc)
    proc.send_signal(signal.SIGTERM)
    flag.unlink()  # let it go on: it stops after this step, saved
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    _one_line_error(err, "SIGTERM", f"--out {out} --resume")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["finished"], summary["epochs"], summary["epochs_planned"],
            summary["steps"]) == (False, 1, 2, 19)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 19
    _resume(out)
    _assert_same_run(reference, out)


# -- two runs, one --out --------------------------------------------------------------------------

def test_two_runs_on_one_out_get_their_own_directories(tmp_path):
    out = tmp_path / "run"
    procs = [_satkit("train", *QUICK, "--out", str(out), preexec_fn=lambda: os.umask(0o027))
             for _ in range(2)]
    printed = []
    for proc in procs:
        stdout, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        printed += [line.split(": ", 1)[1] for line in stdout.splitlines()
                    if line.startswith("run directory: ")]
    assert sorted(printed) == [str(out), f"{out}-1"]
    for run in (out, Path(f"{out}-1")):
        assert json.loads((run / "summary.json").read_text())["finished"] is True
        assert pd.read_parquet(run / "metrics.parquet")["step"].tolist() == list(range(STEPS))
        for name in ("config.json", "summary.json", "epochs.csv", "checkpoint.pt",
                     "metrics.parquet"):
            assert stat.S_IMODE((run / name).stat().st_mode) == 0o640, name  # the umask's


# -- the disk ------------------------------------------------------------------------------------

def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system (a checkpoint of the digits model needs 1.5 MiB), or None."""
    path = tmp_path / "small"
    if not _mount_tmpfs(path, "size=1m"):
        yield None
        return
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def _check_full_disk_run(run: Path, err: str) -> None:
    _one_line_error(err, "no space left on device while writing", f"{run}/checkpoint.pt")
    assert "checkpoint.pt" not in _visible(run) and not list(run.glob(".*.tmp"))
    assert load_run(run).metrics["step"].tolist() == list(range(11))  # flushed rows stay
    assert json.loads((run / "summary.json").read_text())["finished"] is False


def test_disk_full_is_one_line_naming_the_space_and_the_file(small_disk, capsys):
    if small_disk is None:
        pytest.skip("cannot mount a tmpfs here; test_disk_full_injected covers it")
    run = small_disk / "run"
    assert main(["train", *QUICK, "--out", str(run)]) == 1
    _check_full_disk_run(run, capsys.readouterr().err)


def test_disk_full_injected(tmp_path, monkeypatch, capsys):
    import satkit.training.checkpoint as checkpoint

    def full(path, data, midway=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(run)]) == 1
    _check_full_disk_run(run, capsys.readouterr().err)


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A directory nobody can write into: a read-only tmpfs, else injected EROFS."""
    path = tmp_path / "ro"
    if _mount_tmpfs(path, "ro,size=64k"):
        yield path
        subprocess.run(["umount", "-l", str(path)], check=False)
        return
    path.mkdir(exist_ok=True)
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(name):
        if str(name).startswith(str(path) + os.sep):
            raise OSError(errno.EROFS, "Read-only file system", str(name))

    def ro_open(name, flags, mode=0o777, *, dir_fd=None):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(name)
        return real_open(name, flags, mode, dir_fd=dir_fd)

    def ro_mkdir(name, mode=0o777, *, dir_fd=None):
        refuse(name)
        return real_mkdir(name, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    yield path


def test_read_only_out_is_one_line_and_writes_nothing(read_only, reference, capsys):
    assert main(["train", *QUICK, "--out", str(read_only / "run")]) == 1
    _one_line_error(capsys.readouterr().err, "cannot create the run directory",
                    str(read_only / "run"), "read-only file system")
    for command, name in (("plot", "fig.png"), ("report", "report.md")):
        assert main([command, str(reference), "--out", str(read_only / name)]) == 1
        _one_line_error(capsys.readouterr().err, "--out", "read-only file system",
                        str(read_only / name))
    assert list(read_only.iterdir()) == []


# -- diverging runs -------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", [["--lr", "1e30"], ["--alpha2", "1e300"]])
def test_diverging_run_ends_with_the_trainers_message(tmp_path, flag, capsys):
    run = tmp_path / "run"
    assert main(["train", *QUICK, *flag, "--out", str(run)]) == 1
    _one_line_error(capsys.readouterr().err, "non-finite", "Lower the learning rate or alpha2")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False and summary["epochs"] == 0
    steps = load_run(run).metrics["step"].tolist()
    assert steps == list(range(len(steps))) and steps  # what was recorded was flushed


# -- bad arguments: exit 2, one line, nothing written ----------------------------------------

@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--model", "nonexistent"], ["argument --model", "digits-cnn"]),
        (["--device", "tpu"], ["argument --device", "cuda:1"]),
        (["--device", "cuda:99"], ["argument --device", "not available"]),
        (["--seed", "99999999999999999999"], ["argument --seed", "4294967295"]),
        (["--config", "{dir}"], ["--config", "is a directory"]),
        (["--config", "{latin1}"], ["--config", "UTF-8"]),
        (["--dataset", "mnist", "--data-dir", "{file}"], ["argument --data-dir", "is a file"]),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_leave_nothing(tmp_path, argv, needles, capsys):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "latin1.toml").write_bytes("epochs = 1 # \u00e9t\u00e9\n".encode("latin-1"))
    subs = {"{dir}": str(tmp_path), "{latin1}": str(tmp_path / "latin1.toml"),
            "{file}": str(tmp_path / "a-file")}
    argv = [subs.get(a, a) for a in argv]
    assert main(["train", *QUICK, *argv, "--out", str(tmp_path / "run")]) == 2
    _one_line_error(capsys.readouterr().err, *needles)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_exits_2(tmp_path, capsys):
    assert main(["train", *QUICK, "--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    _one_line_error(capsys.readouterr().err, "argument --device", "not available",
                    "--device cpu")
    assert not (tmp_path / "run").exists()


def test_checkpoint_holding_only_its_format_key_exits_1(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "satkit-checkpoint-1"}, run / "checkpoint.pt")
    assert main(["train", *QUICK, "--out", str(run), "--resume"]) == 1
    _one_line_error(capsys.readouterr().err, "incomplete", "checkpoint.pt")


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.parametrize("tau", ["5", "nan", "0", "x"])
def test_tau_outside_0_1_exits_2_naming_it(reference, command, tau, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, str(reference), "--tau", tau])
    assert exc.value.code == 2
    assert "argument --tau" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "name"), [("plot", "fig.png"), ("report", "r.md")])
def test_out_that_is_a_directory_exits_2(reference, tmp_path, command, name, capsys):
    (tmp_path / name).mkdir()
    assert main([command, str(reference), "--out", str(tmp_path / name)]) == 2
    _one_line_error(capsys.readouterr().err, "--out", "is a directory")
