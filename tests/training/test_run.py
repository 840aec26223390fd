"""End-to-end runs on the embedded digits: the run directory, resume after an interrupt."""

import json
import os
import signal

import pandas as pd
import pytest
import torch

from satkit.schema import SUMMARY_FIELDS
from satkit.sinks.tensorboard_layout import epoch_tag, final_tag
from satkit.training import StopRequested, TrainConfig, Trainer, train
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


def test_tensorboard_gets_epoch_curves_and_the_effective_hparams(tmp_path):
    result = train(TrainConfig(**{**QUICK, "epochs": 2, "alpha2": 0.0, "noise": "free"},
                               out=str(tmp_path / "run")))
    scalars, hparams, metric_tags = _events(result.run_dir)
    last = result.summary["steps"] - 1
    curve = {s: v for t, s, v in scalars if t == epoch_tag("test_error")}
    assert sorted(curve) == list(range(last + 1))  # a staircase over every step of each epoch
    errors = pd.read_csv(result.run_dir / "epochs.csv")["test_error"]
    assert [curve[s] for s in range(22)] == pytest.approx([errors[0]] * 22)
    assert [curve[s] for s in range(22, last + 1)] == pytest.approx([errors[1]] * 22)
    assert {t for t, _, _ in scalars if t.startswith(epoch_tag(""))} == {
        epoch_tag(k) for k in ("train_loss", "train_error", "test_loss", "test_error", "lr")}
    metrics = {t: (s, v) for t, s, v in scalars if t.startswith(final_tag(""))}
    assert metrics[final_tag("test_error")] == pytest.approx(
        (last, result.summary["test_error"]))
    assert {s for s, _ in metrics.values()} == {last}
    assert final_tag("grad_target_late") in metrics and final_tag("best_test_error") in metrics
    assert set(metrics) <= set(metric_tags)  # unknown figures are columns with empty cells
    assert (hparams["method"], hparams["noise"], hparams["alpha2"]) == ("softmax", "none", 0.0)
    assert hparams["device"] == "cpu" and not hparams["amp"] and not hparams["augment"]
    assert not {"every", "flush_every", "histogram_every", "quiet", "figures", "resume", "out",
                "data_dir", "thresholds", "loss", "xi_per", "epsilon"} & set(hparams)


def _interrupt_at(monkeypatch, step: int) -> None:
    original = Trainer.train_step

    def train_step(self, *batch):
        loss = original(self, *batch)
        if self.step == step:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled by the loop
        return loss

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.mark.slow
def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    config = TrainConfig(**{**QUICK, "epochs": 3})
    reference = train(config.replace(out=str(tmp_path / "ref"))).run_dir

    _interrupt_at(monkeypatch, 30)  # mid-epoch 1, between two flushes
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
    pd.testing.assert_frame_equal(pd.read_parquet(reference / "samples.parquet"),
                                  pd.read_parquet(cut / "samples.parquet"),
                                  check_exact=False, rtol=1e-5)
    ea, eb = (pd.read_csv(p / "epochs.csv").drop(columns="seconds") for p in (reference, cut))
    pd.testing.assert_frame_equal(ea, eb, check_exact=False, rtol=1e-5)
    # the summary comes from the whole run's tables, not the rows recorded since the resume
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (reference, cut))
    for key in TIMINGS:
        sa.pop(key), sb.pop(key)
    assert sa == pytest.approx(sb)
    assert sb["onset_step"] is not None and sb["onset_step"] < 31


def test_resume_without_checkpoint_or_with_corrupt_one_is_an_error(tmp_path):
    from satkit.training.checkpoint import CheckpointError
    from satkit.training.run_dir import RunDirError

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
