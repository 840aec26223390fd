"""SaturationRecorder plumbing: hooks and handles, steps, flushing, sinks, bad input."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from recorder_models import make_data, make_net, train_step
from torch import nn

from satkit.columns import column_names
from satkit.hooks import SaturationRecorder
from satkit.schema import SAMPLE_COLUMNS
from satkit.sinks import Sink


class ListSink:
    def __init__(self, fail_times: int = 0):
        self.rows, self.histograms, self.samples = [], [], None
        self.fail_times, self.closed = fail_times, 0

    def write(self, rows):
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("disk full")
        self.rows.extend(rows)

    def write_histograms(self, histograms):
        self.histograms.extend(histograms)

    def write_samples(self, frame):
        self.samples = frame

    def close(self):
        self.closed += 1


def _has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def test_hooks_are_removed_by_with_and_by_remove(net, data):
    x, y = data
    with SaturationRecorder(net.head) as rec:
        assert _has_hooks(net.head)
        train_step(net, x, y, rec)
    assert not _has_hooks(net.head)
    rec2 = SaturationRecorder(net.head)
    rec2.remove()
    rec2.remove()  # idempotent
    assert not _has_hooks(net.head)
    train_step(net, x, y)  # the head still trains without a recorder


def test_hooks_removed_and_rows_flushed_when_training_raises(net, data):
    x, y = data
    sink = ListSink()
    with pytest.raises(ZeroDivisionError):
        with SaturationRecorder(net.head, sinks=[sink]) as rec:
            for _ in range(3):
                train_step(net, x, y, rec)
            1 / 0  # noqa: B018
    assert not _has_hooks(net.head)
    assert [r["step"] for r in sink.rows] == [0, 1, 2] and sink.closed == 1
    rec.close()  # idempotent: the sink is closed once
    assert sink.closed == 1
    assert isinstance(sink, Sink)


def test_steps_every_and_flush_every_lose_and_duplicate_nothing(net, data):
    x, y = data
    sink = ListSink()
    # background=False: the sink has each automatic flush's rows when step() returns (with the
    # writer thread they arrive a little later; flush(), metrics() and close() wait for them)
    rec = SaturationRecorder(net.head, every=3, flush_every=2, sinks=[sink], background=False)
    for i in range(14):
        assert rec.steps == i
        train_step(net, x, y, rec, lr=0.1)
    # recorded: 0 3 6 9 12; flushed automatically after 2 rows: (0, 3), (6, 9)
    assert [r["step"] for r in sink.rows] == [0, 3, 6, 9] and rec.buffered == 1
    table = rec.metrics()  # flushes the buffered row too
    assert table["step"].tolist() == [0, 3, 6, 9, 12]
    assert list(table.columns) == column_names((0.9, 0.99))
    assert table["batch_size"].dtype == np.int64 and table["nonfinite"].dtype == bool
    rec.close()
    assert [r["step"] for r in sink.rows] == [0, 3, 6, 9, 12]
    assert rec.metrics()["step"].tolist() == [0, 3, 6, 9, 12]


def test_target_defaults_to_the_one_the_noisy_head_saw(net, data):
    x, y = data
    rows = []
    for pass_target in (True, False):
        torch.manual_seed(0)
        n = make_net()
        with SaturationRecorder(n.head) as rec:
            loss = F.cross_entropy(n(x, y), y)
            loss.backward()
            rec.step(y if pass_target else None)
            rows.append(rec.metrics())
    pd.testing.assert_frame_equal(rows[0], rows[1])


def test_eval_passes_in_between_are_ignored(data):
    x, y = data
    tables = []
    for with_eval in (False, True):
        net = make_net()
        with SaturationRecorder(net.head, num_samples=12) as rec:
            for _ in range(4):
                if with_eval:
                    with torch.no_grad():
                        net(x)  # evaluation under no_grad
                    net.eval()
                    F.cross_entropy(net(x), y)  # eval mode, autograd on, never backwarded
                    net.train()
                train_step(net, x, y, rec, index=torch.arange(12), lr=0.5)
            tables.append((rec.metrics(), rec.samples()))
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0])
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1])


def test_gradient_accumulation_equals_one_big_batch():
    x, y = make_data(n=12)
    index = torch.arange(12)
    out = {}
    for k in (1, 3):
        net = make_net()
        with SaturationRecorder(net.head, num_samples=12, thresholds=(0.3, 0.5)) as rec:
            for _ in range(3):
                net.zero_grad()
                for part in torch.arange(12).chunk(k):
                    (F.cross_entropy(net(x[part], y[part]), y[part]) / k).backward()
                rec.step(index=index)  # targets: what the head saw, micro-batches in order
                with torch.no_grad():
                    for p in net.parameters():
                        p -= 0.5 * p.grad
            out[k] = (rec.metrics(), rec.samples())
    pd.testing.assert_frame_equal(out[1][0], out[3][0], rtol=1e-5)
    # float32: a small p_y under the training logits is exp of a difference of larger numbers
    pd.testing.assert_frame_equal(out[1][1], out[3][1], rtol=1e-4)
    assert out[3][0]["batch_size"].tolist() == [12, 12, 12]


def test_explicit_target_with_accumulation_needs_all_micro_batches(data):
    x, y = data
    net = make_net("linear")
    with SaturationRecorder(net.head) as rec:
        for part in (slice(0, 6), slice(6, 12)):
            F.cross_entropy(net(x[part]), y[part]).backward()
        with pytest.raises(ValueError, match=r"shape \(12,\)"):
            rec.step(y[:6])
        F.cross_entropy(net(x), y).backward()
        with pytest.raises(ValueError, match="needs `target`"):
            rec.step()  # an nn.Linear head never sees the target


def test_bad_heads_are_rejected():
    for head in (nn.ReLU(), nn.Conv2d(1, 2, 3), object()):
        with pytest.raises(TypeError, match="Linear-like"):
            SaturationRecorder(head)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"thresholds": ()}, "thresholds"), ({"thresholds": (0.5, 1.0)}, "thresholds"),
    ({"thresholds": (0.9, 0.90)}, "duplicate"), ({"every": 0}, "every"),
    ({"flush_every": 1.5}, "flush_every"), ({"num_samples": 0}, "num_samples"),
    ({"histogram_every": -1}, "histogram_every"),
])
def test_bad_settings_are_rejected(net, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SaturationRecorder(net.head, **kwargs)
    with pytest.raises(TypeError, match="sink"):
        SaturationRecorder(net.head, sinks=[object()])


def test_step_without_forward_or_backward_is_a_clear_error(net, data):
    x, y = data
    with SaturationRecorder(net.head) as rec:
        with pytest.raises(RuntimeError, match="without a preceding training forward"):
            rec.step(y)
        with torch.no_grad():
            net(x, y)
        with pytest.raises(RuntimeError, match="without a preceding training forward"):
            rec.step(y)
        net(x, y)
        with pytest.raises(RuntimeError, match="no backward"):
            rec.step(y)
        train_step(net, x, y, rec)
    # a step() refused for lack of a forward is not counted; one that had a forward is
    assert rec.metrics()["step"].tolist() == [1]


def test_bad_index_shapes_raise_at_step(net, data):
    x, y = data
    with SaturationRecorder(net.head, num_samples=12) as rec:
        train_step(net, x, y, rec, index=torch.arange(12))
        with pytest.raises(ValueError, match="shape"):
            train_step(net, x, y, rec, index=torch.arange(5))
    assert rec.metrics()["step"].tolist() == [0]
    with SaturationRecorder(net.head) as rec, pytest.raises(ValueError, match="num_samples"):
        train_step(net, x, y, rec, index=torch.arange(12))


def test_index_out_of_range_raises_at_flush_after_storing(net, data):
    # The range needs the values: counted on the device, reported at the flush (every device).
    x, y = data
    sink = ListSink()
    rec = SaturationRecorder(net.head, num_samples=12, sinks=[sink])
    train_step(net, x, y, rec, index=torch.arange(12))
    train_step(net, x, y, rec, index=torch.arange(12) - 1)  # -1 is out of range
    train_step(net, x, y, rec, index=torch.arange(1, 13))  # so is 12
    with pytest.raises(ValueError, match=r"index values outside \[0, num_samples=12\) at "
                                         r"steps \[1, 2\]"):
        rec.flush()
    assert [r["step"] for r in sink.rows] == [0, 1, 2]  # stored and written before raising
    samples = rec.samples()
    # sample 11 was not seen at step 1 (its slot held the -1), sample 0 not at step 2
    assert samples["last_seen_step"].tolist() == [1] + [2] * 10 + [2]
    rec.close()


def test_nonfinite_logits_are_flagged_not_averaged(data):
    x, y = data
    x = x.clone()
    x[3] = float("nan")
    net = make_net("linear")
    with SaturationRecorder(net.head, num_samples=12) as rec:
        train_step(net, x, y, rec, index=torch.arange(12))
        bad = rec.metrics().iloc[0]
        samples = rec.samples()
    keep = torch.arange(12) != 3
    net2 = make_net("linear")
    with SaturationRecorder(net2.head) as rec2:
        train_step(net2, x[keep], y[keep], rec2)
        good = rec2.metrics().iloc[0]
    assert bad["nonfinite"] and not good["nonfinite"] and bad["batch_size"] == 12
    for col in ("loss", "p_target_mean", "p_target_median", "grad_features_norm_mean",
                "logit_margin_mean", "saturated_frac", "noise_max"):
        assert bad[col] == pytest.approx(good[col], rel=1e-5), col
    assert math.isnan(samples["last_p_target"][3]) and pd.isna(samples["last_seen_step"][3])


def test_nonfinite_user_loss_is_flagged(net, data):
    x, y = data
    with SaturationRecorder(net.head) as rec:
        F.cross_entropy(net(x, y), y).backward()
        rec.step(y, loss=torch.tensor(float("inf")))
        row = rec.metrics().iloc[0]
    assert row["nonfinite"] and row["loss"] == float("inf")


def test_failing_sink_loses_and_duplicates_nothing(net, data):
    x, y = data
    flaky, good = ListSink(fail_times=1), ListSink()
    rec = SaturationRecorder(net.head, flush_every=2, sinks=[flaky, good])
    train_step(net, x, y, rec)
    train_step(net, x, y, rec)  # the automatic flush, in the background: flaky fails
    with pytest.raises(OSError, match="disk full") as info:
        rec.flush()  # the background error surfaces at the next flush; good is written
    assert "retried" in "".join(getattr(info.value, "__notes__", []))
    assert [r["step"] for r in good.rows] == [0, 1] and flaky.rows == []
    for _ in range(3):
        train_step(net, x, y, rec)
    rec.close()
    assert [r["step"] for r in flaky.rows] == [0, 1, 2, 3, 4] == [r["step"] for r in good.rows]


def test_histograms_and_samples_reach_sinks(net, data):
    x, y = data
    sink = ListSink()
    with SaturationRecorder(net.head, num_samples=12, histogram_every=2, flush_every=3,
                            sinks=[sink]) as rec:
        for _ in range(5):
            train_step(net, x, y, rec, index=torch.arange(12), lr=0.1)
    assert [(h.step, h.name) for h in sink.histograms] == [
        (s, name) for s in (0, 2, 4) for name in ("p_target", "p_target_noisy", "noise")]
    p0 = sink.histograms[0].values
    assert p0.shape == (12,) and np.all((p0 > 0) & (p0 < 1))
    assert np.all(sink.histograms[2].values >= 0)  # the noise
    assert np.all(sink.histograms[1].values <= p0 + 1e-6)  # the noise lowers p_y
    assert sink.samples["last_seen_step"].tolist() == [4] * 12


def test_state_dict_round_trip_resumes_exactly(data):
    x, y = data

    def run(steps, rec, net):
        for s in steps:
            idx = torch.arange(12).roll(s)
            train_step(net, x[idx], y[idx], rec, index=idx, lr=0.8)

    net = make_net()
    full = SaturationRecorder(net.head, num_samples=12, thresholds=(0.3, 0.5), flush_every=4)
    run(range(8), full, net)
    net = make_net()
    first = SaturationRecorder(net.head, num_samples=12, thresholds=(0.3, 0.5), flush_every=4)
    run(range(4), first, net)
    assert first.buffered == 0  # the checkpoint is taken after a flush
    state = first.state_dict()
    assert state["steps"] == 4 and state["samples"]["first_clean"].device.type == "cpu"
    first.close()
    second = SaturationRecorder(net.head, num_samples=12, thresholds=(0.3, 0.5), flush_every=4)
    second.load_state_dict(state)
    run(range(4, 8), second, net)
    assert second.metrics()["step"].tolist() == [4, 5, 6, 7]
    pd.testing.assert_frame_equal(second.samples(), full.samples())
    train_step(net, x, y, second, index=torch.arange(12))
    with pytest.warns(UserWarning, match="unflushed"):
        second.state_dict()
    with pytest.raises(RuntimeError, match="buffered"):
        second.load_state_dict(state)
    with pytest.raises(ValueError, match="num_samples"):
        SaturationRecorder(net.head).load_state_dict(state)


def test_samples_without_num_samples_is_an_empty_typed_table(net, data):
    x, y = data
    with SaturationRecorder(net.head) as rec:
        train_step(net, x, y, rec)
        frame = rec.samples()
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    assert len(frame) == 0 and str(frame["first_saturated_step"].dtype) == "Int64"
    assert str(frame["settled_step_noisy"].dtype) == "Int64"


def test_features_without_grad_give_nan_feature_gradient(data):
    x, y = data
    head = nn.Linear(5, 4)
    with SaturationRecorder(head) as rec:
        F.cross_entropy(head(x), y).backward()  # x is a leaf without requires_grad
        rec.step(y)
        row = rec.metrics().iloc[0]
    assert math.isnan(row["grad_features_norm_mean"]) and not row["nonfinite"]
    assert row["grad_weight_norm"] == pytest.approx(float(head.weight.grad.norm()))


def test_a_step_never_waits_for_the_disk(net, data):
    # The sink blocks until the test releases it: with the writer thread, the automatic
    # flush returns at once (a step never waits for the disk); flush() waits for the rows.
    import threading

    release, entered = threading.Event(), threading.Event()

    class BlockedSink(ListSink):
        def write(self, rows):
            entered.set()
            release.wait(timeout=30)
            super().write(rows)

    x, y = data
    sink = BlockedSink()
    rec = SaturationRecorder(net.head, flush_every=1, sinks=[sink])
    train_step(net, x, y, rec)  # flushes in the background; the sink now blocks
    assert entered.wait(timeout=30) and sink.rows == []  # step() returned while it blocks
    train_step(net, x, y, rec)  # the next step is not held up either
    release.set()
    rec.flush()
    assert [r["step"] for r in sink.rows] == [0, 1]
    rec.close()
