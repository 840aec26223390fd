"""``satkit plot`` and ``satkit report`` through their register(subparsers) entry."""

import argparse

import pytest

from satkit.cli.analysis import register


def _parser():
    parser = argparse.ArgumentParser(prog="satkit")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_comparison_dir(comparison, tmp_path, suffix, capsys):
    out = tmp_path / f"fig{suffix}"
    assert _run(["plot", str(comparison), "--out", str(out), "--dpi", "40"]) == 0
    assert out.stat().st_size > 10_000
    assert str(out) in capsys.readouterr().out


def test_plot_default_out_is_inside_the_first_run(tmp_path, run_writer):
    run = run_writer(tmp_path, steps=30, num_samples=20)
    assert _run(["plot", str(run), "--dpi", "30"]) == 0
    assert (run / "figures" / "dashboard.png").exists()


@pytest.mark.parametrize("name", ["summary", "distribution"])
def test_plot_a_named_figure(comparison, tmp_path, name, capsys):
    out = tmp_path / f"{name}.png"
    assert _run(["plot", str(comparison), "--figure", name, "--out", str(out),
                 "--dpi", "30"]) == 0
    assert out.stat().st_size > 5_000
    assert f"({name}, 6 run(s))" in capsys.readouterr().out


def test_plot_named_figure_default_out_and_unknown_name(tmp_path, run_writer, capsys):
    run = run_writer(tmp_path, steps=30, num_samples=20)
    assert _run(["plot", str(run), "--figure", "survival", "--dpi", "30"]) == 0
    assert (run / "figures" / "survival.png").exists()
    with pytest.raises(SystemExit) as exc:
        _run(["plot", str(run), "--figure", "nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_plot_errors(tmp_path, capsys):
    assert _run(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "f.png")]) == 1
    assert "missing" in capsys.readouterr().err
    assert _run(["plot", str(tmp_path), "--out", str(tmp_path / "f.jpg")]) == 2
    assert ".png" in capsys.readouterr().err


def test_report_to_file_and_stdout(comparison, tmp_path, capsys):
    out = tmp_path / "sub" / "REPORT.md"
    assert _run(["report", str(comparison), "--out", str(out), "--window", "3"]) == 0
    text = out.read_text()
    assert text.startswith("# satkit report") and "rolling window 3" in text
    assert _run(["report", str(comparison / "alpha2=0_seed=0"),
                 str(comparison / "alpha2=0.1_seed=0")]) == 0
    assert "## Postponement" in capsys.readouterr().out


def test_report_corrupt_run_is_a_clear_error(tmp_path, run_writer, capsys):
    run = run_writer(tmp_path, steps=10)
    (run / "metrics.parquet").write_bytes(b"garbage")
    assert _run(["report", str(run)]) == 1
    err = capsys.readouterr().err
    assert "metrics.parquet" in err and "Traceback" not in err


def test_bad_option_values_exit_2(comparison):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["report", str(comparison), "--late", "2"])
    assert exc.value.code == 2
