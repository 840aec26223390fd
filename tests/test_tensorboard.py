"""satkit.tensorboard and ``satkit tensorboard``: a real TensorBoard server on a free loopback
port, read back through its HTTP data API, and always stopped."""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from satkit.cli import tensorboard as tbcli
from satkit.sinks import Histogram, TensorBoardSink
from satkit.tensorboard import (
    TensorBoardClient,
    TensorBoardError,
    TensorBoardServer,
    link_tree,
    server_command,
    sweep_stale_workdirs,
)

ALPHA2 = (0.0, 0.1)
STEPS = (0, 1, 2, 3)
COLUMNS = ("p_target_mean", "saturated_frac_0.99", "grad_target_mean", "noise_mean",
           "feature_norm_mean")
SCALAR_TAGS = {"1 saturation, clean/p_target_mean", "1 saturation, clean/saturated_frac_0.99",
               "3 gradient/grad_target_mean", "4 noise/noise_mean",
               "7 norms and logits/feature_norm_mean"}
HISTOGRAM_TAGS = {"1 saturation, clean/p_target", "4 noise/noise"}
N_SAMPLES = 7


def run_name(alpha2: float) -> str:
    return "softmax_seed=0" if alpha2 == 0 else f"noisy-softmax_alpha2={alpha2:g}_seed=0"


def value(alpha2: float, column: str, step: int) -> float:
    """What the tiny runs log: distinct per run, column and step; not exact in float32."""
    return 0.1 + step / 3 + COLUMNS.index(column) / 7 + alpha2 / 11


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A comparison directory of two tiny runs, written by satkit's own TensorBoardSink."""
    root = tmp_path_factory.mktemp("tb") / "compare"
    rng = np.random.default_rng(0)
    for a in ALPHA2:
        sink = TensorBoardSink(root / run_name(a))
        try:
            sink.write([{"step": s, **{c: value(a, c, s) for c in COLUMNS}} for s in STEPS])
            sink.write_histograms([Histogram(s, name, rng.random(N_SAMPLES))
                                   for s in STEPS for name in ("p_target", "noise")])
            sink.write_hparams({"alpha2": a, "seed": 0, "noise": "annealed"},
                               {"test_error": 5.0 - a, "onset_step": 2.0})
        finally:
            sink.close()
    return root


# --- the command and the directory tree (no server) -------------------------------------------

def test_server_command_binds_localhost_offline() -> None:
    cmd = server_command("runs/x")
    assert cmd[:3] == [sys.executable, "-m", "tensorboard.main"]
    assert cmd[cmd.index("--host") + 1] == "localhost"
    assert cmd[cmd.index("--port") + 1] == "6006"
    assert cmd[cmd.index("--logdir") + 1] == "runs/x"
    assert "--load_fast=false" in cmd and "--bind_all" not in cmd
    assert "--reload_task=blocking" not in cmd
    assert "--reload_task=blocking" in server_command("runs/x", reload_interval=0, port=0)
    with pytest.raises(ValueError):
        server_command("runs/x", port=-1)


def test_link_tree_names_runs_after_their_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "one" / "run", tmp_path / "two" / "run"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    root = link_tree([a, b], tmp_path / "tree")
    assert sorted(p.name for p in root.iterdir()) == ["run", "run-1"]
    assert (root / "run").resolve() == a.resolve() and (root / "run-1").resolve() == b.resolve()
    with pytest.raises(TensorBoardError, match="not a directory"):
        link_tree([tmp_path / "missing"], tmp_path / "tree2")


def test_missing_directory_fails_before_starting(tmp_path: Path) -> None:
    server = TensorBoardServer([tmp_path / "missing"])
    with pytest.raises(TensorBoardError, match="not a directory"):
        server.start()
    assert server.process is None


