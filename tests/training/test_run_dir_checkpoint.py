"""Run directories: claimed atomically, never shared; files atomic and with the umask's modes;
checkpoints fail loudly when corrupt or incomplete."""

import errno
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from satkit.run_dir import (
    CLAIM,
    RunDirError,
    RunLockedError,
    RunWriteError,
    atomic_write_bytes,
    claim_run_dir,
    describe_os_error,
    lock_run_dir,
    release_run_dir,
    sweep_temporary,
    write_json,
)
from satkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from satkit.training.config import TrainConfig
from satkit.training.naming import default_run_dir, run_name


def create_run_dir(path, **kw):
    return claim_run_dir(path, **kw).path  # the lock is let go of at once


def test_new_run_never_shares_a_directory(tmp_path):
    first = create_run_dir(tmp_path / "run")
    second = create_run_dir(tmp_path / "run")  # first is claimed, though still empty
    assert (first.name, second.name) == ("run", "run-1")
    assert [p.name for p in first.iterdir()] == [CLAIM]
    (tmp_path / "mine").mkdir()  # an empty directory nobody claimed is taken
    assert create_run_dir(tmp_path / "mine").name == "mine"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("")  # anything in it: never taken
    (tmp_path / "file").write_text("")
    assert create_run_dir(tmp_path / "used").name == "used-1"
    assert create_run_dir(tmp_path / "file").name == "file-1"


def test_concurrent_claims_get_distinct_directories(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: create_run_dir(tmp_path / "run"), range(16)))
    assert len({d.name for d in dirs}) == 16
    (tmp_path / "empty").mkdir()  # an existing empty directory, the racy case
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: create_run_dir(tmp_path / "empty"), range(16)))
    assert len({d.name for d in dirs}) == 16


def test_claims_are_never_made_over_something_else(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    (tmp_path / "run-1").write_text("a file, not a directory")
    (tmp_path / "run-2").mkdir()  # empty: claimable
    assert create_run_dir(tmp_path / "run") == tmp_path / "run-2"
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"
    assert create_run_dir(tmp_path / "run") == tmp_path / "run-3"
    assert create_run_dir(tmp_path / "deep" / "er" / "run") == tmp_path / "deep" / "er" / "run"


def test_release_removes_only_an_untouched_claim(tmp_path):
    lock = claim_run_dir(tmp_path / "run")
    release_run_dir(lock)
    assert not lock.path.exists() and not lock.held
    lock = claim_run_dir(tmp_path / "run")
    (lock.path / "config.json").write_text("{}")
    release_run_dir(lock)
    assert (lock.path / "config.json").exists() and not lock.held


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        create_run_dir(tmp_path / "run", resume=True)
    (tmp_path / "run").mkdir()
    with pytest.raises(RunDirError, match="holds no checkpoint.pt"):
        create_run_dir(tmp_path / "run", resume=True)


def test_a_locked_run_directory_names_its_holder(tmp_path):
    held = claim_run_dir(tmp_path / "run")
    (held.path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(RunLockedError) as exc:
        claim_run_dir(held.path, resume=True)  # another open file: flock refuses, same process
    assert exc.value.pid == os.getpid() and f"(pid {os.getpid()})" in str(exc.value)
    assert str(held.path) in str(exc.value)
    held.release()
    with lock_run_dir(held.path) as again:  # free once let go of
        assert again.held
    assert not again.held


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run = claim_run_dir(tmp_path / "run")
    run.release()
    code = ("import sys, time\nfrom satkit.run_dir import lock_run_dir\n"
            "lock = lock_run_dir(sys.argv[1])\nprint('locked', flush=True)\ntime.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(run.path)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as exc:
            lock_run_dir(run.path)
        assert exc.value.pid == child.pid
    finally:
        child.kill()  # SIGKILL: no handler runs, the kernel drops the lock
        child.wait(timeout=60)
    with lock_run_dir(run.path) as lock:
        assert lock.held


def test_unwritable_parent_is_one_clear_error(tmp_path, monkeypatch):
    def refuse(path, mode=0o777):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "mkdir", refuse)
    with pytest.raises(RunWriteError) as exc:
        create_run_dir(tmp_path / "ro" / "run")
    assert str(exc.value) == f"cannot create the run directory {tmp_path / 'ro' / 'run'}: " \
                             "read-only file system"


def test_run_names_follow_the_method_as_applied():
    assert run_name(TrainConfig(alpha2=0.1)) == "noisy-softmax_alpha2=0.1_seed=0"
    assert run_name(TrainConfig(alpha2=0.5, noise="free", seed=1)) == \
        "noisy-softmax_alpha2=0.5_noise=free_seed=1"
    assert run_name(TrainConfig(alpha2=0.0)) == "softmax_seed=0"
    assert run_name(TrainConfig(loss="label-smoothing", alpha2=0.1)) == "label-smoothing_seed=0"
    assert str(default_run_dir(TrainConfig(loss="focal"))) == os.path.join(
        "runs", "digits_focal_seed=0")
    from satkit.training.compare import run_name as old_path
    from satkit.training.run import default_run_dir as old_dir

    assert old_path is run_name and old_dir is default_run_dir


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_files_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"x": 1})
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
        (tmp_path / "plain").write_text("")  # what any other writer of the run gets
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("summary.json", "checkpoint.pt", "plain"), 0o666 & ~umask)


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 3, "w": torch.ones(2), "rng": torch.get_rng_state()})
    state = load_checkpoint(path, required=("step", "w"))
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    torch.save({"hello": 1}, path)
    with pytest.raises(CheckpointError, match="not a satkit checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "satkit-checkpoint-1"}, path)  # only its format key
    with pytest.raises(CheckpointError, match=r"incomplete \(no step, model\)"):
        load_checkpoint(path, required=("step", "model"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp files left


def test_failed_write_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as exc:
        save_checkpoint(path, {"step": 2, "w": torch.ones(1000)})
    monkeypatch.undo()
    assert exc.value.filename == str(path)
    assert describe_os_error(exc.value) == f"no space left on device while writing {path}"
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_killed_writer_leaves_only_a_hidden_temp_file_swept_on_resume(tmp_path):
    class Killed(BaseException):
        pass

    def die(tmp):
        assert tmp.name.startswith(".summary.json.") and tmp.name.endswith(".tmp")
        os.link(tmp, tmp.with_name(".summary.json.1.x.tmp"))  # what a SIGKILL would leave
        raise Killed

    with pytest.raises(Killed):
        atomic_write_bytes(tmp_path / "summary.json", b"{}" * 100, midway=die)
    assert [p.name for p in tmp_path.iterdir()] == [".summary.json.1.x.tmp"]
    assert [p.name for p in sweep_temporary(tmp_path)] == [".summary.json.1.x.tmp"]
    assert list(tmp_path.iterdir()) == []


def test_write_json_is_atomic(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    assert len(list(tmp_path.iterdir())) == 1
