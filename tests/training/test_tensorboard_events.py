"""What `satkit compare` leaves for TensorBoard, read back with tbparse (a third-party reader):
the right hparams, per-epoch learning curves (a staircase over each epoch's steps), recorder
scalars equal to metrics.parquet, histograms at the default cadence, and no empty run."""

import math

import numpy as np
import pandas as pd
import pytest
from tbparse import SummaryReader

from satkit.analysis import load_run
from satkit.sinks.tensorboard_layout import epoch_steps, epoch_tag, final_tag, tag_for
from satkit.training import TrainConfig
from satkit.training.compare import compare
from satkit.training.summary import HPARAM_METRICS

BOOKKEEPING = {"every", "flush_every", "histogram_every", "quiet", "figures", "resume", "out",
               "data_dir", "thresholds", "loss"}
NOISY = "noisy-softmax_alpha2=1_seed=0"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    # 6 epochs of 12 full batches (1437 // 119): the 72-step run of issue 21; the histogram
    # cadence is left to its default
    base = TrainConfig(dataset="digits", epochs=6, batch_size=119, lr=0.1, flush_every=12,
                       quiet=True, figures=False)
    return compare(base, losses=["softmax", "noisy"], alpha2s=[1.0],
                   out=tmp_path_factory.mktemp("tb") / "cmp", figure=False)


@pytest.fixture(scope="module")
def reader(comparison):
    return SummaryReader(str(comparison.out), pivot=False, extra_columns={"dir_name"})


def test_no_empty_run(comparison, reader):
    runs = {r.run_dir.name for r in comparison.runs}
    assert runs == {"softmax_seed=0", NOISY}
    assert set(reader.scalars["dir_name"]) == runs  # no "" (the comparison root) or "."
    assert set(reader.hparams["dir_name"]) == runs


def test_hparams_name_the_method_as_applied(reader):
    hp = {run: dict(zip(g["tag"], g["value"], strict=True))
          for run, g in reader.hparams.groupby("dir_name")}
    soft, noisy = hp["softmax_seed=0"], hp[NOISY]
    assert (soft["method"], soft["noise"], soft["alpha2"]) == ("softmax", "none", 0.0)
    assert (noisy["method"], noisy["noise"], noisy["alpha2"]) == ("noisy", "annealed", 1.0)
    assert soft["device"] == "cpu" and soft["amp"] is False and soft["augment"] is False
    assert not BOOKKEEPING & set(soft)


def test_hparams_metrics_sit_at_the_last_step(comparison, reader):
    scalars = reader.scalars
    for result in comparison.runs:
        mine = scalars[scalars["dir_name"] == result.run_dir.name]
        final = mine[mine["tag"].str.startswith("9 final figures/")]
        known = {final_tag(k) for k in HPARAM_METRICS if result.summary[k] is not None}
        assert set(final["tag"]) == known and final_tag("test_error") in known
        assert set(final["step"]) == {result.summary["steps"] - 1}
        test_error = final.set_index("tag").loc[final_tag("test_error"), "value"]
        assert test_error == pytest.approx(result.summary["test_error"], rel=1e-6)


def test_epoch_curves_and_recorder_scalars_match_the_tables(comparison, reader):
    scalars = reader.scalars
    for result in comparison.runs:
        run = load_run(result.run_dir)
        mine = scalars[scalars["dir_name"] == result.run_dir.name]
        starts = [0, *run.epochs["step"].iloc[:-1]]
        for column in ("train_loss", "train_error", "test_loss", "test_error", "lr"):
            curve = mine[mine["tag"] == epoch_tag(column)].sort_values("step")
            # a staircase: each epoch's value over the epoch's steps (epochs.csv counts the
            # steps done at its end)
            steps = [s for first, end in zip(starts, run.epochs["step"], strict=True)
                     for s in epoch_steps(first, end - 1)]
            values = [v for first, end, v in zip(starts, run.epochs["step"], run.epochs[column],
                                                 strict=True) for _ in epoch_steps(first, end - 1)]
            assert curve["step"].tolist() == steps
            np.testing.assert_allclose(curve["value"], values, rtol=1e-6)
        for column in run.metrics.columns:
            tag = tag_for(column)
            if tag is None:
                continue
            series = mine[mine["tag"] == tag].set_index("step")["value"]
            table = run.metrics.set_index("step")[column].astype(float)
            table = table[table.map(math.isfinite)]  # NaN values are not written
            pd.testing.assert_index_equal(series.index, table.index, check_names=False)
            np.testing.assert_allclose(series, table, rtol=1e-6)


def test_default_histogram_cadence_gives_a_72_step_run_many_slices(comparison):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from satkit.training.config import HISTOGRAM_SLICES, histogram_cadence

    for result in comparison.runs:
        assert result.summary["steps"] == 72
        acc = EventAccumulator(str(result.run_dir), size_guidance={"histograms": 0})
        acc.Reload()
        for tag in ("1 saturation, clean/p_target",
                    "2 saturation, training logits/p_target_noisy"):
            steps = [h.step for h in acc.Histograms(tag)]
            # about HISTOGRAM_SLICES = 50 per run: every 2nd step of 72, not step 0 alone
            assert steps == list(range(0, 72, histogram_cadence(72))) == list(range(0, 72, 2))
            assert len(steps) == 36 and len(steps) <= HISTOGRAM_SLICES
