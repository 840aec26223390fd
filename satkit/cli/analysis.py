"""``satkit plot`` and ``satkit report``: figures and the Markdown report of finished runs.

Both take run directories and/or comparison directories (which expand to the runs they
hold). The logic lives in :mod:`satkit.analysis` and :mod:`satkit.plots`; this module only
parses arguments, writes files and maps errors to exit statuses (0 ok, 1 a run directory is
missing or corrupt, 2 a bad argument).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["FIGURE_SUFFIXES", "register"]

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def _fail(command: str, message: str, status: int) -> int:
    print(f"satkit {command}: error: {message}", file=sys.stderr)
    return status


def _plot(args: argparse.Namespace) -> int:
    from satkit.analysis import RunError, as_runs

    out = Path(args.out) if args.out else Path(args.run_dirs[0]) / "figures" / "dashboard.png"
    if out.suffix.lower() not in FIGURE_SUFFIXES:
        return _fail("plot", f"--out {out}: the suffix must be one of {FIGURE_SUFFIXES}", 2)
    try:
        runs = as_runs(args.run_dirs)
    except RunError as exc:
        return _fail("plot", str(exc), 1)
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window from the command line
    from satkit.plots import dashboard

    fig = dashboard(runs, tau=args.tau)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    print(f"figure: {out} ({len(runs)} run(s))")
    return 0


def _report(args: argparse.Namespace) -> int:
    from satkit.analysis import RunError, report

    try:
        text = report(args.run_dirs, tau=args.tau, window=args.window, late=args.late)
    except RunError as exc:
        return _fail("report", str(exc), 1)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"report: {out}")
    return 0


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
    plot = subparsers.add_parser(
        "plot", help="save the dashboard figure of runs",
        description="Save one figure with every satkit plot for the given runs.")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                      help="run directories or comparison directories holding them")
    plot.add_argument("--out", metavar="FIG",
                      help="output file, .png/.pdf/.svg (default: "
                           "RUN_DIR/figures/dashboard.png of the first RUN_DIR)")
    plot.add_argument("--dpi", type=_positive_int, default=110, help="resolution for .png")
    plot.add_argument("--tau", type=float, default=0.99, help="saturation threshold drawn")
    plot.set_defaults(func=_plot)

    rep = subparsers.add_parser(
        "report", help="write the Markdown report of runs",
        description="Summary table, postponement, survival medians, statistics across "
                    "seeds and the paper's table, as Markdown.")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                     help="run directories or comparison directories holding them")
    rep.add_argument("--out", metavar="REPORT.md", help="output file (default: stdout)")
    rep.add_argument("--tau", type=float, default=0.99, help="saturation threshold on p_y")
    rep.add_argument("--window", type=_positive_int, default=1,
                     help="rolling window (recorded rows) for the onset step")
    rep.add_argument("--late", type=_fraction, default=0.25,
                     help="late window: this last fraction of the steps")
    rep.set_defaults(func=_report)
