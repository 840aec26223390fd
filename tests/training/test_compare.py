"""compare / summarise: a real tiny comparison of methods ranks them; alpha2 sweeps as before."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from satkit.analysis import load_run, rank_methods, report
from satkit.analysis.ranking import RANKING_COLUMNS
from satkit.training.compare import compare, grid, run_name, summarise, unfinished_runs
from satkit.training.config import TrainConfig
from satkit.training.run import RunResult

LOSSES = ["softmax", "label-smoothing", "focal"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """Three methods on the embedded digits, one epoch of 6 steps each (a few seconds)."""
    base = TrainConfig(dataset="digits", epochs=1, batch_size=256, quiet=True, device="cpu",
                       flush_every=50, histogram_every=50)
    return compare(base, losses=LOSSES, out=tmp_path_factory.mktemp("cmp") / "cmp",
                   figure=False)


def test_compare_ranks_the_methods(comparison):
    assert [r.run_dir.name for r in comparison.runs] == [f"{loss}_seed=0" for loss in LOSSES]
    assert comparison.unfinished == []
    # each run carries the custom-scalars layout; the root holds no event file (no run ".")
    assert not list(comparison.out.glob("events.out.tfevents*"))
    ranking = pd.read_csv(comparison.out / "ranking.csv", keep_default_na=False,
                          na_values=[""])
    assert list(ranking.columns) == list(RANKING_COLUMNS)
    assert sorted(ranking["loss"]) == sorted(LOSSES)
    assert set(ranking["alpha2"]) == {0.0}  # no regulariser pretends to be Noisy Softmax
    assert set(ranking["method"]) == {"softmax (α²=0)", "label smoothing ε=0.1",
                                      "focal loss γ=2"}
    assert list(ranking["test_error"]) == sorted(ranking["test_error"])
    cost = ranking.set_index("loss")["cost_vs_softmax"]
    assert cost["softmax"] == 1.0 and all(c > 0 and math.isfinite(c) for c in cost)
    assert ranking["rank_test_error"].min() == 1
    noisy = pd.read_csv(comparison.out / "ranking_noisy.csv", keep_default_na=False,
                        na_values=[""])
    assert list(noisy.columns) == list(RANKING_COLUMNS)
    # these three losses do not change the logits: both views give the same onsets
    pd.testing.assert_series_equal(noisy["onset_step"], ranking["onset_step"])
    assert "Under the training logits" in comparison.markdown
    # what `satkit compare` prints, and comparison.md
    assert comparison.markdown.startswith("Ranking of the methods")
    for label in ("label smoothing ε=0.1", "focal loss γ=2", "cost vs softmax", "(#1)"):
        assert label in comparison.markdown
    md = comparison.table_md.read_text()
    assert "Ranking of the methods" in md and "Per figure" in md
    assert "label smoothing ε=0.1" in md.split("Ranking")[0]  # the short table too


def test_runs_record_the_method_and_report_ranks(comparison):
    run = load_run(comparison.out / "label-smoothing_seed=0")
    assert (run.loss, run.alpha2, run.noise, run.setting) == ("label-smoothing", 0.0, "none",
                                                              "ε=0.1")
    assert run.config["alpha2"] == 0.1  # the raw field stays; the analysis reads the method
    assert run.seconds_per_step > 0
    text = report(comparison.out)
    assert "## Ranking of the methods" in text and "focal loss γ=2" in text
    assert len(rank_methods(comparison.out)) == 3


def test_summarise_alpha2_sweep_is_unchanged(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "_rundirs", Path(__file__).resolve().parents[1] / "analysis" / "conftest.py")
    rundirs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rundirs)
    results = [RunResult(rundirs.write_run(tmp_path, alpha2=a, steps=60), {})
               for a in (0.0, 0.1)]
    out = summarise(tmp_path, results, figure=False)
    assert out.markdown.startswith("| method | alpha2 | seeds |")
    assert "Ranking" not in out.table_md.read_text()
    assert not (tmp_path / "ranking.csv").exists()


def test_grid_names_runs_by_the_method_as_applied_without_duplicates():
    base = TrainConfig(quiet=True)
    configs = grid(base, losses=["softmax", "noisy"], alpha2s=[0.0, 0.1], seeds=[0, 1])
    assert [run_name(c) for c in configs] == [
        "softmax_seed=0", "noisy-softmax_alpha2=0.1_seed=0",
        "softmax_seed=1", "noisy-softmax_alpha2=0.1_seed=1"]


def test_a_diverging_run_is_kept_and_reported_unfinished(tmp_path):
    base = TrainConfig(dataset="digits", epochs=1, batch_size=256, quiet=True, device="cpu",
                       flush_every=2, histogram_every=50, figures=False)
    result = compare(base, alpha2s=[0.0, 1e300], out=tmp_path / "cmp", figure=False)
    noisy = "noisy-softmax_alpha2=1e+300_seed=0"
    assert [r.run_dir.name for r in result.runs] == ["softmax_seed=0", noisy]
    assert len(result.unfinished) == 1
    assert result.unfinished[0].startswith(f"{noisy} (stopped after 0/1 epochs")
    diverged = load_run(result.out / noisy)
    assert diverged.summary["finished"] is False and len(diverged.metrics) >= 1
    (result.out / "softmax_seed=0" / "summary.json").unlink()  # e.g. killed
    assert unfinished_runs([r.run_dir for r in result.runs])[0] == \
        "softmax_seed=0 (no summary.json)"
