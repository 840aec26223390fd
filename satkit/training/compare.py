"""``compare``: a run per alpha2 x seed, then a comparison table, figure and TensorBoard layout."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from satkit.training.config import ConfigError, TrainConfig
from satkit.training.figures import save_dashboard
from satkit.training.run import RunResult, train
from satkit.training.run_dir import atomic_write_text, create_run_dir

__all__ = ["Comparison", "compare", "grid", "run_name", "summarise"]


@dataclass
class Comparison:
    """The outputs of :func:`compare`."""

    out: Path
    runs: list[RunResult]
    table_csv: Path
    table_md: Path
    markdown: str
    figure: Path | None


def run_name(config: TrainConfig) -> str:
    """Directory name of one run inside a comparison.

    ``alpha2=0.1_seed=0`` for Noisy Softmax (prefixed by the noise family unless annealed),
    ``label-smoothing_seed=0`` for the other methods.
    """
    if config.loss != "noisy":
        return f"{config.loss}_seed={config.seed}"
    name = f"alpha2={config.alpha2:g}_seed={config.seed}"
    return name if config.noise == "annealed" else f"{config.noise}_{name}"


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
    configs = []
    for seed in seeds:
        for loss in losses:
            for a in alpha2s if loss == "noisy" else [base.alpha2]:
                configs.append(base.replace(loss=loss, alpha2=a, seed=int(seed)))
    return configs


def compare(base: TrainConfig, *, alpha2s: Sequence[float] | None = None,
            seeds: Sequence[int] = (0,), losses: Sequence[str] | None = None,
            out: str | os.PathLike[str] = "runs/compare", figure: bool = True) -> Comparison:
    """Train every method x alpha2 x seed of ``base`` into ``out/<run_name>/``; compare them.

    ``losses`` defaults to ``[base.loss]`` and ``alpha2s`` (used by ``"noisy"`` only) to
    ``[base.alpha2]``; ``alpha2s=[0, 0.1, 1]`` with the default loss compares plain softmax
    with Noisy Softmax at two noise levels.

    Writes ``out/comparison.csv`` (one row per run), ``out/comparison.md`` (per alpha2: mean
    and 95% interval over seeds), ``out/figures/dashboard.png`` and a TensorBoard
    custom-scalars layout that overlays the runs. A new comparison never overwrites an
    existing directory (a suffix is added).

    Raises:
        ConfigError: empty or repeated alpha2/seed/loss lists.
    """
    configs = grid(base, alpha2s=alpha2s, seeds=seeds, losses=losses)
    out_dir = create_run_dir(out)
    runs = [train(c.replace(out=str(out_dir / run_name(c)), resume=False)) for c in configs]
    return summarise(out_dir, runs, figure=figure)


def summarise(out_dir: Path, runs: list[RunResult], *, figure: bool = True) -> Comparison:
    """Write the comparison table, figure and TensorBoard layout for finished runs.

    When the runs compare softmax regularisers (not only softmax / Noisy Softmax alpha2
    settings), the ranking of :func:`satkit.analysis.rank_methods` is what ``markdown``
    holds (what ``satkit compare`` prints), ``comparison.md`` gains it as a section and
    ``ranking.csv`` holds it in full; an alpha2 comparison is summarised as before.
    """
    from satkit.analysis import (
        comparison_table,
        has_several_methods,
        load_run,
        markdown_table,
        rank_methods,
        ranking_markdown,
        run_table,
        seed_summary,
    )
    from satkit.sinks.tensorboard import write_comparison_layout

    loaded = [load_run(r.run_dir) for r in runs]
    per_run = run_table(loaded)
    per_run.to_csv(out_dir / "comparison.csv", index=False)
    short = markdown_table(comparison_table(per_run))
    detail = markdown_table(seed_summary(per_run))
    text, ranking = short, ""
    if has_several_methods(per_run):
        table = rank_methods(loaded)
        table.to_csv(out_dir / "ranking.csv", index=False)
        text = ("Ranking of the methods ((#k): rank on that figure; cost: measured training "
                "wall time per step relative to softmax on this machine):\n\n"
                + ranking_markdown(table))
        ranking = text + "\n"
    atomic_write_text(out_dir / "comparison.md",
                      f"{short}\n\n{ranking}"
                      f"Per figure, mean and 95% t-interval over seeds:\n\n{detail}\n")
    write_comparison_layout(out_dir, [r.run_dir.name for r in runs])
    fig_path = None
    if figure:
        fig_path = save_dashboard(loaded, out_dir / "figures" / "dashboard.png")
    return Comparison(out_dir, runs, out_dir / "comparison.csv", out_dir / "comparison.md",
                      text, fig_path)