def test_no_tensorboard_import() -> None:
    code = ("import sys, satkit; before = 'tensorboard' in sys.modules; "
            "import satkit.tensorboard, satkit.cli.tensorboard; "
            "assert ('tensorboard' in sys.modules) == before, 'tensorboard imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# --- the CLI parser ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satkit")
    tbcli.register(p.add_subparsers(dest="command", required=True))
    return p


def test_register_defaults_to_localhost_and_6006() -> None:
    args = parser().parse_args(["tensorboard", "runs/a"])
    assert args.host == "localhost" and args.port == 6006 and args.reload_interval == 5.0
    assert args.run_dirs == [Path("runs/a")] and args.func is tbcli.run
    args = parser().parse_args(["tensorboard", "a", "b", "--port", "0", "--host", "127.0.0.1"])
    assert args.run_dirs == [Path("a"), Path("b")] and args.port == 0
    assert args.host == "127.0.0.1"
    with pytest.raises(SystemExit):
        parser().parse_args(["tensorboard"])  # at least one RUN_DIR


def test_cli_rejects_missing_directory_and_bad_port(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["tensorboard", str(tmp_path / "missing")])
    assert args.func(args) == 2
    assert "not a directory" in capsys.readouterr().err
    args = parser().parse_args(["tensorboard", str(tmp_path), "--port", "70000"])
    assert args.func(args) == 2


# --- a real server ----------------------------------------------------------------------------

def test_server_serves_runs_tags_values_and_stops(comparison: Path) -> None:
    with TensorBoardServer([comparison], reload_interval=0) as server:
        assert server.url == f"http://localhost:{server.port}/"
        client = server.client()
        runs = [run_name(a) for a in ALPHA2]
        assert sorted(client.runs()) == sorted(runs)

        plugins = client.plugins()
        for name in ("scalars", "histograms", "custom_scalars", "hparams"):
            assert plugins[name]["enabled"], name

        tags = client.scalar_tags()
        for a in ALPHA2:
            assert SCALAR_TAGS <= set(tags[run_name(a)])
            for column in COLUMNS:
                tag = next(t for t in SCALAR_TAGS if t.endswith("/" + column))
                points = client.scalars(run_name(a), tag)
                assert [s for _, s, _ in points] == list(STEPS)
                # TensorBoard stores scalars in float32: equal to what was written, to that.
                expected = [float(np.float32(value(a, column, s))) for s in STEPS]
                assert [v for _, _, v in points] == expected, (a, tag)

        hist_tags = client.histogram_tags()
        for a in ALPHA2:
            assert set(hist_tags[run_name(a)]) == HISTOGRAM_TAGS
        hist = client.histograms(run_name(0.1), "1 saturation, clean/p_target")
        assert [s for _, s, _ in hist] == list(STEPS)
        assert all(sum(b[2] for b in buckets) == pytest.approx(N_SAMPLES)
                   for _, _, buckets in hist)

        layout = client.custom_scalars_layout()
        titles = [c["title"] for c in layout["category"]]
        assert titles[0] == "saturation, clean p_y (the eval-mode logits)"
        assert "gradient and noise" in titles

        experiment = client.hparams_experiment()
        assert {h["name"] for h in experiment["hparamInfos"]} >= {"alpha2", "seed", "noise"}
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [
            "9 final figures/test_error", "9 final figures/onset_step"]
        # what the HPARAMS table reads for each run: its final figures
        groups = client.hparams_session_groups()
        assert sorted(groups) == sorted(runs)
        assert groups[run_name(0.1)]["9 final figures/test_error"] == pytest.approx(4.9)

        # A second server on the same port fails to start, with TensorBoard's reason, and
        # is reaped before the error is raised.
        busy = TensorBoardServer([comparison], port=server.port, startup_timeout=300)
        with pytest.raises(TensorBoardError, match="already in use"):
            busy.start()
        assert busy.process is not None and busy.process.poll() is not None
    assert server.process is not None and server.process.poll() is not None
    assert server.stop() is not None  # idempotent
    with pytest.raises(TensorBoardError):
        TensorBoardClient(server.url, timeout=2).runs()


