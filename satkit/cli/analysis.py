"""``satkit plot`` and ``satkit report``: figures and the Markdown report of finished runs.

Both take run directories and/or comparison directories (which expand to the runs they
hold). The logic lives in :mod:`satkit.analysis` and :mod:`satkit.plots`; this module only
parses arguments, writes files and maps errors to exit statuses (0 ok, 1 a run directory is
missing, a file, corrupt, of the wrong types or empty, or the output cannot be written, 2 a bad
argument, such as a ``--dpi`` that makes the image larger than :data:`MAX_PIXELS`). A run stopped
before its first flush has an empty metrics table: ``plot`` leaves it out (and says so), and
fails with that message when no run has anything recorded.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

__all__ = ["FIGURE_SUFFIXES", "MAX_PIXELS", "MAX_SIDE", "register"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
#: The largest image ``satkit plot`` draws: Matplotlib's Agg renderer refuses sides of 2**16
#: pixels or more, and 2**27 pixels (a 512 MiB RGBA buffer) is the most it is asked to hold.
MAX_SIDE = 2**16 - 1
MAX_PIXELS = 2**27


def _fail(command: str, message: str, status: int) -> int:
    print(f"satkit {command}: error: {message}", file=sys.stderr)
    return status


def _check_out(out: Path) -> str | None:
    """Why ``--out`` cannot be a file to write (None when it can be tried)."""
    if out.is_dir():
        return f"--out {out} is a directory; give a file name"
    if out.parent.exists() and not out.parent.is_dir():
        return f"--out {out}: {out.parent} is not a directory"
    return None


def _write(command: str, out: Path, data: bytes) -> int | None:
    """Write the output atomically; an exit status when the file system refuses it."""
    from satkit.run_dir import atomic_write_bytes, describe_os_error

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, data)
    except OSError as exc:
        return _fail(command, f"--out: {describe_os_error(exc, out)}", 1)
    return None


def _plot(args: argparse.Namespace) -> int:
    from satkit.analysis import RunError, as_runs

    out = Path(args.out) if args.out else \
        Path(args.run_dirs[0]) / "figures" / f"{args.figure}.png"
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        return _fail("plot", f"--out {out}: the suffix must be one of {FIGURE_SUFFIXES}", 2)
    if (problem := _check_out(out)) is not None:
        return _fail("plot", problem, 2)
    try:
        runs = as_runs(args.run_dirs)
    except RunError as exc:
        return _fail("plot", str(exc), 1)
    empty = [str(run.path) for run in runs if run.metrics.empty]
    runs = [run for run in runs if not run.metrics.empty]
    if not runs:
        return _fail("plot", f"nothing recorded yet in {', '.join(empty)} (stopped before its "
                             "first flush); no figure written", 1)
    for name in empty:
        print(f"satkit plot: {name} has nothing recorded yet; left out", file=sys.stderr)
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window from the command line
    import matplotlib.pyplot as plt

    from satkit.plots import figure

    options = {"tau": args.tau} if args.figure in ("dashboard", "summary") else {}
    try:
        fig = figure(args.figure, runs, **options)
    except RunError as exc:
        return _fail("plot", str(exc), 1)
    buffer = io.BytesIO()
    try:
        if (problem := _check_size(fig.get_size_inches(), args.dpi)) is not None:
            return _fail("plot", problem, 2)
        fig.savefig(buffer, dpi=args.dpi, format=out.suffix.lower()[1:])
    except MemoryError:  # within the limits, but more than this machine has free
        return _fail("plot", f"not enough memory to draw the figure at --dpi {args.dpi}; "
                             "use a lower --dpi", 1)
    finally:
        plt.close(fig)
    if (status := _write("plot", out, buffer.getvalue())) is not None:
        return status
    print(f"figure: {out} ({args.figure}, {len(runs)} run(s))")
    return 0


def _pixels(inches: tuple[float, float], dpi: int) -> tuple[int, int]:
    return round(float(inches[0]) * dpi), round(float(inches[1]) * dpi)


def _fits(inches: tuple[float, float], dpi: int) -> bool:
    width, height = _pixels(inches, dpi)
    return max(width, height) <= MAX_SIDE and width * height <= MAX_PIXELS


def _check_size(inches: tuple[float, float], dpi: int) -> str | None:
    """Why the figure cannot be drawn at ``dpi`` (None when it can): an image side of more
    than :data:`MAX_SIDE` pixels, or more than :data:`MAX_PIXELS` pixels in all. Checked for
    every format: a .pdf or .svg draws its images at ``dpi`` too."""
    if _fits(inches, dpi):
        return None
    largest = int(min(MAX_SIDE / max(inches), math.sqrt(MAX_PIXELS / (inches[0] * inches[1]))))
    while largest > 1 and not _fits(inches, largest):
        largest -= 1
    while _fits(inches, largest + 1):
        largest += 1
    width, height = _pixels(inches, dpi)
    return (f"argument --dpi: {dpi} would make this {inches[0]:g} x {inches[1]:g} in figure "
            f"{width} x {height} pixels; the limit is {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS} pixels in all (2**27, 512 MiB): use --dpi {largest} or less")


def _report(args: argparse.Namespace) -> int:
    from satkit.analysis import RunError, report

    out = None if args.out is None else Path(args.out)
    if out is not None and (problem := _check_out(out)) is not None:
        return _fail("report", problem, 2)
    try:
        text = report(args.run_dirs, tau=args.tau, window=args.window, late=args.late,
                      rank_by=args.rank_by)
    except RunError as exc:
        return _fail("report", str(exc), 1)
    if out is None:
        sys.stdout.write(text)
        return 0
    if (status := _write("report", out, text.encode("utf-8"))) is not None:
        return status
    print(f"report: {out}")
    return 0


def _tau(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value < 1):
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` and ``report`` subcommands (each sets ``func(args) -> int``)."""
    from satkit.analysis.ranking import RANK_BY
    from satkit.plots.figures import FIGURES

    plot = subparsers.add_parser(
        "plot", help="save the dashboard (or another named figure) of runs",
        description="Save a figure of the given runs: the dashboard (six panels: p_y and the "
                    "survival curves in both views, the target-logit gradient, the noise) or "
                    "another named figure.")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                      help="run directories or comparison directories holding them")
    plot.add_argument("--figure", choices=list(FIGURES), default="dashboard",
                      help="which figure (default: dashboard); each is also a function of "
                           "satkit.plots")
    plot.add_argument("--out", metavar="FIG",
                      help="output file, .png/.pdf/.svg (default: "
                           "RUN_DIR/figures/FIGURE.png of the first RUN_DIR)")
    plot.add_argument("--dpi", type=_positive_int, default=110,
                      help=f"resolution in dots per inch (default: 110); the image may have "
                           f"at most {MAX_SIDE} pixels a side and {MAX_PIXELS} in all")
    plot.add_argument("--tau", type=_tau, default=0.99,
                      help="saturation threshold drawn, in (0, 1)")
    plot.set_defaults(func=_plot)

    rep = subparsers.add_parser(
        "report", help="write the Markdown report of runs",
        description="Summary table, postponement, survival medians, statistics across "
                    "seeds and the paper's table, as Markdown.")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                     help="run directories or comparison directories holding them")
    rep.add_argument("--out", metavar="REPORT.md", help="output file (default: stdout)")
    rep.add_argument("--tau", type=_tau, default=0.99,
                     help="saturation threshold on p_y, in (0, 1)")
    rep.add_argument("--window", type=_positive_int, default=1,
                     help="rolling window (recorded rows) for the onset step")
    rep.add_argument("--late", type=_fraction, default=0.25,
                     help="late window: this last fraction of the steps")
    rep.add_argument("--rank-by", default="test_error", choices=RANK_BY,
                     help="the figure the ranking of several methods is sorted by "
                          "(default: test_error)")
    rep.set_defaults(func=_report)
