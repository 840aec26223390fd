"""Run directories never overwrite; checkpoints are atomic and fail loudly when corrupt."""

import pytest
import torch

from satkit.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from satkit.training.run_dir import RunDirError, create_run_dir, write_json


def test_new_run_never_overwrites(tmp_path):
    first = create_run_dir(tmp_path / "run")
    (first / "summary.json").write_text("{}")
    second = create_run_dir(tmp_path / "run")
    third = create_run_dir(tmp_path / "run")
    assert (first.name, second.name) == ("run", "run-1")
    (second / "x").write_text("")
    assert third.name == "run-1"  # empty dirs are reused, non-empty ones never
    assert create_run_dir(tmp_path / "run").name == "run-2"


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(RunDirError, match="checkpoint.pt"):
        create_run_dir(tmp_path / "run", resume=True)


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 3, "w": torch.ones(2), "rng": torch.get_rng_state()})
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)
    torch.save({"hello": 1}, path)
    with pytest.raises(CheckpointError, match="not a satkit checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp files left


def test_write_json_is_atomic(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    assert len(list(tmp_path.iterdir())) == 1
