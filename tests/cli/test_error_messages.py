"""Messages that lied or were missing (issue 20, section 4): each failure a user met as a
traceback now ends in one line ``satkit...: error: ...`` with its exit status (2 a bad argument,
1 a runtime failure), and nothing is created or lost on the way.

A disk that turns read-only mid-run is an injected ``EROFS`` in TensorBoard's own file layer; one
that fills up is a real tmpfs when this machine lets us mount one (root).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from satkit.analysis import RunError, load_run
from satkit.cli import main

QUICK = ["--epochs", "1", "--batch-size", "256", "--lr", "0.05", "--device", "cpu", "--quiet",
         "--flush-every", "2", "--no-figures"]


def _one_line(err: str, *needles: str) -> str:
    """The whole of stderr is one ``satkit...`` line holding every needle."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satkit"), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real run: 1 epoch of the digits (6 steps)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    return out


# -- devices without a backend --------------------------------------------------------------------

@pytest.mark.parametrize("device", ["hpu", "privateuseone"])
def test_device_without_a_backend_module_exits_2_in_one_line(device, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--device", device, "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, "argument --device:", f"'{device}' is not available",
              "use --device cpu or auto")
    assert not out.exists()


# -- satkit plot / report -------------------------------------------------------------------------

def test_plot_dpi_beyond_the_image_limit_exits_2_naming_the_limit(run, tmp_path, capsys):
    from satkit.cli.analysis import MAX_PIXELS, MAX_SIDE

    out = tmp_path / "fig.png"
    assert main(["plot", str(run), "--dpi", "20000", "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err, "argument --dpi: 20000", str(MAX_PIXELS))
    inches = [float(v) for v in line.split("would make this ")[1].split(" in figure")[0]
              .split(" x ")]
    assert f"{round(inches[0] * 20000)} x {round(inches[1] * 20000)} pixels" in line

    def fits(dpi: int) -> bool:
        sides = [round(side * dpi) for side in inches]
        return max(sides) <= MAX_SIDE and sides[0] * sides[1] <= MAX_PIXELS

    largest = int(line.rsplit("use --dpi ", 1)[1].split()[0])
    assert fits(largest) and not fits(largest + 1)  # the largest dpi that fits
    assert not out.exists()


@pytest.mark.parametrize("command", ["plot", "report"])
def test_plot_and_report_of_a_file_exit_1_naming_its_directory(run, command, capsys):
    assert main([command, str(run / "config.json")]) == 1
    _one_line(capsys.readouterr().err, f"satkit {command}: error:", "a file, not a run directory",
              f"give the run directory that holds it, {run}")


def _corrupt_metrics(run: Path) -> None:
    metrics = pd.read_parquet(run / "metrics.parquet")
    metrics["p_target_median"] = "high"
    metrics.to_parquet(run / "metrics.parquet")


def _corrupt_samples(run: Path) -> None:
    samples = pd.read_parquet(run / "samples.parquet")
    samples["first_saturated_step"] = 3.5
    samples.to_parquet(run / "samples.parquet")


def _corrupt_json(name: str, field: str, value: object):
    def corrupt(run: Path) -> None:
        data = json.loads((run / name).read_text())
        data[field] = value
        (run / name).write_text(json.dumps(data))
    return corrupt


@pytest.mark.parametrize(("corrupt", "needles"), [
    (_corrupt_metrics, ["metrics.parquet: column 'p_target_median' must hold numbers",
                        "'high' in row 0"]),
    (_corrupt_samples, ["samples.parquet: column 'first_saturated_step' must hold whole numbers",
                        "(Int64)", "3.5 in row 0"]),
    (_corrupt_json("config.json", "epochs", "many"),
     ["config.json: field 'epochs' must be an integer or null", '"many"']),
    (_corrupt_json("summary.json", "test_error", [1]),
     ["summary.json: field 'test_error' must be a number or null", "[1]"]),
], ids=["string p_target_median", "float first_saturated_step", "epochs many", "test_error [1]"])
def test_right_columns_wrong_types_exit_1_naming_file_column_and_type(run, tmp_path, corrupt,
                                                                      needles, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    corrupt(bad)
    with pytest.raises(RunError, match=needles[0]):
        load_run(bad)
    for command in ("plot", "report"):
        assert main([command, str(bad), "--out", str(tmp_path / f"out.{command}.md"
                                                     if command == "report" else
                                                     tmp_path / "out.png")]) == 1
        _one_line(capsys.readouterr().err, f"satkit {command}: error:", str(bad), *needles)
    assert not list(tmp_path.glob("out.*"))


def test_the_files_of_a_real_run_have_the_declared_types(run):
    from satkit import schema

    config = json.loads((run / "config.json").read_text())
    assert set(config) == set(schema.CONFIG_TYPES)  # a new config field declares its type
    assert set(schema.SUMMARY_TYPES) == set(schema.SUMMARY_FIELDS)
    assert set(schema.EPOCH_DTYPES) == set(schema.EPOCH_COLUMNS)
    assert load_run(run).summary["finished"] is True


# -- --out that is not UTF-8 ----------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "compare"])
def test_out_that_is_not_utf8_exits_2_before_anything_is_created(command, tmp_path, capsys):
    out = tmp_path / os.fsdecode(b"caf\xe9")  # a Latin-1 name
    assert main([command, *QUICK, "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, "--out", "caf\\xe9", "not UTF-8", "byte 0xe9")
    assert list(tmp_path.iterdir()) == []


def test_the_callbacks_and_the_tensorboard_sink_refuse_it_too(tmp_path):
    from satkit.run_dir import claim_run_dir  # what the callbacks claim with too
    from satkit.sinks import TensorBoardSink

    out = tmp_path / os.fsdecode(b"caf\xe9") / "run"
    with pytest.raises(ValueError, match=r"^--out b'.*caf\\xe9/run' is not UTF-8 text"):
        claim_run_dir(out)
    with pytest.raises(ValueError, match=r"^log_dir b'.*caf\\xe9/run' is not UTF-8 text"):
        TensorBoardSink(out)
    assert list(tmp_path.iterdir()) == []


# -- counts ---------------------------------------------------------------------------------------

def test_epochs_1e20_in_a_toml_config_exits_2_naming_the_bound(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("epochs = 100000000000000000000\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--quiet", "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, f"--config {config}: epochs must be an integer in "
                                       "[1, 100000]", "MAX_EPOCHS")
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value", "bound"), [
    ("--batch-size", "60001", "MAX_BATCH_SIZE"), ("--every", "1000001", "MAX_INTERVAL"),
    ("--flush-every", "1000001", "MAX_INTERVAL"), ("--histogram-every", "1000001",
                                                   "MAX_INTERVAL"),
    ("--seed", str(2**32), "MAX_SEED"), ("--split-seed", str(2**32), "MAX_SEED"),
])
def test_every_count_flag_is_bounded(flag, value, bound, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *QUICK, flag, value, "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err, f"argument {flag}:", f"got {value}", bound)
    assert not out.exists()


# -- a disk that turns read-only or fills up mid-run ----------------------------------------------

def test_disk_turning_read_only_mid_run_is_one_line_without_a_thread_traceback(
        tmp_path, monkeypatch, capsys):
    """TensorBoard's file layer starts failing with EROFS (its paths are bytes) after the run
    wrote its first events; before, TensorBoard's writer thread died printing a traceback and
    the line named the path as b'...'."""
    from tensorboard.compat.tensorflow_stub.io import gfile

    real_append = gfile.LocalFileSystem.append
    calls = []

    def append(self, filename, file_content, binary_mode=False):
        calls.append(filename)
        if len(calls) > 3:
            raise OSError(errno.EROFS, "Read-only file system", os.fsencode(filename))
        return real_append(self, filename, file_content, binary_mode)

    thread_errors = []
    monkeypatch.setattr(gfile.LocalFileSystem, "append", append)
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 1
    line = _one_line(capsys.readouterr().err, "satkit: error: read-only file system while "
                                              f"writing {out}/events.out.tfevents.")
    assert "b'" not in line
    assert thread_errors == []  # no thread died with it
    steps = load_run(out).metrics["step"].tolist()
    assert len(steps) >= 2 and steps == list(range(len(steps)))  # the rows recorded are kept


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB tmpfs (room for the run and its 1.5 MiB checkpoint), or a skip."""
    path = tmp_path / "disk"
    if not _mount_tmpfs(path, "size=4m"):
        pytest.skip("cannot mount a tmpfs here; the injected read-only test covers it")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_real_disk_filling_up_mid_run_is_one_line(disk, tmp_path):
    """(A tmpfs cannot be remounted read-only under a running run: its lock keeps the claim
    file open for writing. The injected test above is the read-only case.)"""
    flag = tmp_path / "paused"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SATKIT_FAULT_PAUSE": f"step:9:{flag}"}
    out = disk / "run"
    proc = subprocess.Popen([sys.executable, "-m", "satkit", "train", *QUICK, "--epochs", "3",
                             "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pause point was never reached"
        time.sleep(0.05)
    with open(disk / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
    flag.unlink()
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1
    assert "b'" not in _one_line(err, "satkit: error: no space left on device", str(out))


# -- satkit tensorboard --host 0.0.0.0 ------------------------------------------------------------

@pytest.mark.slow
def test_tensorboard_on_every_interface_warns_and_prints_the_addresses_it_answers_on(run):
    import ipaddress
    import socket
    import urllib.request

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "satkit", "tensorboard", str(run), "--host",
                             "0.0.0.0", "--port", "0", "--reload-interval", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("TensorBoard at "), (line, proc.stderr.read())
        urls = [word for word in line.split() if word.startswith("http://")]
        for url in urls:
            with urllib.request.urlopen(url, timeout=30) as answer:
                assert answer.status == 200, url
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "satkit: warning: --host 0.0.0.0 makes these runs visible to the network" in err
    assert "--host localhost" in err
    port = urls[0].rsplit(":", 1)[1].strip("/")
    ipv4 = {a.address for entries in psutil.net_if_addrs().values() for a in entries
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_link_local}
    assert {f"http://{a}:{port}/" for a in ipv4} == set(urls)  # every interface's address
    assert "http://localhost" not in line
