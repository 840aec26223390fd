"""``compare``: a run per method x alpha2 x seed, then a comparison table and figure.

Each run directory carries the TensorBoard custom-scalars layout itself (TensorBoard merges
them), so the comparison root holds no event file and shows no run of its own. The root holds
``compare.json`` (:data:`satkit.schema.COMPARE`), the comparison's plan: the base config and
the grid. ``resume=True`` continues a comparison from it: finished runs are kept untouched,
the interrupted one is resumed from its checkpoint, the missing ones are trained, and the
tables and figures are written as an uninterrupted comparison writes them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satkit import schema
from satkit.methods import NOISY
from satkit.run_dir import (
    atomic_write_text,
    claim_run_dir,
    lock_run_dir,
    write_json,
)
from satkit.training.compose import check_config
from satkit.training.config import ConfigError, TrainConfig
from satkit.training.faults import Pause, pause_from_env
from satkit.training.figures import save_dashboard
from satkit.training.interrupt import Interrupted, StopRequested
from satkit.training.naming import run_name
from satkit.training.resume import check_resume_config
from satkit.training.run import RunResult, train
from satkit.training.trainer import NonFiniteError

__all__ = ["Comparison", "compare", "earlier_comparison", "grid", "run_name", "summarise",
           "unfinished_runs"]


@dataclass
class Comparison:
    """The outputs of :func:`compare`.

    Attributes:
        unfinished: runs whose ``summary.json`` is missing or says ``finished: false`` (e.g. a
            diverging alpha2), each with what it reports of how far it got.
    """

    out: Path
    runs: list[RunResult]
    table_csv: Path
    table_md: Path
    markdown: str
    figure: Path | None
    unfinished: list[str] = field(default_factory=list)


def unfinished_runs(run_dirs: Sequence[Path]) -> list[str]:
    """``"NAME (...)"`` for each run that did not finish: no ``summary.json`` (killed, or still
    running) or one that says ``finished: false`` (stopped early)."""
    out = []
    for run_dir in run_dirs:
        path = Path(run_dir) / schema.SUMMARY
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.append(f"{Path(run_dir).name} (no summary.json)")
            continue
        if summary.get("finished") is not True:
            out.append(f"{Path(run_dir).name} (stopped after {summary.get('epochs')}/"
                       f"{summary.get('epochs_planned')} epochs, {summary.get('steps')} steps)")
    return out


def grid(base: TrainConfig, *, alpha2s: Sequence[float] | None = None,
         seeds: Sequence[int] = (0,), losses: Sequence[str] | None = None) -> list[TrainConfig]:
    """The configs of a comparison: every method x seed, and for Noisy Softmax every alpha2.

    Raises:
        ConfigError: an empty or repeated list, or an unknown loss.
    """
    losses = [base.loss] if losses is None else list(losses)
    alpha2s = [base.alpha2] if alpha2s is None else [float(a) for a in alpha2s]
    for name, values in (("alpha2", alpha2s), ("seeds", seeds), ("loss", losses)):
        if not values:
            raise ConfigError(f"compare needs at least one value of {name}")
        if len(set(values)) != len(values):
            raise ConfigError(f"compare: {name} values must not repeat, got {list(values)}")
    configs: dict[str, TrainConfig] = {}
    for seed in seeds:
        for loss in losses:
            for a in alpha2s if loss == NOISY else [base.alpha2]:
                config = base.replace(loss=loss, alpha2=a, seed=int(seed))
                configs.setdefault(run_name(config), config)  # softmax = noisy at alpha2 0
    return list(configs.values())


def earlier_comparison(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` holds a comparison that ``compare(..., resume=True)`` can continue."""
    return (Path(out) / schema.COMPARE).is_file()


def _plan(base: TrainConfig, configs: list[TrainConfig], alpha2s: Sequence[float] | None,
          seeds: Sequence[int], losses: Sequence[str] | None) -> dict[str, Any]:
    return {"base": base.replace(out=None, resume=False).to_dict(),
            "loss": list(losses) if losses is not None else [base.loss],
            "alpha2": [float(a) for a in alpha2s] if alpha2s is not None else [base.alpha2],
            "seeds": [int(s) for s in seeds], "runs": [run_name(c) for c in configs]}


