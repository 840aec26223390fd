"""``satkit tensorboard RUN_DIR...``: serve runs in TensorBoard until Ctrl-C.

One directory is served as ``--logdir`` (a comparison directory shows each of its runs);
several are served together through a temporary tree of symlinks named after them (see
:mod:`satkit.tensorboard`). Binds to ``localhost`` unless ``--host`` says otherwise; a host
other machines can reach (``0.0.0.0``, a LAN address) gets a warning on stderr, and the URLs
printed are the addresses it answers on, interface by interface.
Exit status: 0 when stopped with Ctrl-C (or SIGTERM), 2 for a missing directory or a bad
port, 1 when TensorBoard fails to start or exits by itself.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from satkit.tensorboard import DEFAULT_HOST, DEFAULT_PORT, TensorBoardError, TensorBoardServer
from satkit.tensorboard.addresses import exposed, serving_urls

__all__ = ["TABS", "register", "tab_guide"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``tensorboard`` subcommand to ``sub`` (its ``func`` returns an exit status)."""
    p = sub.add_parser(
        "tensorboard", help="serve run or comparison directories in TensorBoard",
        description="Serve run or comparison directories in TensorBoard until Ctrl-C. "
                    "Same as `tensorboard --logdir DIR --host localhost` for one directory; "
                    "several are shown side by side, each run named after its directory.")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run directories or comparison directories")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default: {DEFAULT_HOST}, this machine only; "
                        "0.0.0.0 exposes your runs to the network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve on; 0 picks a free one (default: {DEFAULT_PORT})")
    p.add_argument("--reload-interval", type=float, default=5.0, metavar="SECONDS",
                   help="how often to re-read event files of runs still training (default: 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve ``args.run_dirs`` until interrupted; returns the exit status."""
    missing = [str(d) for d in args.run_dirs if not d.is_dir()]
    if missing:
        return _fail(f"not a directory: {', '.join(missing)}", 2)
    if not 0 <= args.port <= 65535 or args.reload_interval < 0:
        return _fail("--port must be in 0..65535 and --reload-interval >= 0", 2)
    server = TensorBoardServer(args.run_dirs, host=args.host, port=args.port,
                               reload_interval=args.reload_interval)
    public = exposed(args.host)
    if public:
        print(f"satkit: warning: --host {args.host or repr(args.host)} makes these runs visible "
              "to the network: anyone who can reach this machine can read them (TensorBoard "
              "asks for no password). Use --host localhost to keep them on this machine.",
              file=sys.stderr, flush=True)
    with _terminate_as_interrupt():
        try:
            with server:
                where = ", ".join(f"{url} ({place})" if place else url for url, place in
                                  serving_urls(args.host, server.port)) if public else server.url
                print(f"TensorBoard at {where} (Ctrl-C to stop)\n{tab_guide(server.url)}",
                      flush=True)
                status = server.wait()
        except KeyboardInterrupt:
            print("TensorBoard stopped.", flush=True)
            return 0
        except TensorBoardError as exc:
            return _fail(str(exc), 1)
    return _fail(f"TensorBoard exited by itself with status {status}", 1)


#: The tabs to open first, and what each shows of a satkit run (``docs/tensorboard.md``).
TABS = (("custom_scalars", "the runs compared chart by chart, saturation in both views first"),
        ("hparams", "one row per run: its settings and final figures"),
        ("timeseries", "every tag, grouped; the two views of saturation open first"))


def tab_guide(url: str) -> str:
    """Lines naming the tabs to open and their addresses (``url#tab``)."""
    return "\n".join(f"  {url}#{tab:<15} {what}" for tab, what in TABS)


def _fail(message: str, status: int) -> int:
    print(f"satkit: error: {message}", file=sys.stderr)
    return status


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Make SIGTERM raise KeyboardInterrupt meanwhile, so ``kill`` also stops TensorBoard."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
