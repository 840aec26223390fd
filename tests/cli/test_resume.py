"""``--resume`` continues the same run or refuses: changed settings, a second process on the
same directory and impossible checkpoints are refused with one line, leaving the directory as
it was; what may differ (where output goes, more epochs) is accepted."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from child_runs import (
    QUICK,
    assert_same_run,
    kill_at,
    one_line_error,
    satkit_process,
    wait_for,
)

from satkit.cli import main
from satkit.training.checkpoint import load_checkpoint, save_checkpoint


def _snapshot(run: Path) -> dict[str, bytes]:
    """Every file of the run directory, by name (hidden ones too), with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def focal(tmp_path_factory) -> Path:
    """A finished 2-epoch focal-loss run with gamma 2 (its final checkpoint can be resumed)."""
    out = tmp_path_factory.mktemp("focal") / "run"
    assert main(["train", *QUICK, "--loss", "focal", "--gamma", "2", "--out", str(out)]) == 0
    return out


# -- settings --------------------------------------------------------------------------------

def test_changed_settings_exit_2_naming_each_field_with_both_values(focal, capsys):
    before = _snapshot(focal)
    assert main(["train", *QUICK, "--loss", "focal", "--gamma", "5", "--momentum", "0",
                 "--weight-decay", "0.1", "--lr-milestones", "0.1", "--augment",
                 "--out", str(focal), "--resume"]) == 2
    line = one_line_error(capsys.readouterr().err, f"--resume: {focal}")
    for needle in ("gamma: 2 in the checkpoint, 5 now", "momentum: 0.9 in the checkpoint, 0 now",
                   "weight_decay: 0.0005 in the checkpoint, 0.1 now",
                   "lr_milestones: [0.5, 0.75] in the checkpoint, [0.1] now",
                   "augment: False in the checkpoint, True now"):
        assert needle in line, (needle, line)
    assert _snapshot(focal) == before  # nothing written, nothing locked behind
    assert main(["train", *QUICK, "--loss", "softmax", "--out", str(focal), "--resume"]) == 2
    assert "loss: focal in the checkpoint, softmax now" in capsys.readouterr().err
    assert main(["train", *QUICK[2:], "--epochs", "1", "--loss", "focal", "--gamma", "2",
                 "--out", str(focal), "--resume"]) == 2
    assert "epochs: 2 in the checkpoint, 1 now (epochs may grow" in capsys.readouterr().err
    assert _snapshot(focal) == before


def test_output_settings_may_differ_and_epochs_may_grow(focal, tmp_path, capsys):
    run = tmp_path / "run"
    (tmp_path / "data").mkdir()
    assert main(["train", *QUICK, "--epochs", "1", "--lr-milestones", "0.5", "--out", str(run),
                 "--figures"]) == 0
    assert json.loads((run / "config.json").read_text())["lr_milestone_epochs"] == [1]
    assert main(["train", *QUICK, "--epochs", "3", "--lr-milestones", "0.5", "--flush-every", "7",
                 "--histogram-every", "3", "--device", "cpu", "--no-quiet", "--no-figures",
                 "--data-dir", str(tmp_path / "data"), "--out", str(run), "--resume"]) == 0
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert (config["epochs"], config["flush_every"], config["lr_milestone_epochs"]) == (3, 7, [1])
    assert (summary["finished"], summary["epochs"], summary["steps"]) == (True, 3, 33)
    assert pd.read_parquet(run / "metrics.parquet")["step"].tolist() == list(range(33))
    # the learning rate dropped once, after epoch 1 as first planned (not at 0.5 x 3 epochs)
    assert pd.read_csv(run / "epochs.csv")["lr"].tolist() == pytest.approx([0.05, 0.005, 0.005])
    capsys.readouterr()


# -- two processes, one directory -----------------------------------------------------------

def test_a_second_resume_of_a_directory_in_use_exits_1_naming_the_holder(tmp_path, reference):
    out, flag = tmp_path / "run", tmp_path / "paused"
    kill_at("step:18", out, flag)
    first = satkit_process("train", *QUICK, "--out", str(out), "--resume",
                           pause=f"step:2:{flag}")  # its third step: step 13 of the run
    wait_for(flag, first)
    second = satkit_process("train", *QUICK, "--out", str(out), "--resume")
    _, err = second.communicate(timeout=600)
    assert second.returncode == 1, err
    one_line_error(err, str(out), f"in use by another satkit process (pid {first.pid})")
    flag.unlink()  # the first goes on, alone
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert_same_run(reference, out)


