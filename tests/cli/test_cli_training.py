"""`satkit train|compare|demo` as a user runs them: exit codes, TOML, SIGINT, torchrun, MNIST."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from child_runs import satkit_process

from satkit.cli import main

QUICK = ["--epochs", "1", "--batch-size", "64", "--lr", "0.05", "--device", "cpu", "--quiet",
         "--flush-every", "10"]


_satkit = satkit_process


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--alpha2", "-1"], "alpha2"),
        (["train", "--epochs", "0"], "epochs"),
        (["train", "--thresholds", "0.99", "0.9"], "thresholds"),
        (["compare", "--alpha2", "0", "0"], "alpha2"),
        (["train", "--batch-size", "5000", "--device", "cpu", "--quiet"],
         "argument --batch-size: batch_size 5000 is larger than the 1437 training samples per "
         "process: with drop_last no full batch is left; lower --batch-size or pass "
         "--no-drop-last"),
    ],
)
def test_bad_values_exit_2_naming_the_field(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.slow
def test_compare_methods_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--loss", "softmax", "noisy", "label-smoothing", "--alpha2", "0.5",
                 "--seeds", "0", *QUICK, "--no-figure", "--out", str(out), "--val-fraction",
                 "0.1", "--rank-by", "test_ece"]) == 0
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["label-smoothing_seed=0", "noisy-softmax_alpha2=0.5_seed=0",
                     "softmax_seed=0"]
    captured = capsys.readouterr()
    text = captured.out
    # the deprecated --no-figure still works (as --no-figures) and says what replaces it
    assert "--no-figure is deprecated and will be removed: use --no-figures" in captured.err
    assert not (out / "figures" / "dashboard.png").exists()
    assert not any((p / "figures" / "dashboard.png").exists() for p in out.iterdir())
    assert "label smoothing" in text and "Noisy Softmax α²=0.5" in text
    # error, ECE, ECE after temperature scaling and the onsets side by side, sorted by ECE
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    for column in ("test error %", "ECE", "adaptive ECE", "ECE after TS", "onset step"):
        assert f"| {column} |" in header
    assert "sorted by test_ece" in text
    ranking = pd.read_csv(out / "ranking.csv")
    assert list(ranking["test_ece"]) == sorted(ranking["test_ece"])
    assert ranking["temperature"].notna().all()


def test_unknown_flag_or_choice_exits_2(capsys):
    for argv in (["train", "--learning-rate", "1"], ["train", "--dataset", "imagenet"],
                 ["compare", "--rank-by", "onset_step"], ["report", ".", "--rank-by", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_toml_config_loads_same_fields_and_rejects_unknown_keys(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('dataset = "digits"\nalpha2 = 1\nepochs = 1\nbatch_size = 64\n'
                    'quiet = true\ndevice = "cpu"\nthresholds = [0.5, 0.99]\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(good), "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed
    assert f"satkit tensorboard {out}" in printed.splitlines()[-1]  # as demo and compare end
    config = json.loads((out / "config.json").read_text())
    assert (config["alpha2"], config["seed"], config["thresholds"]) == (1.0, 3, [0.5, 0.99])
    bad = tmp_path / "bad.toml"
    bad.write_text("alpha2 = 0.1\nlearning_rate = 0.1\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "'learning_rate'" in capsys.readouterr().err
    bad.write_text("alpha2 = -1\n")  # a bad value names the file it came from
    assert main(["train", "--config", str(bad)]) == 2
    assert f"--config {bad}: alpha2 must be" in capsys.readouterr().err
    assert main(["train", "--config", str(bad), "--alpha2", "-2"]) == 2  # the flag wins
    assert "argument --alpha2: alpha2 must be" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.slow
def test_progress_without_a_terminal_is_plain_lines_one_per_epoch_per_run(tmp_path):
    """What `satkit demo` prints with stderr redirected to a file, at a smaller size."""
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "satkit", "compare", "--alpha2", "0", "0.1", "--epochs", "2",
             "--batch-size", "128", "--device", "cpu", "--flush-every", "4", "--no-figures",
             "--out", str(tmp_path / "cmp")], stdout=subprocess.PIPE, stderr=stderr, text=True,
            timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text and len(text) < 2000
    epochs = [line for line in text.splitlines() if "| epoch " in line]
    assert [line.split(" | ")[:2] for line in epochs] == [
        ["[1/2] softmax seed=0", "epoch 1/2"], ["[1/2] softmax seed=0", "epoch 2/2"],
        ["[2/2] noisy alpha2=0.1 seed=0", "epoch 1/2"],
        ["[2/2] noisy alpha2=0.1 seed=0", "epoch 2/2"]]
    assert all("train loss" in e and "test loss" in e for e in epochs)
    # the share of the epoch's samples saturated, naming the threshold and both views
    assert all(re.search(r"\| p_y >= 0\.99: clean \d+\.\d%, training logits \d+\.\d%$", e)
               for e in epochs), epochs


def test_sigint_saves_exits_130_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    args = ["train", *QUICK, "--epochs", "12", "--out", str(out)]
    proc = _satkit(*args)
    deadline = time.monotonic() + 120
    while not (out / "epochs.csv").exists():  # first epoch done: training is under way
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--out {out} --resume" in err and "Traceback" not in err
    steps = json.loads(json.dumps(pd.read_parquet(out / "metrics.parquet")["step"].tolist()))
    assert steps == list(range(len(steps)))
    resumed = _satkit(*args, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert metrics["step"].tolist() == list(range(12 * 22))
    assert len(pd.read_csv(out / "epochs.csv")) == 12


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="needs torchrun")
def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "satkit", "train", *QUICK,
         "--out", str(out), "--val-fraction", "0.1"], capture_output=True, text=True,
        timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2 and config["train_size"] == 1293
    # the evaluation merged both ranks' halves of the test set; rank 0 alone fitted the
    # temperature and wrote the predictions at the end (the other rank waited)
    assert summary["test_ece"] is not None and summary["temperature"] is not None
    assert len(pd.read_parquet(out / "test_predictions.parquet")) == 360
    per_rank = -(-1293 // 2)  # each rank: a disjoint half of every epoch
    assert summary["steps"] == per_rank // 64  # full batches only (drop_last)
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert metrics["step"].tolist() == list(range(summary["steps"]))
    assert (metrics["batch_size"] == 128).all()  # merged over both ranks
    samples = pd.read_parquet(out / "samples.parquet")
    from satkit.data import DeviceLoader

    seen = set().union(*(DeviceLoader(torch.zeros(1293, 1), torch.zeros(1293), batch_size=64,
                                      drop_last=True, seed=0, rank=r, world_size=2)
                         .indices(0)[:summary["steps"] * 64].tolist() for r in (0, 1)))
    # both ranks' samples merged
    assert set(samples.loc[samples["last_seen_step"].notna(), "index"]) == seen
    assert len(list(out.glob("events.out.tfevents*"))) == 1  # only rank 0 writes


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.slow
def test_train_on_real_mnist_files_placed_in_data_dir(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (96, 28, 28)),
             "train-labels-idx1-ubyte": np.arange(96) % 10,
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (32, 28, 28)),
             "t10k-labels-idx1-ubyte": np.arange(32) % 10}
    for name, array in files.items():
        (data / name).write_bytes(_idx(array))

    def no_network(*a, **k):
        raise AssertionError("the network must not be touched when the files are there")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data), *QUICK,
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # 96 training images: one full batch of 64 (drop_last)
    assert (summary["dataset"], summary["model"], summary["steps"]) == ("mnist", "mnist-paper", 1)


def test_missing_mnist_without_network_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import urllib.error

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), *QUICK,
                 "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "place" in err and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".json"]


@pytest.mark.slow
def test_demo_prints_table_figure_and_tensorboard_paths(tmp_path, capsys):
    out = tmp_path / "demo"
    started = time.monotonic()
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    elapsed = time.monotonic() - started
    text = capsys.readouterr().out
    for needle in ("softmax (α²=0)", "Noisy Softmax α²=0.1", "test error %", "onset step",
                   "late |dL/df_y|", "tensorboard", str(out)):
        assert needle.replace("|", "\\|") in text or needle in text, needle
    assert (out / "figures" / "dashboard.png").stat().st_size > 10_000
    assert (out / "comparison.csv").exists() and (out / "comparison.md").exists()
    assert len(list(out.glob("*/events.out.tfevents*"))) == 3
    print(f"demo took {elapsed:.1f}s")


def test_corrupt_checkpoint_on_resume_exits_1_with_message(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["train", *QUICK, "--out", str(run), "--resume"]) == 1
    assert "corrupt" in capsys.readouterr().err
    assert main(["train", *QUICK, "--out", str(tmp_path / "none"), "--resume"]) == 2


@pytest.mark.slow
def test_train_cifar10_with_augmentation_on_extracted_binary_batches(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)

    def records(n: int) -> bytes:  # the real binary format: 1 label byte + 3072 pixel bytes
        labels = (np.arange(n) % 10).astype(np.uint8)[:, None]
        pixels = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        return np.concatenate([labels, pixels], axis=1).tobytes()

    for i in range(1, 6):
        (folder / f"data_batch_{i}.bin").write_bytes(records(16))
    (folder / "test_batch.bin").write_bytes(records(20))
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("network"))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "cifar10", "--augment", "--data-dir",
                 str(tmp_path / "data"), *QUICK, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    # 80 training images: one full batch of 64 (drop_last)
    assert (summary["model"], summary["steps"], config["augment"]) == ("cifar10-paper", 1, True)
    assert config["train_size"] == 80 and config["test_size"] == 20
