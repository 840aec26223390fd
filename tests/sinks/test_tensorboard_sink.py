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


def test_scalars_histograms_and_layout_read_back(tmp_path):
    metrics, _ = _record(tmp_path)
    acc = _load(tmp_path)
    scalars = set(acc.Tags()["scalars"])
    for tag in ("saturation/p_target_mean", "saturation/p_target_noisy_mean",
                "saturation/saturated_frac_0.99", "gradient/grad_target_mean",
                "gradient/grad_weight_norm", "noise/noise_mean", "noise/noise_max",
                "norms/feature_norm_mean", "norms/cos_target_mean", "train/loss",
                "saturation/p_target_noisy_median", "saturation/saturated_frac_noisy_0.99",
                "diagnostics/batch_size", "diagnostics/nonfinite"):
        assert tag in scalars, tag
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
    assert set(acc.Tags()["histograms"]) == {"saturation/p_target",
                                             "saturation/p_target_noisy", "noise/noise"}
    hist = acc.Histograms("saturation/p_target")
    assert [h.step for h in hist] == [0, 2, 4]
    assert hist[0].histogram_value.num == 16 and 0 < hist[0].histogram_value.min < 1
    limits = np.asarray(hist[0].histogram_value.bucket_limit)  # equal buckets of 0.025, so
    np.testing.assert_allclose(np.diff(limits), 0.025, atol=1e-6)  # 0.99 is not hidden
    layout = _layout(acc)
    assert [c.title for c in layout.category] == [
        "saturation: clean p_y vs p_y under the training logits", "learning curves",
        "gradient", "noise", "norms"]
    charts = {chart.title: list(chart.multiline.tag) for c in layout.category for chart in c.chart}
    assert charts["|dL/df_y| (target-logit gradient)"] == ["^gradient/grad_target_mean$"]
    # every chart draws something that exists, and every main tag is on some chart
    import re
    patterns = [p for tags in charts.values() for p in tags]
    drawn = {t for t in scalars if any(re.search(p, t) for p in patterns)}
    assert drawn == {t for t in scalars if not t.startswith("diagnostics/")}
    for title, tags in charts.items():
        if not any(p.startswith("^epoch/") for p in tags):
            assert any(re.search(p, t) for p in tags for t in scalars), title


def test_every_tag_has_a_description_that_tensorboard_serves(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_accumulator

    _record(tmp_path, steps=2)
    sink = TensorBoardSink(tmp_path / "more", layout=False)
    sink.write_scalars(7, {"test_error": 2.5, "lr": 0.1}, group="epoch")
    sink.close()
    for directory in (tmp_path, tmp_path / "more"):
        acc = plugin_event_accumulator.EventAccumulator(str(directory))
        acc.Reload()  # what the TensorBoard server reads (scalars migrated to tensors)
        tags = acc.Tags()["tensors"]
        described = {tag: acc.SummaryMetadata(tag).summary_description for tag in tags
                     if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}
        assert described and all(described.values()), described
    assert described["epoch/test_error"] == "test error % (clean logits)"


def test_histogram_every_filters_and_nan_scalars_are_skipped(tmp_path):
    from satkit.sinks import Histogram

    sink = TensorBoardSink(tmp_path, histogram_every=10, layout=False)
    sink.write([{"step": 0, "loss": 1.0, "grad_features_norm_mean": float("nan"),
                 "nonfinite": True}])
    sink.write_histograms([Histogram(5, "p_target", np.array([0.5])),
                           Histogram(10, "p_target", np.array([0.2, 0.4])),
                           Histogram(20, "noise", np.array([]))])
    sink.close()
    sink.close()  # idempotent
    acc = _load(tmp_path)
    assert "gradient/grad_features_norm_mean" not in acc.Tags()["scalars"]
    assert acc.Scalars("diagnostics/nonfinite")[0].value == 1.0
    assert [h.step for h in acc.Histograms("saturation/p_target")] == [10]
    assert "custom_scalars__config__" not in acc.Tags()["tensors"]


def test_write_hparams_in_the_run_directory(tmp_path):
    sink = TensorBoardSink(tmp_path)
    sink.write_hparams({"alpha2": 0.1, "model": "cnn", "amp": False, "augment": True,
                        "thresholds": (0.9, 0.99),
                        "extra": None}, {"hparams/test_error": 7.39, "hparams/onset_step": None},
                       step=41)
    sink.close()
    acc = _load(tmp_path)
    [event] = acc.Scalars("hparams/test_error")
    assert event.value == pytest.approx(7.39) and event.step == 41
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    data = plugin_data_pb2.HParamsPluginData.FromString(meta.plugin_data.content)
    hp = data.session_start_info.hparams
    assert hp["alpha2"].number_value == pytest.approx(0.1)
    assert hp["model"].string_value == "cnn" and hp["amp"].WhichOneof("kind") == "bool_value"
    assert hp["amp"].bool_value is False and hp["augment"].bool_value is True
    types = {i.name: i.type for i in plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/experiment").plugin_data.content).experiment.hparam_infos}
    assert types["amp"] == types["augment"] == 2 and types["alpha2"] == 3  # BOOL, FLOAT64
    assert hp["thresholds"].string_value == "(0.9, 0.99)"
    [info] = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/experiment").plugin_data.content).experiment.metric_infos
    assert info.name.tag == "hparams/test_error" and info.display_name == "test_error"
    assert info.description.startswith("test error %")  # None metrics are left out


def test_comparison_layout_for_a_directory_of_runs(tmp_path):
    for run in ("softmax", "noisy"):
        _record(tmp_path / run, steps=2)
    write_comparison_layout(tmp_path, ["softmax", "noisy"])
    layout = _layout(_load(tmp_path))
    assert {c.title for c in layout.category} >= {"learning curves", "gradient", "noise"}
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
