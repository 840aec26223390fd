"""``compare``: a run per method x alpha2 x seed, then a comparison table and figure.

Each run directory carries the TensorBoard custom-scalars layout itself (TensorBoard merges
them), so the comparison root holds no event file and shows no run of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from satkit import schema
from satkit.training.config import ConfigError, TrainConfig
from satkit.training.figures import save_dashboard
from satkit.training.run import RunResult, train
from satkit.training.run_dir import atomic_write_text, create_run_dir, run_name
from satkit.training.trainer import NonFiniteError

__all__ = ["Comparison", "compare", "grid", "run_name", "summarise", "unfinished_runs"]


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
            for a in alpha2s if loss == "noisy" else [base.alpha2]:
                config = base.replace(loss=loss, alpha2=a, seed=int(seed))
                configs.setdefault(run_name(config), config)  # softmax = noisy at alpha2 0
    return list(configs.values())


def compare(base: TrainConfig, *, alpha2s: Sequence[float] | None = None,
            seeds: Sequence[int] = (0,), losses: Sequence[str] | None = None,
            out: str | os.PathLike[str] = "runs/compare", figure: bool = True) -> Comparison:
    """Train every method x alpha2 x seed of ``base`` into ``out/<run_name>/``; compare them.

    ``losses`` defaults to ``[base.loss]`` and ``alpha2s`` (used by ``"noisy"`` only) to
    ``[base.alpha2]``; ``alpha2s=[0, 0.1, 1]`` with the default loss compares plain softmax
    with Noisy Softmax at two noise levels.

    Writes ``out/comparison.csv`` (one row per run), ``out/comparison.md`` (per alpha2: mean
    and 95% interval over seeds) and ``out/figures/dashboard.png``; ``tensorboard --logdir out``
    overlays the runs. A new comparison never overwrites an existing directory (a suffix is
    added). A run whose loss becomes non-finite is kept (its tables up to there, and
    ``summary.json`` with ``finished: false``), listed in ``Comparison.unfinished``, and the
    other runs go on.

    Raises:
        ConfigError: empty or repeated alpha2/seed/loss lists.
        StopRequested: SIGINT/SIGTERM; ``exc.run_dir`` is the run that was saved.
    """
    configs = grid(base, alpha2s=alpha2s, seeds=seeds, losses=losses)
    out_dir = create_run_dir(out)
    runs = []
    for k, config in enumerate(configs, start=1):
        run_dir = out_dir / run_name(config)
        try:
            runs.append(train(config.replace(out=str(run_dir), resume=False),
                              position=(k, len(configs)), peers=configs))
        except NonFiniteError:
            runs.append(RunResult(run_dir, {}))
    return summarise(out_dir, runs, figure=figure)


def summarise(out_dir: Path, runs: list[RunResult], *, figure: bool = True) -> Comparison:
    """Write the comparison table and figure for the runs (``unfinished`` lists those that
    stopped early).

    When the runs compare softmax regularisers (not only softmax / Noisy Softmax alpha2
    settings), the ranking of :func:`satkit.analysis.rank_methods` is what ``markdown``
    holds (what ``satkit compare`` prints), in both views, ``comparison.md`` gains it as a
    section and ``ranking.csv`` / ``ranking_noisy.csv`` hold it in full (clean view / under the
    training logits); an alpha2 comparison is summarised as before.
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
        table = rank_methods(loaded)
        noisy = rank_methods(loaded, saturation="noisy")
        table.to_csv(out_dir / "ranking.csv", index=False)
        noisy.to_csv(out_dir / "ranking_noisy.csv", index=False)
        text = ("Ranking of the methods ((#k): rank on that figure; cost: measured training "
                "wall time per step relative to softmax on this machine). Clean view:\n\n"
                + ranking_markdown(table) + "\n\nUnder the training logits (onset and median "
                "sample onset of the softmax each loss trained on):\n\n"
                + ranking_markdown(noisy))
        ranking = text + "\n"
    atomic_write_text(out_dir / "comparison.md",
                      f"{short}\n\n{ranking}"
                      f"Per figure, mean and 95% t-interval over seeds:\n\n{detail}\n")
    fig_path = None
    if figure:
        fig_path = save_dashboard(loaded, out_dir / schema.DASHBOARD)
    return Comparison(out_dir, runs, out_dir / "comparison.csv", out_dir / "comparison.md",
                      text, fig_path, unfinished_runs([r.run_dir for r in runs]))