# -- impossible checkpoints -----------------------------------------------------------------

@pytest.mark.parametrize(("change", "needle"), [
    ({"step": -5}, "at step -5, outside the run's 0..22 steps"),
    ({"step": 999}, "at step 999, outside the run's 0..22 steps"),
    ({"step": 20}, "says step 20 but epoch 2, batch 0"),
    ({"epoch": 1, "batch_in_epoch": 12}, "outside the run's 2 epochs of 11 batches"),
    ({"history": []}, "is at epoch 2 but holds 0 finished epochs"),
    ({"step": "many"}, "step must be an integer, got 'many'"),
])
def test_an_impossible_checkpoint_is_refused_and_changes_nothing(focal, tmp_path, change, needle,
                                                                 capsys):
    run = tmp_path / "run"
    run.mkdir()
    for p in focal.iterdir():
        if p.is_file():
            (run / p.name).write_bytes(p.read_bytes())
    state = load_checkpoint(run / "checkpoint.pt")
    state.pop("format")
    save_checkpoint(run / "checkpoint.pt", {**state, **change})
    before = _snapshot(run)
    assert main(["train", *QUICK, "--loss", "focal", "--gamma", "2", "--out", str(run),
                 "--resume"]) == 1
    one_line_error(capsys.readouterr().err, str(run / "checkpoint.pt"), needle)
    assert _snapshot(run) == {**before, ".satkit-run": _snapshot(run)[".satkit-run"]}


def test_a_checkpoint_ahead_of_its_tables_is_refused(focal, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for p in focal.iterdir():
        if p.is_file():
            (run / p.name).write_bytes(p.read_bytes())
    metrics = pd.read_parquet(run / "metrics.parquet")
    metrics[metrics["step"] < 10].to_parquet(run / "metrics.parquet", index=False)
    assert main(["train", *QUICK, "--loss", "focal", "--gamma", "2", "--out", str(run),
                 "--resume"]) == 1
    one_line_error(capsys.readouterr().err, "is at step 22 but metrics.parquet lacks step 10",
                   "its rows before step 22 end at 9")
    assert len(pd.read_parquet(run / "metrics.parquet")) == 10  # not truncated further
    assert not (run / "summary.json").exists() or json.loads(
        (run / "summary.json").read_text())["steps"] == 22


# -- what an interrupt says ---------------------------------------------------------------

def test_a_second_ctrl_c_says_which_checkpoint_is_kept(tmp_path):
    out, flag = tmp_path / "run", tmp_path / "paused"
    proc = satkit_process("train", *QUICK, "--out", str(out), pause=f"checkpoint:2:{flag}")
    wait_for(flag, proc)  # halfway through the end-of-run checkpoint
    proc.send_signal(signal.SIGINT)  # asks to stop after the step ...
    assert "press Ctrl-C again to stop at once" in proc.stderr.readline() + \
        proc.stderr.readline()  # (acknowledged: its handler ran)
    proc.send_signal(signal.SIGINT)  # ... and the second one stops it at once
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    one_line_error(err, "interrupted again before the state was saved", str(out),
                   "the checkpoint of step 11", f"--out {out} --resume")
    assert "nothing was saved" not in err
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 11


def test_ctrl_c_while_the_figure_is_drawn_says_the_run_is_complete(tmp_path):
    out, flag = tmp_path / "run", tmp_path / "paused"
    args = [a for a in QUICK if a != "--no-figures"]
    proc = satkit_process("train", *args, "--out", str(out), pause=f"figures:1:{flag}")
    wait_for(flag, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    one_line_error(err, "while drawing the figures", "is complete", f"satkit plot {out}")
    assert json.loads((out / "summary.json").read_text())["finished"] is True


def test_config_records_the_threads_that_decided_the_floats(reference):
    config = json.loads((reference / "config.json").read_text())
    assert config["threads"] == 1  # the pinned child's
    assert torch.get_num_threads() >= 1 and os.environ.get("SATKIT_FAULT_PAUSE") is None
