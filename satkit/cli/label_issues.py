"""``satkit label-issues``: the training samples most likely mislabeled, from one run.

Reads the run's samples table (no training, no model), ranks the samples it saw by a
suspicion score (:func:`satkit.analysis.label_issue_scores`) and prints the ``--top`` most
suspicious: index, label, score, Data Maps region (and, for a run trained with
``--label-noise``, its true label and whether it was corrupted), then, for such a run, how
well every score finds the corrupted labels (:func:`satkit.analysis.detection_quality`).
``--out FILE.csv`` writes every scored sample, most suspicious first. Exit status: 0 ok, 1 the
run directory is missing or corrupt or lacks the per-sample dynamics, or the file cannot be
written, 2 a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def _fail(message: str, status: int) -> int:
    print(f"satkit label-issues: error: {message}", file=sys.stderr)
    return status


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def ranked_issues(run, score: str):
    """Every sample the run saw, most suspicious first: index, label, score, region, and the
    true label and corruption when the run knows them."""
    from satkit.analysis import data_map, label_issue_scores

    scores = label_issue_scores(run, score)
    frame = data_map(run).set_index("index").loc[scores.index]
    out = frame.reindex(columns=[c for c in ("label", "true_label", "label_corrupted")
                                 if c in frame.columns])
    out.insert(min(1, len(out.columns)), "score", scores.to_numpy())
    out["region"] = frame["region"].astype(str)
    out = out.reset_index()
    return out.sort_values(["score", "index"], ascending=[False, True], kind="stable")


def _label_issues(args: argparse.Namespace) -> int:
    from satkit.analysis import RunError, detection_quality, load_run
    from satkit.analysis.markdown import markdown_table

    out = None if args.out is None else Path(args.out)
    if out is not None and (out.is_dir() or out.suffix.lower() != ".csv"):
        return _fail(f"--out {out}: give a .csv file name", 2)
    try:
        run = load_run(args.run_dir)
        ranked = ranked_issues(run, args.score)
    except RunError as exc:
        return _fail(str(exc), 1)
    if ranked.empty:
        return _fail(f"{args.run_dir}: the run saw no training sample (nothing recorded)", 1)
    print(f"{run.name}: the {min(args.top, len(ranked))} most suspicious of {len(ranked)} "
          f"training samples by {args.score!r} (higher = more suspicious)\n")
    print(markdown_table(ranked.head(args.top), formats={"score": ".4g"}).rstrip())
    known = "label_corrupted" in ranked and ranked["label_corrupted"].astype(bool).any()
    if known:
        quality = detection_quality(run)
        print(f"\nLabels corrupted by --label-noise: {int(ranked['label_corrupted'].sum())} "
              f"of {len(ranked)}. How well each score finds them (chance: AUROC 0.5, the "
              "others the corrupted fraction; k = the true count):\n")
        print(markdown_table(quality, formats={"auroc": ".3f", "average_precision": ".3f",
                                               "precision_at_k": ".3f"}).rstrip())
    if out is not None:
        from satkit.run_dir import atomic_write_bytes, describe_os_error

        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out, ranked.to_csv(index=False).encode("utf-8"))
        except OSError as exc:
            return _fail(f"--out: {describe_os_error(exc, out)}", 1)
        print(f"\nall {len(ranked)} scored samples: {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``label-issues`` subcommand."""
    from satkit.analysis.label_issues import SCORES

    p = subparsers.add_parser(
        "label-issues", help="the training samples most likely mislabeled, from one run",
        description="Rank a run's training samples by a suspicion score read from its "
                    "per-sample training dynamics (no retraining) and print the most "
                    "suspicious; for a run trained with --label-noise, also how well each "
                    "score finds the corrupted labels.")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("--score", choices=SCORES, default="aum",
                   help="the suspicion score (default: aum)")
    p.add_argument("--top", type=_positive_int, default=20,
                   help="how many samples to print (default: 20)")
    p.add_argument("--out", metavar="FILE.csv",
                   help="write every scored sample, most suspicious first")
    p.set_defaults(func=_label_issues)
