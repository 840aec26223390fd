"""TensorBoardSink: real event files read back with TensorBoard's EventAccumulator."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from satkit import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.sinks import TensorBoardSink, write_comparison_layout
from satkit.sinks.tensorboard import tag_for


def _load(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0,
                                                        "tensors": 0})
    acc.Reload()
    return acc


def _layout(acc: EventAccumulator) -> layout_pb2.Layout:
    event = acc.Tensors("custom_scalars__config__")[0]
    layout = layout_pb2.Layout()
    layout.ParseFromString(event.tensor_proto.string_val[0])
    return layout


def _record(log_dir, steps=5, histogram_every=2):
    torch.manual_seed(0)
    body, head = torch.nn.Linear(5, 6), NoisySoftmax(6, 4, alpha2=0.3)
    x, y = torch.randn(16, 5), torch.randint(0, 4, (16,))
    sink = TensorBoardSink(log_dir)
    with SaturationRecorder(head, flush_every=2, sinks=[sink],
                            histogram_every=histogram_every) as rec:
        for _ in range(steps):
            head.zero_grad()
            body.zero_grad()
            F.cross_entropy(head(body(x), y), y).backward()
            rec.step()
            with torch.no_grad():
                for p in (*body.parameters(), head.weight):
                    p -= 0.5 * p.grad
    return rec.metrics(), sink


CLEAN, NOISY = "1 saturation, clean", "2 saturation, training logits"


def test_scalars_histograms_and_layout_read_back(tmp_path):
    metrics, _ = _record(tmp_path)
    acc = _load(tmp_path)
    scalars = set(acc.Tags()["scalars"])
    for tag in (f"{CLEAN}/p_target_mean", f"{NOISY}/p_target_noisy_mean",
                f"{CLEAN}/saturated_frac_0.99", "3 gradient/grad_target_mean",
                "3 gradient/grad_weight_norm", "4 noise/noise_mean", "4 noise/noise_max",
                "7 norms and logits/feature_norm_mean", "7 norms and logits/cos_target_mean",
                "7 norms and logits/logit_margin_mean", "6 training loss, per step/loss",
                f"{NOISY}/p_target_noisy_median", f"{NOISY}/saturated_frac_noisy_0.99",
                "8 diagnostics/batch_size", "8 diagnostics/nonfinite"):
        assert tag in scalars, tag
    # the group says the view: no training-logit column in the clean group, and back
    assert not [t for t in scalars if t.startswith(CLEAN) and "noisy" in t]
    assert all("noisy" in t for t in scalars if t.startswith(NOISY))
    # one tag per quantity: the alias saturated_frac (= saturated_frac_0.99) is not written
    assert not any(t.endswith("/saturated_frac") or t.endswith("/saturated_frac_noisy")
                   for t in scalars)
    for column in metrics.columns:
        tag = tag_for(column)
        if tag is None:
            continue
        events = acc.Scalars(tag)
        assert [e.step for e in events] == metrics["step"].tolist()
        np.testing.assert_allclose([e.value for e in events], metrics[column].astype(float),
                                   rtol=1e-6)
    log10 = acc.Scalars("3 gradient/log10 grad_target_mean")
    np.testing.assert_allclose([e.value for e in log10],
                               np.log10(metrics["grad_target_mean"].astype(float)), rtol=1e-5)
    assert set(acc.Tags()["histograms"]) == {f"{CLEAN}/p_target", f"{NOISY}/p_target_noisy",
                                             "4 noise/noise"}
    hist = acc.Histograms(f"{CLEAN}/p_target")
    assert [h.step for h in hist] == [0, 2, 4]
    assert hist[0].histogram_value.num == 16 and 0 < hist[0].histogram_value.min < 1
    limits = np.asarray(hist[0].histogram_value.bucket_limit)  # equal buckets of 0.025, so
    np.testing.assert_allclose(np.diff(limits), 0.025, atol=1e-6)  # 0.99 is not hidden


def test_layout_draws_one_quantity_per_chart_both_views_alike(tmp_path):
    import re

    _record(tmp_path)
    sink = TensorBoardSink(tmp_path / "epochs", layout=False)
    sink.write_epoch(0, 4, {"test_error": 3.0, "train_error": 4.0, "test_loss": 0.1,
                            "train_loss": 0.2, "lr": 0.1})
    sink.close()
    acc = _load(tmp_path)
    scalars = set(acc.Tags()["scalars"]) | set(_load(tmp_path / "epochs").Tags()["scalars"])
    layout = _layout(acc)
    titles = [c.title for c in layout.category]
    assert titles[:4] == ["saturation, clean p_y (the eval-mode logits)",
                          "saturation, p_y under the training logits (what the loss saw)",
                          "gradient and noise",
                          "learning curves (per epoch, drawn over each epoch's steps)"]
    assert [c.closed for c in layout.category] == [False] * 4 + [True] * (len(titles) - 4)
    clean, noisy = layout.category[:2]
    # the two views: the same charts in the same order, each naming its view
    assert [c.title.replace(", clean", "") for c in clean.chart] == \
        [c.title.replace(", training logits", "") for c in noisy.chart]
    assert clean.chart[0].title == "share of the batch with p_y >= 0.99, clean"
    charts = {chart.title: list(chart.multiline.tag) for c in layout.category for chart in c.chart}
    # one quantity per chart: each chart matches exactly one tag (one line per run)
    for title, patterns in charts.items():
        matched = {t for t in scalars for p in patterns if re.search(p, t)}
        assert len(patterns) == 1 and len(matched) == 1, (title, matched)
    # the gradient's ratio story reads without the log-scale toggle
    assert charts[next(t for t in charts if t.startswith("log10 |dL/df_y|"))] == \
        ["^3\\ gradient/log10\\ grad_target_mean$"]
    # every tag but the diagnostics is on some chart
    drawn = {t for t in scalars for ps in charts.values() for p in ps if re.search(p, t)}
    assert drawn == {t for t in scalars if not t.startswith("8 diagnostics/")}


def _tensorboard_smoothing(values: list[float], weight: float = 0.6) -> list[float]:
    """TensorBoard's default smoothing (its line charts' debiased exponential moving average
    over the points of a series, weight 0.6)."""
    last, out = 0.0, []
    for k, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight ** k))
    return out


def test_per_epoch_series_read_the_same_under_tensorboard_smoothing(tmp_path):
    # six epochs of 11 steps, test error falling fast then flat (the example values)
    errors = [18.0, 6.1, 3.3, 2.8, 2.5, 2.2]
    sink = TensorBoardSink(tmp_path, layout=False)
    for epoch, error in enumerate(errors):
        sink.write_epoch(11 * epoch, 11 * epoch + 10, {"test_error": error, "lr": 0.1})
    sink.close()
    events = _load(tmp_path).Scalars("5 learning curves, per epoch/test_error")
    assert [e.step for e in events] == list(range(66))  # a staircase over every step
    steps, values = [e.step for e in events], [e.value for e in events]
    smoothed = _tensorboard_smoothing(values)
    for epoch, error in enumerate(errors):  # each epoch's last step reads its value
        at = steps.index(11 * epoch + 10)
        assert smoothed[at] == pytest.approx(error, abs=0.05)
    # one point per epoch, as before, reads far off under the same smoothing
    assert abs(_tensorboard_smoothing(errors)[-1] - errors[-1]) > 0.5


def test_every_tag_has_a_description_that_tensorboard_serves(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_accumulator

    _record(tmp_path, steps=2)
    sink = TensorBoardSink(tmp_path / "more", layout=False)
    sink.write_epoch(0, 7, {"test_error": 2.5, "lr": 0.1})
    sink.close()
    for directory in (tmp_path, tmp_path / "more"):
        acc = plugin_event_accumulator.EventAccumulator(str(directory))
        acc.Reload()  # what the TensorBoard server reads (scalars migrated to tensors)
        tags = acc.Tags()["tensors"]
        described = {tag: acc.SummaryMetadata(tag).summary_description for tag in tags
                     if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}
        assert described and all(described.values()), described
    assert described["5 learning curves, per epoch/test_error"] == (
        "test error % (clean logits) (each epoch's value drawn over the epoch's steps)")


def test_histogram_every_filters_and_nan_scalars_are_skipped(tmp_path):
    from satkit.sinks import Histogram

    sink = TensorBoardSink(tmp_path, histogram_every=10, layout=False)
    sink.write([{"step": 0, "loss": 1.0, "grad_features_norm_mean": float("nan"),
                 "grad_target_mean": 0.0, "nonfinite": True}])
    sink.write_histograms([Histogram(5, "p_target", np.array([0.5])),
                           Histogram(10, "p_target", np.array([0.2, 0.4])),
                           Histogram(20, "noise", np.array([]))])
    sink.close()
    sink.close()  # idempotent
    acc = _load(tmp_path)
    assert "3 gradient/grad_features_norm_mean" not in acc.Tags()["scalars"]
    assert "3 gradient/log10 grad_target_mean" not in acc.Tags()["scalars"]  # log10(0)
    assert acc.Scalars("8 diagnostics/nonfinite")[0].value == 1.0
    assert [h.step for h in acc.Histograms(f"{CLEAN}/p_target")] == [10]
    assert "custom_scalars__config__" not in acc.Tags()["tensors"]


def _experiment(acc):
    return plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/experiment").plugin_data.content).experiment


def test_write_hparams_in_the_run_directory(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.write_hparams({"method": "noisy", "alpha2": 0.1, "model": "cnn", "amp": False,
                        "augment": True, "thresholds": (0.9, 0.99), "extra": None},
                       {"test_error": 7.39, "onset_step": None}, step=41)
    sink.close()
    acc = _load(tmp_path)
    [event] = acc.Scalars("9 final figures/test_error")
    assert event.value == pytest.approx(7.39) and event.step == 41
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    data = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
    hp = data.session_start_info.hparams
    assert hp["alpha2"].number_value == pytest.approx(0.1)
    assert hp["model"].string_value == "cnn" and hp["amp"].WhichOneof("kind") == "bool_value"
    assert hp["amp"].bool_value is False and hp["augment"].bool_value is True
    experiment = _experiment(acc)
    types = {i.name: i.type for i in experiment.hparam_infos}
    assert types["amp"] == types["augment"] == 2 and types["alpha2"] == 3  # BOOL, FLOAT64
    assert hp["thresholds"].string_value == "(0.9, 0.99)"
    # an unknown figure keeps its column (an empty cell), with its description
    assert [(i.name.tag, i.display_name) for i in experiment.metric_infos] == [
        ("9 final figures/test_error", "test_error"), ("9 final figures/onset_step",
                                                       "onset_step")]
    assert experiment.metric_infos[0].description.startswith("test error %")
    assert "9 final figures/onset_step" not in acc.Tags()["scalars"]


def _shown_by_tensorboard(experiment) -> list[str]:
    """The hyperparameter columns TensorBoard 2.x's HPARAMS table ticks by default: its server
    sorts the columns by (not differs, name) and its page shows the first five."""
    ordered = sorted(experiment.hparam_infos, key=lambda i: (not i.differs, i.name))
    return sorted(i.name for i in ordered[:5])


def test_hparams_show_the_method_and_what_differs_between_the_runs(tmp_path):
    from satkit.training.config import TrainConfig
    from satkit.training.summary import hparams

    cpu = torch.device("cpu")
    grid = [TrainConfig(alpha2=a, model="digits-cnn") for a in (0.0, 0.1, 1.0)]
    runs = [hparams(c, cpu) for c in grid]
    seeds = [hparams(TrainConfig(alpha2=0.1, seed=s, model="digits-cnn"), cpu) for s in (0, 1)]
    for name, peers, shown in (
            ("alpha2", runs, ["alpha2", "dataset", "method", "noise", "seed"]),
            ("seeds", seeds, ["dataset", "epochs", "method", "model", "seed"]),
            ("alone", [runs[1]], ["dataset", "epochs", "method", "model", "seed"])):
        sink = TensorBoardSink(tmp_path / name, layout=False)
        sink.write_hparams(peers[-1], {"test_error": 1.0}, runs=peers)
        sink.close()
        experiment = _experiment(_load(tmp_path / name))
        assert _shown_by_tensorboard(experiment) == shown, name
        names = [i.name for i in experiment.hparam_infos]
        # every method's settings are columns, whichever run's config TensorBoard reads
        assert {"epsilon", "gamma", "margin", "temperature", "beta"} <= set(names)
    infos = {i.name: i for i in _experiment(_load(tmp_path / "alpha2")).hparam_infos}
    assert infos["alpha2"].domain_interval.max_value == 1.0
    assert sorted(v.string_value for v in infos["method"].domain_discrete.values) == [
        "noisy", "softmax"]


def test_comparison_layout_for_a_directory_of_runs(tmp_path):
    for run in ("softmax", "noisy"):
        _record(tmp_path / run, steps=2)
    write_comparison_layout(tmp_path, ["softmax", "noisy"])
    layout = _layout(_load(tmp_path))
    assert {c.title for c in layout.category} >= {"gradient and noise", "norms and logits"}
    with pytest.raises(FileNotFoundError, match="missing_run"):
        write_comparison_layout(tmp_path, ["softmax", "missing_run"])


def test_unwritable_log_dir_fails_at_construction(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="TensorBoardSink cannot write"):
        TensorBoardSink(blocker / "run")


def test_importing_satkit_does_not_import_tensorboard():
    code = ("import sys, satkit, satkit.hooks, satkit.sinks; "
            "bad = [m for m in sys.modules if m.startswith('tensorboard') "
            "or m.startswith('torch.utils.tensorboard')]; print(bad); assert not bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
