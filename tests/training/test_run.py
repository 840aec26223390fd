"""End-to-end runs on the embedded digits: the run directory, resume after an interrupt."""

import json
import math

import pandas as pd
import pytest
import torch

from satkit.schema import SUMMARY_FIELDS
from satkit.sinks.tensorboard_layout import epoch_tag, final_tag
from satkit.training import StopRequested, TrainConfig, train
from satkit.training.checkpoint import load_checkpoint
from satkit.training.config import ConfigError

TIMINGS = ("seconds", "seconds_per_step", "wall_seconds")


def _events(run_dir):
    """(tag, step, value) of every scalar, and the hparams of the run's event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    scalars, hparams, metric_tags = [], {}, []
    for path in sorted(run_dir.glob("events.out.tfevents*")):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                plugin = v.metadata.plugin_data
                if plugin.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                    if data.HasField("session_start_info"):
                        for k, val in data.session_start_info.hparams.items():
                            hparams[k] = getattr(val, val.WhichOneof("kind"))
                    if data.HasField("experiment"):
                        metric_tags = [m.name.tag for m in data.experiment.metric_infos]
                elif plugin.plugin_name == "scalars":
                    scalars.append((v.tag, event.step, float(tensor_util.make_ndarray(v.tensor))))
    return scalars, hparams, metric_tags

QUICK = {"dataset": "digits", "epochs": 2, "batch_size": 64, "lr": 0.05, "flush_every": 10,
         "histogram_every": 10, "quiet": True, "device": "cpu", "figures": False}


def test_run_directory_holds_every_output(tmp_path):
    result = train(TrainConfig(**{**QUICK, "figures": True}, out=str(tmp_path / "run")))
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.parquet", "samples.parquet", "epochs.csv", "summary.json",
            "checkpoint.pt", "figures"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert (run / "figures" / "dashboard.png").stat().st_size > 10_000
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "digits-cnn" and config["torch_version"] == torch.__version__
    assert "satkit_version" in config and config["device"] == "cpu"
    assert (config["method"], config["effective_alpha2"], config["effective_noise"]) == (
        "noisy", 0.1, "annealed")
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary) == list(SUMMARY_FIELDS)
    assert (summary["finished"], summary["epochs"], summary["epochs_planned"]) == (True, 2, 2)
    assert summary["temperature"] is None and summary["test_ece_ts"] is None  # no split
    assert 0 < summary["test_ece"] < 1 and summary["train_ece_noisy"] is not None
    assert (run / "test_predictions.parquet").is_file()
    steps_per_epoch = 1437 // 64  # drop_last: every step a full batch of 64
    assert summary["steps"] == 2 * steps_per_epoch
    metrics = pd.read_parquet(run / "metrics.parquet")
    assert metrics["step"].tolist() == list(range(summary["steps"]))
    epochs = pd.read_csv(run / "epochs.csv")
    assert epochs["epoch"].tolist() == [0, 1]
    assert summary["test_error"] == pytest.approx(epochs["test_error"].iloc[-1])
    assert summary["test_error"] < 20.0
    samples = pd.read_parquet(run / "samples.parquet")
    assert len(samples) == 1437
    # the per-sample record is honest about drop_last: a sample is "seen" exactly when one of
    # the epochs' shuffles put it in a full batch (the 29 left over differ by epoch)
    from satkit.data import DeviceLoader

    loader = DeviceLoader(torch.zeros(1437, 1), torch.zeros(1437), batch_size=64,
                          drop_last=True, seed=0)
    visited = set().union(*(loader.indices(e)[:22 * 64].tolist() for e in (0, 1)))
    assert set(samples.loc[samples["last_seen_step"].notna(), "index"]) == visited
    assert 1437 - 29 < len(visited) < 1437
    state = load_checkpoint(run / "checkpoint.pt")  # weights_only=True
    assert state["step"] == summary["steps"]
    again = train(TrainConfig(**{**QUICK, "epochs": 1}, out=str(tmp_path / "run")))
    assert again.run_dir.name == "run-1"  # never overwrites


def test_a_validation_split_fits_a_temperature_and_the_run_keeps_its_test_predictions(
        tmp_path):
    from satkit.analysis.calibration import (
        calibration,
        expected_calibration_error,
        fit_temperature,
        softmax,
    )
    from satkit.data import load_dataset, split_validation
    from satkit.heads import make_head_and_loss
    from satkit.models import PRESETS, build_model
    from satkit.schema import TEST_PREDICTION_COLUMNS

    config = TrainConfig(**{**QUICK, "alpha2": 0.0}, val_fraction=0.1, out=str(tmp_path / "r"))
    run = train(config).run_dir
    summary = json.loads((run / "summary.json").read_text())
    assert json.loads((run / "config.json").read_text())["val_size"] == 144
    assert len(pd.read_parquet(run / "samples.parquet")) == 1293  # trained on only
    epochs = pd.read_csv(run / "epochs.csv")
    for name in ("test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
                 "test_overconfidence"):
        assert summary[name] == pytest.approx(epochs[name].iloc[-1])
    assert summary["test_overconfidence"] == pytest.approx(
        summary["test_confidence"] - (1 - summary["test_error"] / 100))
    # the predictions file: the final model's test set, whose ECE is the last epoch's
    predictions = pd.read_parquet(run / "test_predictions.parquet")
    assert list(predictions.columns) == list(TEST_PREDICTION_COLUMNS)
    assert predictions["index"].tolist() == list(range(360))
    correct = predictions["predicted"] == predictions["label"]
    assert 100 * (1 - correct.mean()) == pytest.approx(summary["test_error"])
    assert expected_calibration_error(predictions["confidence"], correct) == pytest.approx(
        summary["test_ece"], rel=1e-9)
    # the temperature is the one fitted on the validation logits of the final model
    data, (val_x, val_y) = split_validation(load_dataset("digits"), 0.1, 0)
    head, _ = make_head_and_loss(config.loss, PRESETS["digits-cnn"].feature_dim, 10,
                                 **config.head_options())
    model = build_model("digits-cnn", num_classes=10, in_channels=1, image_size=8, head=head)
    model.load_state_dict(load_checkpoint(run / "checkpoint.pt")["model"])
    with torch.no_grad():
        val_logits = model.eval()(val_x).double().numpy()
        test_logits = model(data.test_x).double().numpy()
    t = fit_temperature(val_logits, val_y.numpy())
    assert summary["temperature"] == pytest.approx(t, rel=1e-5)
    scaled = calibration(softmax(test_logits, t), data.test_y.numpy())
    assert summary["test_ece_ts"] == pytest.approx(scaled["ece"], rel=1e-4)
    assert summary["test_nll_ts"] == pytest.approx(scaled["nll"], rel=1e-5)
    for view in ("", "_noisy"):
        assert 0 <= summary[f"train_ece{view}"] <= 1
        assert summary[f"train_confidence{view}"] > 0.5
    # a resume may not change the split
    with pytest.raises(ConfigError, match="val_fraction"):
        train(config.replace(resume=True, val_fraction=0.2))


def test_tensorboard_gets_epoch_curves_and_the_effective_hparams(tmp_path):
    result = train(TrainConfig(**{**QUICK, "epochs": 2, "alpha2": 0.0, "noise": "free"},
                               label_noise=0.2, out=str(tmp_path / "run")))
    scalars, hparams, metric_tags = _events(result.run_dir)
    last = result.summary["steps"] - 1
    curve = {s: v for t, s, v in scalars if t == epoch_tag("test_error")}
    assert sorted(curve) == list(range(last + 1))  # a staircase over every step of each epoch
    # the data map per epoch, at its last step: region fractions summing to 1, and the
    # corrupted samples' confidence below the clean ones'
    data_map = {(t, s): v for t, s, v in scalars if t.startswith("data_map/")}
    assert {t for t, _ in data_map} == {f"data_map/{k}" for k in (
        "easy-to-learn", "ambiguous", "hard-to-learn", "confidence_corrupted",
        "confidence_clean")}
    for step in (21, last):
        assert sum(data_map[f"data_map/{r}", step] for r in (
            "easy-to-learn", "ambiguous", "hard-to-learn")) == pytest.approx(1.0)
        assert data_map["data_map/confidence_corrupted", step] < data_map[
            "data_map/confidence_clean", step]
    errors = pd.read_csv(result.run_dir / "epochs.csv")["test_error"]
    assert [curve[s] for s in range(22)] == pytest.approx([errors[0]] * 22)
    assert [curve[s] for s in range(22, last + 1)] == pytest.approx([errors[1]] * 22)
    assert {t for t, _, _ in scalars if t.startswith(epoch_tag(""))} == {
        epoch_tag(k) for k in ("train_loss", "train_error", "test_loss", "test_error", "lr",
                               "test_ece", "test_ece_adaptive", "test_brier", "test_confidence",
                               "test_overconfidence")}
    metrics = {t: (s, v) for t, s, v in scalars if t.startswith(final_tag(""))}
    assert metrics[final_tag("test_error")] == pytest.approx(
        (last, result.summary["test_error"]))
    assert metrics[final_tag("test_ece")] == pytest.approx(
        (last, result.summary["test_ece"]), rel=1e-6)  # float32 in the event file
    assert final_tag("temperature") not in metrics  # no validation split: nothing fitted
    assert {s for s, _ in metrics.values()} == {last}
    assert final_tag("grad_target_late") in metrics and final_tag("best_test_error") in metrics
    assert set(metrics) <= set(metric_tags)  # unknown figures are columns with empty cells
    assert (hparams["method"], hparams["noise"], hparams["alpha2"]) == ("softmax", "none", 0.0)
    assert hparams["device"] == "cpu" and not hparams["amp"] and not hparams["augment"]
    assert not {"every", "flush_every", "histogram_every", "quiet", "figures", "resume", "out",
                "data_dir", "thresholds", "loss", "xi_per", "epsilon"} & set(hparams)


@pytest.mark.slow
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, interrupt_at):
    config = TrainConfig(**{**QUICK, "epochs": 3})
    reference = train(config.replace(out=str(tmp_path / "ref"))).run_dir

    interrupt_at(30)  # mid-epoch 1, between two flushes
    with pytest.raises(StopRequested) as stop:
        train(config.replace(out=str(tmp_path / "cut")))
    monkeypatch.undo()
    cut = tmp_path / "cut"
    assert stop.value.run_dir == cut
    stopped = json.loads((cut / "summary.json").read_text())
    assert (stopped["finished"], stopped["epochs"], stopped["epochs_planned"],
            stopped["steps"]) == (False, 1, 3, 31)
    assert load_checkpoint(cut / "checkpoint.pt")["step"] == 31
    assert pd.read_parquet(cut / "metrics.parquet")["step"].max() == 30  # flushed on SIGINT
    with pytest.raises(ConfigError, match="lr"):
        train(config.replace(out=str(cut), resume=True, lr=0.1))
    train(config.replace(out=str(cut), resume=True))

    a = pd.read_parquet(reference / "metrics.parquet")
    b = pd.read_parquet(cut / "metrics.parquet")
    assert b["step"].tolist() == a["step"].tolist()  # no step missing or duplicated
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-7)
    samples = pd.read_parquet(cut / "samples.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(reference / "samples.parquet"), samples,
                                  check_exact=False, rtol=1e-5)
    # the training dynamics merged across the resume (and the stop's extra flush) as well
    # (drop_last: a sample left out of an epoch's full batches misses that visit)
    assert samples["visits"].between(0, 3).all() and (samples["visits"] == 3).mean() > 0.9
    assert (samples["variability"] > 0).mean() > 0.9
    assert samples["forgetting_events"].sum() > 0
    ea, eb = (pd.read_csv(p / "epochs.csv").drop(columns="seconds") for p in (reference, cut))
    pd.testing.assert_frame_equal(ea, eb, check_exact=False, rtol=1e-5)
    # the summary comes from the whole run's tables, not the rows recorded since the resume
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (reference, cut))
    for key in TIMINGS:
        sa.pop(key), sb.pop(key)
    assert sa == pytest.approx(sb)
    assert sb["onset_step"] is not None and sb["onset_step"] < 31


def test_resume_without_checkpoint_or_with_corrupt_one_is_an_error(tmp_path):
    from satkit.run_dir import RunDirError
    from satkit.training.checkpoint import CheckpointError

    with pytest.raises(RunDirError, match="checkpoint"):
        train(TrainConfig(**QUICK, out=str(tmp_path / "none"), resume=True))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(TrainConfig(**QUICK, out=str(tmp_path / "bad"), resume=True))


@pytest.mark.parametrize("loss", ["label-smoothing", "arcface"])
def test_regulariser_runs_record_saturation(tmp_path, loss):
    result = train(TrainConfig(**{**QUICK, "epochs": 1}, loss=loss, out=str(tmp_path / loss)))
    assert result.summary["loss"] == loss and result.summary["alpha2"] == 0.0
    metrics = pd.read_parquet(result.run_dir / "metrics.parquet")
    assert metrics["p_target_mean"].between(0, 1).all()


@pytest.mark.slow
def test_compiled_model_trains_with_the_recorder(tmp_path):
    result = train(TrainConfig(**{**QUICK, "epochs": 1}, compile=True, out=str(tmp_path / "c")))
    metrics = pd.read_parquet(result.run_dir / "metrics.parquet")
    assert len(metrics) == result.summary["steps"] == 22
    assert (metrics["noise_mean"] > 0).all()  # the noisy head ran inside the compiled graph


def test_hparams_are_the_method_as_applied_with_booleans_as_booleans():
    from satkit.training.summary import hparams

    values = hparams(TrainConfig(loss="label-smoothing", alpha2=0.1, amp=True, device="auto"),
                     torch.device("cpu"))
    assert (values["method"], values["alpha2"], values["noise"]) == ("label-smoothing", 0.0,
                                                                      "none")
    assert values["epsilon"] == 0.1 and "gamma" not in values and "xi_per" not in values
    assert values["amp"] is False  # as applied: autocast runs on CUDA only
    assert all(type(values[k]) is bool for k in ("amp", "augment", "compile"))
    noisy = hparams(TrainConfig(alpha2=0.5, xi_per="batch"), torch.device("cpu"))
    assert (noisy["method"], noisy["alpha2"], noisy["xi_per"]) == ("noisy", 0.5, "batch")


def test_opt_in_entropy_column_reaches_the_table_the_config_and_tensorboard(tmp_path):
    """``--opt-in entropy``: the column is in metrics.parquet (at the start of training it is
    near log C, the entropy of a near-uniform softmax, and it falls as the net fits), the
    config says so, and TensorBoard gets it; without it, the column is absent."""
    plain = train(TrainConfig(**{**QUICK, "epochs": 1}, out=str(tmp_path / "plain")))
    assert "entropy_mean" not in pd.read_parquet(plain.run_dir / "metrics.parquet").columns
    result = train(TrainConfig(**{**QUICK, "epochs": 1}, opt_in=("entropy",),
                               out=str(tmp_path / "entropy")))
    entropy = pd.read_parquet(result.run_dir / "metrics.parquet")["entropy_mean"]
    assert entropy.notna().all() and (entropy > 0).all() and (entropy <= math.log(10) + 1e-6).all()
    assert entropy.iloc[0] > 0.8 * math.log(10) and entropy.iloc[-1] < entropy.iloc[0]
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["opt_in"] == ["entropy"]
    scalars, _, _ = _events(result.run_dir)
    assert any(tag.endswith("/entropy_mean") for tag, _, _ in scalars)


def test_opt_in_names_are_checked_by_the_config():
    assert TrainConfig(opt_in=("entropy",)).opt_in == ("entropy",)
    with pytest.raises(ConfigError, match="opt_in: unknown quantities"):
        TrainConfig(opt_in=("entrpy",))
    with pytest.raises(ConfigError, match="opt_in must be a tuple"):
        TrainConfig(opt_in="entropy")

