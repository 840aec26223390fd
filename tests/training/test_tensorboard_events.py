"""What `satkit compare` leaves for TensorBoard, read back with tbparse (a third-party reader):
the right hparams, per-epoch learning curves, recorder scalars equal to metrics.parquet, and no
empty run."""

import math

import numpy as np
import pandas as pd
import pytest
from tbparse import SummaryReader

from satkit.analysis import load_run
from satkit.hooks.quantities import tensorboard_tag
from satkit.training import TrainConfig
from satkit.training.compare import compare
from satkit.training.summary import HPARAM_METRICS

BOOKKEEPING = {"every", "flush_every", "histogram_every", "quiet", "figures", "resume", "out",
               "data_dir", "thresholds", "loss"}


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    base = TrainConfig(dataset="digits", epochs=2, batch_size=128, lr=0.1, flush_every=5,
                       histogram_every=5, quiet=True)
    return compare(base, losses=["softmax", "noisy"], alpha2s=[1.0],
                   out=tmp_path_factory.mktemp("tb") / "cmp", figure=False)


@pytest.fixture(scope="module")
def reader(comparison):
    return SummaryReader(str(comparison.out), pivot=False, extra_columns={"dir_name"})


def test_no_empty_run(comparison, reader):
    runs = {r.run_dir.name for r in comparison.runs}
    assert runs == {"softmax_seed=0", "alpha2=1_seed=0"}
    assert set(reader.scalars["dir_name"]) == runs  # no "" (the comparison root) or "."
    assert set(reader.hparams["dir_name"]) == runs


def test_hparams_name_the_method_as_applied(reader):
    hp = {run: dict(zip(g["tag"], g["value"], strict=True))
          for run, g in reader.hparams.groupby("dir_name")}
    soft, noisy = hp["softmax_seed=0"], hp["alpha2=1_seed=0"]
    assert (soft["method"], soft["noise"], soft["alpha2"]) == ("softmax", "none", 0.0)
    assert (noisy["method"], noisy["noise"], noisy["alpha2"]) == ("noisy", "annealed", 1.0)
    assert soft["device"] == "cpu" and soft["amp"] is False and soft["augment"] is False
    assert not BOOKKEEPING & set(soft)


def test_hparams_metrics_sit_at_the_last_step(comparison, reader):
    scalars = reader.scalars
    for result in comparison.runs:
        mine = scalars[scalars["dir_name"] == result.run_dir.name]
        final = mine[mine["tag"].str.startswith("hparams/")]
        known = {f"hparams/{k}" for k in HPARAM_METRICS if result.summary[k] is not None}
        assert set(final["tag"]) == known and "hparams/test_error" in known
        assert set(final["step"]) == {result.summary["steps"] - 1}
        test_error = final.set_index("tag").loc["hparams/test_error", "value"]
        assert test_error == pytest.approx(result.summary["test_error"], rel=1e-6)


def test_epoch_curves_and_recorder_scalars_match_the_tables(comparison, reader):
    scalars = reader.scalars
    for result in comparison.runs:
        run = load_run(result.run_dir)
        mine = scalars[scalars["dir_name"] == result.run_dir.name]
        for column in ("train_loss", "train_error", "test_loss", "test_error", "lr"):
            curve = mine[mine["tag"] == f"epoch/{column}"].sort_values("step")
            # at the last step of each epoch (epochs.csv counts the steps done)
            assert curve["step"].tolist() == (run.epochs["step"] - 1).tolist()
            np.testing.assert_allclose(curve["value"], run.epochs[column], rtol=1e-6)
        for column in run.metrics.columns:
            tag = tensorboard_tag(column)
            if tag is None:
                continue
            series = mine[mine["tag"] == tag].set_index("step")["value"]
            table = run.metrics.set_index("step")[column].astype(float)
            table = table[table.map(math.isfinite)]  # NaN values are not written
            pd.testing.assert_index_equal(series.index, table.index, check_names=False)
            np.testing.assert_allclose(series, table, rtol=1e-6)
