"""The ``satkit`` command: ``train``, ``compare``, ``demo``, ``plot``, ``report``,
``label-issues``, ``tensorboard``.

Each subcommand lives in a module with ``register(subparsers)``; this file only dispatches.
Exit status: 0 on success, 2 for a bad argument or config, 130 when interrupted (the run was
saved and ``--resume`` continues it), 1 for any other error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: Modules (under satkit.cli) that each register one or more subcommands.
SUBCOMMAND_MODULES = ("training", "analysis", "label_issues", "tensorboard")


def build_parser() -> argparse.ArgumentParser:
    from satkit._version import __version__

    parser = argparse.ArgumentParser(
        prog="satkit", description="Measure softmax saturation; postpone it with Noisy Softmax.")
    parser.add_argument("--version", action="version", version=f"satkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"satkit.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