def _check_plan(saved: dict[str, Any], plan: dict[str, Any], base: TrainConfig,
                out: Path) -> None:
    """Refuse to continue a comparison with another grid or other settings (exit 2)."""
    differences = [f"{key}: {saved.get(key)} in {schema.COMPARE}, {plan[key]} now"
                   for key in ("loss", "alpha2", "seeds") if saved.get(key) != plan[key]]
    if differences:
        raise ConfigError(f"--resume: {out} compares another grid ({'; '.join(differences)}); "
                          "give the same --loss, --alpha2 and --seeds, or start a new "
                          "comparison without --resume")
    if not isinstance(saved.get("base"), dict):
        raise ConfigError(f"--resume: {out / schema.COMPARE} holds no base config")
    check_resume_config(saved["base"], base, out)


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        summary = json.loads((run_dir / schema.SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _train_one(config: TrainConfig, run_dir: Path, position: tuple[int, int],
               resume: bool, notify: Callable[[str], None],
               peers: Sequence[TrainConfig] = ()) -> RunResult:
    """Train one run of the grid, or, continuing a comparison, keep, resume or redo it;
    ``peers``, the grid, configure its TensorBoard HPARAMS (:func:`satkit.training.train`)."""
    if resume and run_dir.exists():
        summary = _read_summary(run_dir)
        done = summary is not None and (summary.get("finished") is True or
                                        summary.get("stop_reason") == "non-finite")
        if done and summary.get("epochs_planned") == config.epochs:
            try:
                saved = json.loads((run_dir / schema.CONFIG).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                saved = None
            if isinstance(saved, dict):
                check_resume_config(saved, check_config(config), run_dir)
                return RunResult(run_dir, summary)  # finished (or diverged): kept untouched
        if (run_dir / schema.CHECKPOINT).is_file():
            return train(config.replace(out=str(run_dir), resume=True), position=position,
                         peers=peers)
        with lock_run_dir(run_dir):  # refused while another process writes it
            notify(f"{run_dir} was stopped before its first checkpoint; training it again")
            shutil.rmtree(run_dir)
    return train(config.replace(out=str(run_dir), resume=False), position=position,
                 peers=peers)


def compare(base: TrainConfig, *, alpha2s: Sequence[float] | None = None,
            seeds: Sequence[int] = (0,), losses: Sequence[str] | None = None,
            out: str | os.PathLike[str] = "runs/compare", figure: bool = True,
            resume: bool = False,
            notify: Callable[[str], None] | None = None,
            rank_by: str = "test_error") -> Comparison:
    """Train every method x alpha2 x seed of ``base`` into ``out/<run_name>/``; compare them.

    ``losses`` defaults to ``[base.loss]`` and ``alpha2s`` (used by ``"noisy"`` only) to
    ``[base.alpha2]``; ``alpha2s=[0, 0.1, 1]`` with the default loss compares plain softmax
    with Noisy Softmax at two noise levels.

    Writes ``out/compare.json`` (the plan), ``out/comparison.csv`` (one row per run),
    ``out/comparison.md`` (per alpha2: mean and 95% interval over seeds) and
    ``out/figures/dashboard.png``; ``tensorboard --logdir out`` overlays the runs. A new
    comparison never overwrites an existing directory (a suffix is added; ``notify`` is told,
    and that ``resume`` would continue it). A run whose loss becomes non-finite is kept (its
    tables up to there, and ``summary.json`` with ``finished: false``), listed in
    ``Comparison.unfinished``, and the other runs go on. The process holds the lock of
    ``out`` (:class:`satkit.run_dir.RunDirLock`) while it compares.

    Args:
        resume: continue the comparison in ``out``: finished (and diverged) runs are kept
            untouched, a run with a checkpoint is resumed from it, a run stopped before its
            first checkpoint is trained again, the missing runs are trained; the grid and
            every setting that shapes training must be the ones it was started with
            (``epochs`` may grow: the finished runs are then resumed too).
        notify: called with a line for the user (the earlier comparison at ``out``, a run
            trained again); default: nothing.
        rank_by: the figure the ranking of several methods is sorted by
            (:data:`satkit.analysis.ranking.RANK_BY`: ``test_error``, ``test_ece``, ...); it
            changes only the tables, so a resumed comparison may choose another.

    Raises:
        ConfigError: empty or repeated alpha2/seed/loss lists; ``resume`` with another grid or
            other settings; an unknown ``rank_by``.
        RunDirError: ``resume`` and ``out`` holds no comparison.
        RunLockedError: another process holds ``out`` (or one of its runs).
        Interrupted: SIGINT/SIGTERM (or a Ctrl-C between runs); its message says what was
            saved and that ``resume`` continues; ``exc.run_dir`` is the comparison.
    """
    from satkit.analysis.ranking import RANK_BY

    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by must be one of {', '.join(RANK_BY)}; got {rank_by!r}")
    notify = notify or (lambda _line: None)
    configs = grid(base, alpha2s=alpha2s, seeds=seeds, losses=losses)
    plan = _plan(base, configs, alpha2s, seeds, losses)
    if resume:
        lock = claim_run_dir(out, resume=True, requires=schema.COMPARE)
    else:
        lock = claim_run_dir(out)
        if lock.path != Path(out) and earlier_comparison(out):
            notify(f"{out} holds an earlier comparison, so this one goes to {lock.path}; to "
                   "continue the earlier one instead, run the same command with --resume")
    out_dir = lock.path
    with lock:
        if resume:
            try:
                saved = json.loads((out_dir / schema.COMPARE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"--resume: {out_dir / schema.COMPARE} is unreadable "
                                  f"({exc})") from exc
            _check_plan(saved if isinstance(saved, dict) else {}, plan, base, out_dir)
        else:
            write_json(out_dir / schema.COMPARE, plan)
        runs: list[RunResult] = []
        pause = pause_from_env()
        try:
            for k, config in enumerate(configs, start=1):
                if pause is not None:
                    pause.at("run")
                run_dir = out_dir / run_name(config)
                try:
                    runs.append(_train_one(config, run_dir, (k, len(configs)), resume,
                                           notify, configs))
                except NonFiniteError:
                    runs.append(RunResult(run_dir, {}))
            return summarise(out_dir, runs, figure=figure, pause=pause, rank_by=rank_by)
        except StopRequested as exc:
            raise Interrupted(
                f"{exc}; the run in {exc.run_dir} was saved (summary.json: finished false) "
                f"and {len(runs)} of the comparison's {len(configs)} runs are complete. "
                f"Continue the comparison with the same command plus --out {out_dir} --resume",
                out_dir) from exc
        except KeyboardInterrupt as exc:
            what = ("while writing its tables and figure; every run is complete"
                    if len(runs) == len(configs) else
                    f"between runs; {len(runs)} of its {len(configs)} runs are complete")
            raise Interrupted(f"comparison {out_dir} interrupted {what}. Continue it with "
                              f"the same command plus --out {out_dir} --resume",
                              out_dir) from exc


def summarise(out_dir: Path, runs: list[RunResult], *, figure: bool = True,
              pause: Pause | None = None, rank_by: str = "test_error") -> Comparison:
    """Write the comparison table and figure for the runs (``unfinished`` lists those that
    stopped early).

    When the runs compare softmax regularisers (not only softmax / Noisy Softmax alpha2
    settings), the ranking of :func:`satkit.analysis.rank_methods` is what ``markdown``
    holds (what ``satkit compare`` prints), in both views, ``comparison.md`` gains it as a
    section and ``ranking.csv`` / ``ranking_noisy.csv`` hold it in full (clean view / under the
    training logits), sorted by ``rank_by``; an alpha2 comparison is summarised as before.
    Test error, ECE and (with a validation split) ECE after temperature scaling stand beside
    the onsets in every table. ``pause`` is the fault point before the figure
    (:mod:`satkit.training.faults`; tests only).
    """
    from satkit.analysis import (
        comparison_table,
        has_several_methods,
        load_run,
        markdown_table,
        postponement_table,
        rank_methods,
        ranking_markdown,
        run_table,
        seed_summary,
    )
    loaded = [load_run(r.run_dir) for r in runs]
    per_run = run_table(loaded)
    per_run.to_csv(out_dir / "comparison.csv", index=False)
    short = markdown_table(comparison_table(per_run))
    detail = markdown_table(seed_summary(per_run))
    text, ranking = short, ""
    postponed = postponement_table(loaded)
    if len(postponed):
        section = ("Is saturation postponed? Each run against softmax (same seed): the median "
                   "step at which a sample first saturated, softmax → run, in both views; "
                   "one-sided log-rank p of \"softmax saturates earlier\" (small: postponed); "
                   "late-gradient ratio (> 1: gradient still flows) and noise late/early (< 1: "
                   "it anneals).\n\n" + markdown_table(postponed, formats={
                       c: ".2g" for c in postponed.columns if c.startswith("p (")}))
        short = f"{short}\n\n{section}"
        text = short
    if has_several_methods(per_run):
        table = rank_methods(loaded, rank_by=rank_by)
        noisy = rank_methods(loaded, saturation="noisy", rank_by=rank_by)
        table.to_csv(out_dir / "ranking.csv", index=False)
        noisy.to_csv(out_dir / "ranking_noisy.csv", index=False)
        text = (f"Ranking of the methods, sorted by {rank_by} ((#k): rank on that figure; "
                "ECE: expected calibration error of the test set's top-1 confidence, 15 bins; "
                "ECE after TS: after temperature scaling fitted on the validation split; cost: "
                "measured training wall time per step relative to softmax on this machine). "
                "Clean view:\n\n"
                + ranking_markdown(table) + "\n\nUnder the training logits (onset and median "
                "sample onset of the softmax each loss trained on):\n\n"
                + ranking_markdown(noisy))
        ranking = text + "\n"
    atomic_write_text(out_dir / "comparison.md",
                      f"{short}\n\n{ranking}"
                      f"Per figure, mean and 95% t-interval over seeds:\n\n{detail}\n")
    fig_path = None
    if figure:
        if pause is not None:
            pause.at("figures")
        fig_path = save_dashboard(loaded, out_dir / schema.DASHBOARD)
    return Comparison(out_dir, runs, out_dir / "comparison.csv", out_dir / "comparison.md",
                      text, fig_path, unfinished_runs([r.run_dir for r in runs]))
