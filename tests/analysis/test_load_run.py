"""Loading run directories: contents, tidy form, and clear errors on broken directories."""

import json

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import (
    Run,
    RunError,
    as_runs,
    find_run_dirs,
    load_run,
    load_runs,
    onset_step,
    run_table,
    survival,
)


def test_load_run_reads_every_file(make_run):
    path = make_run(alpha2=0.1, seed=3, steps=50)
    run = load_run(path)
    assert isinstance(run, Run) and run.path == path and run.name == "alpha2=0.1_seed=3"
    assert (run.alpha2, run.seed, run.noise, run.loss, run.dataset) == (0.1, 3, "annealed",
                                                                        "noisy", "digits")
    assert len(run.metrics) == 50 and run.metrics["step"].is_monotonic_increasing
    assert run.samples["first_saturated_step"].dtype == "Int64"
    assert list(run.epochs["epoch"]) == [1, 2, 3]
    assert run.summary["steps"] == 50 and run.last_step == 49


def test_softmax_run_has_noise_none(make_run):
    assert load_run(make_run(alpha2=0.0)).noise == "none"


def test_unsorted_metrics_are_sorted(make_run, metrics_factory):
    metrics = metrics_factory(10, 0.0).iloc[::-1]
    run = load_run(make_run(metrics=metrics))
    assert list(run.metrics["step"]) == list(range(10))


def test_load_runs_is_tidy_and_exact(make_run):
    a = make_run(alpha2=0.0, seed=0, steps=20)
    b = make_run(alpha2=0.1, seed=1, steps=30)
    tidy = load_runs([a, b])
    assert list(tidy.columns) == ["run", "alpha2", "seed", "loss", "setting", "noise", "step",
                                  "metric", "value"]
    n_metrics = tidy["metric"].nunique()
    assert len(tidy) == (20 + 30) * n_metrics
    got = tidy.query("run == 'alpha2=0.1_seed=1' and metric == 'grad_target_mean' and step == 7")
    expected = load_run(b).metrics.set_index("step").loc[7, "grad_target_mean"]
    assert got["value"].item() == pytest.approx(expected)
    assert set(tidy["loss"]) == {"softmax", "noisy"} and set(tidy["noise"]) == {"none",
                                                                                 "annealed"}
    assert tidy.loc[tidy["run"] == "alpha2=0_seed=0", "seed"].unique().tolist() == [0]
    # bool columns become 0/1 floats
    assert set(tidy.loc[tidy["metric"] == "nonfinite", "value"]) == {0.0}


def test_load_runs_metric_subset_glob_and_comparison_dir(make_run):
    a = make_run(alpha2=0.0, steps=10)
    make_run(alpha2=1.0, steps=10)
    comparison = a.parent
    by_dir = load_runs(comparison, metrics=["p_target_mean"])
    by_glob = load_runs(str(comparison / "alpha2=*"), metrics=["p_target_mean"])
    assert set(by_dir["metric"]) == {"p_target_mean"} and len(by_dir) == 20
    pd.testing.assert_frame_equal(by_dir, by_glob)
    assert find_run_dirs(comparison) == sorted(comparison.iterdir())


def test_duplicate_names_get_parent_prefix(tmp_path, run_writer):
    a = run_writer(tmp_path / "exp1", steps=5)
    b = run_writer(tmp_path / "exp2", steps=5)
    assert [r.name for r in as_runs([a, b])] == ["exp1/alpha2=0_seed=0", "exp2/alpha2=0_seed=0"]


def test_missing_directory_and_empty_pattern(tmp_path):
    with pytest.raises(RunError, match="nope"):
        load_run(tmp_path / "nope")
    with pytest.raises(RunError, match="matches nothing"):
        load_runs(str(tmp_path / "x*"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="empty.*neither a run directory"):
        load_runs(tmp_path / "empty")


def test_missing_config_uses_summary_else_errors(make_run):
    path = make_run(alpha2=0.5)
    (path / "config.json").unlink()
    assert load_run(path).alpha2 == 0.5
    (path / "summary.json").unlink()
    with pytest.raises(RunError, match="config.json"):
        load_run(path)


@pytest.mark.parametrize("name", ["metrics.parquet", "samples.parquet"])
def test_corrupt_parquet_names_the_file(make_run, name):
    path = make_run()
    (path / name).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(RunError, match=name.replace(".", r"\.")):
        load_run(path)


def test_corrupt_json_and_csv_name_the_file(make_run):
    path = make_run()
    (path / "summary.json").write_text("{not json")
    with pytest.raises(RunError, match="summary.json"):
        load_run(path)
    path = make_run(seed=1)
    (path / "epochs.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match=r"epochs\.csv.*test_error"):
        load_run(path)
    path = make_run(seed=2)
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="config.json.*JSON object"):
        load_run(path)


def test_missing_metrics_without_events_is_an_error(make_run):
    path = make_run()
    (path / "metrics.parquet").unlink()
    with pytest.raises(RunError, match="metrics.parquet"):
        load_run(path)


def test_metrics_without_step_column(make_run):
    path = make_run()
    pd.DataFrame({"loss": [1.0]}).to_parquet(path / "metrics.parquet")
    with pytest.raises(RunError, match=r"metrics\.parquet.*step"):
        load_run(path)


def test_interrupted_run_loads_with_documented_empty_results(make_run, metrics_factory):
    """Empty metrics, no samples, no epochs, no summary: loads; results are empty / NaN."""
    path = make_run()
    metrics_factory(1, 0.0).iloc[:0].to_parquet(path / "metrics.parquet")
    for name in ("samples.parquet", "epochs.csv", "summary.json"):
        (path / name).unlink()
    run = load_run(path)
    assert run.metrics.empty and run.samples.empty and run.epochs.empty and run.summary == {}
    assert run.last_step is None
    assert onset_step(run) is None
    assert survival(run).empty
    row = run_table([run]).iloc[0]
    assert np.isnan(row["onset_step"]) and np.isnan(row["test_error"])
    assert np.isnan(row["grad_target_late"]) and pd.isna(row["last_step"])
    assert load_runs([path]).empty


def test_missing_samples_table_is_empty_frame(make_run):
    path = make_run()
    (path / "samples.parquet").unlink()
    run = load_run(path)
    assert run.samples.empty and "first_saturated_step" in run.samples


def test_config_json_written_by_helper_has_contract_fields(make_run):
    config = json.loads((make_run() / "config.json").read_text())
    for key in ("dataset", "model", "alpha2", "noise", "loss", "seed", "epochs", "batch_size",
                "lr", "satkit_version", "torch_version", "device"):
        assert key in config