def test_several_directories_are_served_side_by_side(comparison: Path) -> None:
    dirs = [comparison / run_name(a) for a in ALPHA2]
    with TensorBoardServer(dirs, host="127.0.0.1", reload_interval=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert sorted(server.client().runs()) == sorted(run_name(a) for a in ALPHA2)
    assert server.process is not None and server.process.poll() is not None


def test_one_run_directory_is_served_under_its_name(comparison: Path) -> None:
    with TensorBoardServer([comparison / run_name(0.1)], host="127.0.0.1",
                           reload_interval=0) as server:
        assert server.client().runs() == [run_name(0.1)]  # not "."


def test_comparison_with_its_own_layout_file_keeps_run_names(comparison: Path,
                                                             tmp_path: Path) -> None:
    import shutil

    from satkit.sinks.tensorboard import write_comparison_layout

    copy = Path(shutil.copytree(comparison, tmp_path / "compare"))
    write_comparison_layout(copy, [run_name(a) for a in ALPHA2])  # an event file at its root
    with TensorBoardServer([copy], host="127.0.0.1", reload_interval=0) as server:
        assert {run_name(a) for a in ALPHA2} <= set(server.client().runs())


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no line starting with {prefix!r} (status {proc.poll()})")


def test_cli_serves_until_sigint_then_stops(comparison: Path) -> None:
    cmd = [sys.executable, "-m", "satkit", "tensorboard", str(comparison), "--port", "0",
           "--reload-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc, "TensorBoard at ", timeout=300)
        url = line.split()[2]
        assert url.startswith("http://localhost:")
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        assert sorted(TensorBoardClient(url).runs()) == sorted(run_name(a) for a in ALPHA2)
        # then the tabs to open first, each with its address
        guide = [proc.stdout.readline().strip() for _ in tbcli.TABS]  # printed with it
        assert [g.split()[0] for g in guide] == [f"{url}#{tab}" for tab, _ in tbcli.TABS]
        assert guide[0].split()[0].endswith("#custom_scalars")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the CLI stops TensorBoard on SIGTERM too
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    with socket.socket() as s:  # TensorBoard's port is closed: the server went with the CLI
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    # stop() escalates to SIGKILL; exercised with a stand-in process that ignores SIGTERM.
    server = TensorBoardServer([tmp_path])
    server.process = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert server.process.stdout is not None and server.process.stdout.readline() == "ready\n"
    assert server.stop(timeout=0.5) == -signal.SIGKILL


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; a zombie until something reaps it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, PR_SET_PDEATHSIG")
def test_sigkill_of_the_cli_takes_tensorboard_and_its_temp_dir_with_it(comparison: Path) -> None:
    """SIGKILL leaves the CLI no chance to clean up: the TensorBoard child must notice its
    parent's death itself, stop listening and remove its temporary directory."""
    cmd = [sys.executable, "-m", "satkit", "tensorboard", str(comparison / run_name(0.1)),
           "--port", "0", "--reload-interval", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = _read_line(proc, "TensorBoard at ", timeout=300).split()[2]
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        (child,) = _children(proc.pid)
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        workdir = Path(argv[3].decode())
        assert workdir.name.startswith("satkit-tensorboard-") and workdir.is_dir()
    finally:
        proc.kill()
        proc.communicate(timeout=120)
    deadline = time.monotonic() + 60
    while not _gone(child):
        assert time.monotonic() < deadline, "TensorBoard outlived its parent"
        time.sleep(0.1)
    assert not workdir.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_startup_sweep_removes_directories_of_dead_servers_only(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(done.stdout)
    stale, live, other = (tmp_path / f"satkit-tensorboard-{k}" for k in ("a", "b", "c"))
    for d in (stale, live, other):
        d.mkdir()
    (stale / "owners").write_text(f"{dead}\n")
    (live / "owners").write_text(f"{dead} {os.getpid()}\n")
    assert sweep_stale_workdirs(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()  # no owners: not touched
