"""``satkit train``, ``satkit compare`` and ``satkit demo``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from satkit.analysis.ranking import RANK_BY
from satkit.cli.args import add_config_flags, config_from_args, flag_message
from satkit.methods import NOISY
from satkit.training.config import LOSS_NAMES, ConfigError, TrainConfig

__all__ = ["DEMO", "register"]

#: The demo: softmax vs Noisy Softmax on the embedded digits, sized for < 60 s on 2 CPU cores.
DEMO: dict[str, Any] = {"dataset": "digits", "epochs": 12, "batch_size": 64, "lr": 0.05,
                        "flush_every": 50}
DEMO_ALPHA2 = (0.0, 0.1, 1.0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run",
                       description="Train one run; --alpha2 0 is the plain-softmax baseline.")
    add_config_flags(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("compare", help="train every alpha2 x seed and compare them",
                       description="Train every alpha2 x seed, then write comparison.md/.csv, "
                                   "the dashboard figure and a TensorBoard layout.")
    add_config_flags(p, exclude=("loss", "alpha2", "seed", "out", "resume"))
    _add_compare_flags(p, out_default="runs/compare")
    p.set_defaults(func=_compare)

    p = sub.add_parser("demo", help="softmax vs Noisy Softmax on the embedded digits (< 1 min)",
                       description="compare on the embedded digits data set with small, "
                                   "sensible defaults (what `make demo` runs).")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_demo)


def _add_compare_flags(p: argparse.ArgumentParser, *, out_default: str) -> None:
    p.add_argument("--loss", dest="losses", nargs="+", choices=LOSS_NAMES, default=None,
                   metavar="LOSS",
                   help=f"methods to compare (default: noisy); one of {', '.join(LOSS_NAMES)}")
    p.add_argument("--alpha2", dest="alpha2s", type=float, nargs="+", default=None, metavar="A",
                   help="Noisy Softmax's alpha^2 values (0 = plain softmax; default 0.1)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S")
    p.add_argument("--out", default=out_default, help=f"output directory (default: {out_default})")
    # --figures/--no-figures (a config flag) decides the runs' figures and the comparison's;
    # the old --no-figure still works, with a deprecation note (satkit 0.x)
    p.add_argument("--no-figure", dest="no_figure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rank-by", default="test_error", choices=RANK_BY,
                   help="the figure the ranking of several methods is sorted by "
                        "(default: test_error)")
    if out_default == "runs/compare":
        p.add_argument("--resume", action="store_true",
                       help="continue the comparison in --out: finished runs are kept, an "
                            "interrupted one is resumed from its checkpoint, missing ones are "
                            "trained; the grid and the settings that shape training must be "
                            "the ones it started with (epochs may grow)")


def _fail(message: str, status: int = 2) -> int:
    print(f"satkit: error: {message}", file=sys.stderr)
    return status


def _guarded(args: argparse.Namespace, fn, *a: Any, **kwargs: Any) -> Any:
    """Run ``fn``; every failure a user can meet ends in one line and an exit status: 2 for a
    bad setting, 1 for a runtime failure (missing data, a corrupt checkpoint, a non-finite
    loss, a disk that is full or read-only), 130 for SIGINT/SIGTERM (the state is saved)."""
    from satkit.analysis import RunError
    from satkit.data import DataError
    from satkit.run_dir import RunDirError, RunLockedError, describe_os_error
    from satkit.training.checkpoint import CheckpointError
    from satkit.training.interrupt import Interrupted, StopRequested
    from satkit.training.trainer import NonFiniteError

    try:
        return fn(*a, **kwargs)
    except (ConfigError, RunDirError) as exc:
        return _fail(flag_message(str(exc), getattr(args, "config_fields", None)))
    except (DataError, CheckpointError, NonFiniteError, RunError, RunLockedError) as exc:
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(describe_os_error(exc), 1)
    except StopRequested as exc:
        where = f" in {exc.run_dir}" if exc.run_dir is not None else ""
        print(f"\nsatkit: {exc}; state saved{where} (summary.json: finished false). Continue "
              f"it with the same command plus --out {exc.run_dir} --resume.", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"\nsatkit: {exc}.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # train() and compare() turn every later one into Interrupted
        print("\nsatkit: interrupted before training started; nothing was saved.",
              file=sys.stderr)
        return 130


def _note(line: str) -> None:
    print(f"satkit: note: {line}", file=sys.stderr, flush=True)


def tensorboard_hint(path: Any) -> str:
    """The line that tells how to open runs in TensorBoard."""
    return (f"TensorBoard: {path}    open it with: satkit tensorboard {path}"
            f"   (or: tensorboard --logdir {path} --host localhost)")


def _train(args: argparse.Namespace) -> int:
    from satkit.training.distributed import teardown_distributed
    from satkit.training.run import train

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        result = _guarded(args, train, config)
    finally:
        teardown_distributed()
    if isinstance(result, int):
        return result
    if result.summary:  # rank 0 only
        s = result.summary
        onset = "never" if s["onset_step"] is None else s["onset_step"]
        method = s["loss"] if s["loss"] != NOISY else f"Noisy Softmax alpha2={s['alpha2']:g}"
        print(f"{s['dataset']} {method}: test error {s['test_error']:.2f}% "
              f"(best {s['best_test_error']:.2f}%){_calibration_text(s)}, saturation onset step "
              f"{onset}, {s['steps']} steps in {s['seconds']:.1f}s on {s['device']}")
        print(f"run directory: {result.run_dir}")
        print(tensorboard_hint(result.run_dir))
    return 0


def _calibration_text(summary: dict[str, Any]) -> str:
    """``", ECE 0.0182 (0.0151 after temperature scaling, T = 0.935)"``, or less when a figure
    is missing."""
    if summary.get("test_ece") is None:
        return ""
    text = f", ECE {summary['test_ece']:.3g}"
    if summary.get("test_ece_ts") is not None:
        text += (f" ({summary['test_ece_ts']:.3g} after temperature scaling, "
                 f"T = {summary['temperature']:.3g})")
    return text


def _compare(args: argparse.Namespace, *, base: TrainConfig | None = None) -> int:
    from satkit.training.compare import compare

    try:
        config = base if base is not None else config_from_args(args)
    except ConfigError as exc:
        return _fail(str(exc))
    if getattr(args, "no_figure", False):
        _note("--no-figure is deprecated and will be removed: use --no-figures")
        config = config.replace(figures=False)
    result = _guarded(args, compare, config, alpha2s=args.alpha2s, seeds=args.seeds,
                      losses=args.losses, out=args.out, figure=config.figures,
                      resume=getattr(args, "resume", False), notify=_note,
                      rank_by=getattr(args, "rank_by", "test_error"))
    if isinstance(result, int):
        return result
    print(result.markdown)
    if result.figure is not None:
        print(f"figure:      {result.figure}")
    print(f"table:       {result.table_md}")
    print(tensorboard_hint(result.out))
    if result.unfinished:
        return _fail(f"{len(result.unfinished)} run(s) did not finish (summary.json: finished "
                     f"false): {'; '.join(result.unfinished)}", 1)
    return 0


def _demo(args: argparse.Namespace) -> int:
    base = TrainConfig(**DEMO, quiet=args.quiet)
    ns = argparse.Namespace(command="demo", alpha2s=list(DEMO_ALPHA2), seeds=[0], losses=None,
                            out=args.out)
    print(f"satkit demo: softmax vs Noisy Softmax (alpha2 = {', '.join(map(str, DEMO_ALPHA2))}) "
          f"on the embedded digits, {DEMO['epochs']} epochs each", flush=True)
    return _compare(ns, base=base)
